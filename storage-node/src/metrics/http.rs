//! `GET /metrics` over plain HTTP/1.1, the way Prometheus scrapes.
//!
//! A scrape is one small request and one answer, so the node answers it
//! itself instead of linking an HTTP stack: it reads the request head
//! (bounded in size and time), answers `/metrics` with the registry in the
//! Prometheus text format, anything else with 404 (or 405 for a method
//! other than GET or HEAD), and closes the connection. The listener is
//! meant for a private address (loopback, or the operator's monitoring
//! network): it serves counters, never data, and takes no input.

use crate::handler::NodeState;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head read; a longer one is answered 431.
const HEAD_BYTES_MAX: usize = 8 * 1024;

/// A scraper must send its request head and read the answer within this.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapes answered at once; more wait for their turn (the listen backlog
/// holds them), so a flood of scrapes costs a bounded amount of memory.
const SCRAPES_AT_ONCE: usize = 4;

/// Serves scrapes on `listener` until the node's state is gone (the node
/// stopped).
pub async fn serve(listener: TcpListener, state: Weak<NodeState>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(SCRAPES_AT_ONCE));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "metrics listener: accept failed");
                continue;
            }
        };
        let Some(state) = state.upgrade() else { return };
        tokio::spawn(async move {
            let exchange = answer(stream, state);
            if tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
                .await
                .is_err()
            {
                tracing::debug!(%peer, "metrics scrape timed out");
            }
            drop(permit);
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, state: Arc<NodeState>) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break true;
        }
        if head.len() > HEAD_BYTES_MAX {
            break false;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let reply = if complete {
        route(&head, state).await
    } else {
        Reply::plain(
            431,
            "Request Header Fields Too Large",
            "request head too long\n",
        )
    };
    let _ = stream.write_all(&reply.into_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What the request line asks for.
async fn route(head: &[u8], state: Arc<NodeState>) -> Reply {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            // Totals may need a pass over storage: off the async workers.
            let Ok(body) = tokio::task::spawn_blocking(move || state.render_metrics()).await else {
                return Reply::plain(500, "Internal Server Error", "rendering failed\n");
            };
            Reply {
                status: 200,
                reason: "OK",
                content_type: CONTENT_TYPE,
                body: body.into_bytes(),
                allow: false,
                head_only: method == "HEAD",
            }
        }
        ("GET" | "HEAD", _) => Reply::plain(404, "Not Found", "only /metrics is served here\n"),
        _ => {
            let mut reply = Reply::plain(405, "Method Not Allowed", "GET /metrics\n");
            reply.allow = true;
            reply
        }
    }
}

/// An HTTP answer.
struct Reply {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// Send `Allow: GET, HEAD` (a 405).
    allow: bool,
    /// Answer a HEAD: the headers of the GET, no body.
    head_only: bool,
}

impl Reply {
    fn plain(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            allow: false,
            head_only: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}
