//! QUIC transport: one reused connection per node, one request per stream.
//!
//! Connections are made lazily and kept; a closed one is replaced on the next
//! request. Each node has its own slot lock so concurrent requests to a node
//! share one handshake instead of racing several.

use crate::config::{Timeouts, TlsFiles};
use quire_net::frame::{read_frame, write_encoded, FrameReadError};
use quire_net::tls::TlsError;
use quire_shared::limits::FRAME_BYTES_CEILING;
use quire_shared::wire::{encode_frame, Request, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use quire_net::tls::NODE_SERVER_NAME;

/// Why a request to one node failed before it produced an answer.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The address is not a valid socket address.
    #[error("bad node address {0:?}")]
    BadAddress(String),
    /// No connection could be made (refused, unreachable, handshake failed).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The request did not complete in time.
    #[error("no answer from {0} in time")]
    Timeout(SocketAddr),
    /// The stream or connection broke mid-request.
    #[error("request to {addr} failed: {reason}")]
    Stream {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The node's answer did not decode.
    #[error("bad answer from {addr}: {reason}")]
    BadResponse {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
}

/// Why the transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// TLS files missing or invalid, or rustls refused them.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The local UDP socket could not be bound.
    #[error("cannot bind a local UDP socket: {0}")]
    Bind(std::io::Error),
}

/// One node's connection state. Connects are single-flight: callers queue
/// on the slot's lock, and a caller that was already waiting when a failed
/// attempt began gets that failure at once instead of starting another (a
/// dead node would otherwise cost every queued request a full connect
/// timeout in turn). An attempt that began before a caller arrived may
/// predate a restart, so that caller tries afresh.
#[derive(Default)]
struct SlotState {
    connection: Option<quinn::Connection>,
    /// The last failed connect: when it began and why it failed.
    failed: Option<(Instant, TransportError)>,
}

type Slot = Arc<tokio::sync::Mutex<SlotState>>;

/// The client's QUIC endpoint and its connections, one per node.
#[derive(Clone)]
pub struct Transport {
    endpoint: quinn::Endpoint,
    slots: Arc<Mutex<HashMap<SocketAddr, Slot>>>,
    connect_timeout: Duration,
}

impl Transport {
    /// Binds a local UDP socket and loads the TLS identity.
    pub fn new(tls: &TlsFiles, timeouts: &Timeouts) -> Result<Self, SetupError> {
        let quic = quire_net::tls::client_config(tls)?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // Keep idle connections alive well inside the node's idle timeout.
        transport
            .keep_alive_interval(Some(Duration::from_secs(5)))
            .max_concurrent_uni_streams(0u32.into());
        client_config.transport_config(Arc::new(transport));
        // Any local IPv4 address, any port: the kernel picks the route.
        let bind: SocketAddr = "0.0.0.0:0".parse().expect("literal address");
        let mut endpoint = quinn::Endpoint::client(bind).map_err(SetupError::Bind)?;
        endpoint.set_default_client_config(client_config);
        Ok(Self {
            endpoint,
            slots: Arc::default(),
            connect_timeout: Duration::from_millis(timeouts.connect_ms),
        })
    }

    async fn connection(&self, addr: SocketAddr) -> Result<quinn::Connection, TransportError> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr)
            .or_default()
            .clone();
        let waited_from = Instant::now();
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.connection.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
        }
        guard.connection = None;
        if let Some((at, e)) = &guard.failed {
            if *at >= waited_from {
                return Err(e.clone());
            }
        }
        let connect_err = |reason: String| TransportError::Connect { addr, reason };
        let began = Instant::now();
        let attempt = async {
            let connecting = self
                .endpoint
                .connect(addr, NODE_SERVER_NAME)
                .map_err(|e| connect_err(e.to_string()))?;
            tokio::time::timeout(self.connect_timeout, connecting)
                .await
                .map_err(|_| {
                    connect_err(format!("no handshake within {:?}", self.connect_timeout))
                })?
                .map_err(|e| connect_err(e.to_string()))
        };
        match attempt.await {
            Ok(conn) => {
                guard.connection = Some(conn.clone());
                guard.failed = None;
                Ok(conn)
            }
            Err(e) => {
                guard.failed = Some((began, e.clone()));
                Err(e)
            }
        }
    }

    /// Sends one request to the node at `addr` and waits up to `timeout` for
    /// its answer.
    pub async fn call(
        &self,
        addr: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| TransportError::BadAddress(addr.to_string()))?;
        let frame = encode_frame(request);
        match tokio::time::timeout(timeout, self.exchange(addr, &frame)).await {
            Ok(result) => result,
            Err(_) => {
                self.drop_connection(addr);
                Err(TransportError::Timeout(addr))
            }
        }
    }

    /// Forgets the connection to `addr` after a request on it went
    /// unanswered. A node killed and restarted on the same address does
    /// not know the old connection, and the client would otherwise keep
    /// sending into it until the idle timeout; the next request connects
    /// afresh.
    fn drop_connection(&self, addr: SocketAddr) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .cloned();
        if let Some(slot) = slot {
            if let Ok(mut state) = slot.try_lock() {
                if let Some(conn) = state.connection.take() {
                    conn.close(0u32.into(), b"no answer");
                }
            }
        }
    }

    async fn exchange(&self, addr: SocketAddr, frame: &[u8]) -> Result<Response, TransportError> {
        let conn = self.connection(addr).await?;
        let stream_err = |reason: String| TransportError::Stream { addr, reason };
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        write_encoded(&mut send, frame)
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        // The node's limit is configurable, so the client accepts answers up
        // to the ceiling any node may be configured with.
        read_frame(&mut recv, FRAME_BYTES_CEILING)
            .await
            .map_err(|e| match e {
                FrameReadError::Header(e) | FrameReadError::Body(e) => stream_err(e.to_string()),
                FrameReadError::Frame(e) => TransportError::BadResponse {
                    addr,
                    reason: e.to_string(),
                },
            })
    }

    #[cfg(feature = "testing")]
    /// Sends raw bytes as a request and returns the raw answer; for tests of
    /// the node's handling of malformed input.
    pub async fn call_raw(
        &self,
        addr: SocketAddr,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        match tokio::time::timeout(timeout, self.exchange(addr, bytes)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(addr)),
        }
    }

    #[cfg(feature = "testing")]
    /// The id of the open connection to `addr`, if any. Two equal answers
    /// mean requests in between shared one connection (tests check that a
    /// refused request does not cost the connection).
    pub fn connection_id(&self, addr: SocketAddr) -> Option<usize> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)?
            .clone();
        let guard = slot.try_lock().ok()?;
        guard
            .connection
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .map(|c| c.stable_id())
    }

    /// Closes every connection (clean goodbye to the nodes).
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"client closing");
    }
}
