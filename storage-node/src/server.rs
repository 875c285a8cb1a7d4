//! The QUIC server: one connection per client, one request per
//! bidirectional stream.
//!
//! A stream carries one request frame; the node answers with one response
//! frame and finishes the stream. A bad frame is answered with a typed error
//! on its own stream, so the connection and its other requests carry on.

use crate::handler::NodeState;
use quire_net::frame::{read_frame, write_frame, FrameReadError};
use quire_net::identity::{IdentityError, Peer};
use quire_shared::wire::{ErrorCode, FrameError, Request};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long shutdown waits for in-flight requests to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections until `shutdown` resolves, then closes the endpoint
/// and waits (bounded) for connections to drain.
pub async fn serve(
    endpoint: quinn::Endpoint,
    state: Arc<NodeState>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let state = state.clone();
                connections.spawn(async move {
                    match incoming.await {
                        Ok(conn) => serve_connection(conn, state).await,
                        Err(e) => tracing::debug!(error = %e, "handshake failed"),
                    }
                });
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    endpoint.close(0u32.into(), b"node shutting down");
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, endpoint.wait_idle()).await;
}

async fn serve_connection(conn: quinn::Connection, state: Arc<NodeState>) {
    let peer = conn.remote_address();
    // Who the certificate names; a certificate naming nobody gets every
    // request refused with `Forbidden` and the reason (the client learns
    // why, instead of a closed connection).
    let principal = Arc::new(quire_net::identity::peer(&conn));
    match principal.as_ref() {
        Ok(p) => tracing::debug!(%peer, principal = %p.principal, "client connected"),
        Err(e) => tracing::info!(%peer, reason = %e, "client certificate names no identity"),
    }
    let mut streams = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let state = state.clone();
                    let principal = principal.clone();
                    streams.spawn(async move { serve_stream(send, recv, &state, &principal).await });
                }
                Err(e) => {
                    tracing::debug!(%peer, reason = %e, "connection closed");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    // Let requests already read finish and answer (their writes may have
    // committed; the client learns the outcome if it is still there).
    while streams.join_next().await.is_some() {}
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    state: &NodeState,
    principal: &Result<Peer, IdentityError>,
) {
    let response = match read_frame::<Request>(&mut recv, state.limits.frame_bytes_max).await {
        Ok(request) => {
            tracing::trace!(kind = request.kind(), "request");
            match principal {
                Ok(principal) => state.handle(request, principal).await,
                Err(e) => state.refusal(ErrorCode::Forbidden, e.to_string()),
            }
        }
        // read_frame has already stopped the stream: the body is not read.
        Err(FrameReadError::Frame(FrameError::TooLarge { len, max })) => state.refusal(
            ErrorCode::FrameTooLarge,
            format!("request frame of {len} bytes exceeds the node's limit of {max}"),
        ),
        Err(FrameReadError::Frame(FrameError::Malformed(message))) => {
            state.refusal(ErrorCode::Malformed, message)
        }
        // A request cut short is as unusable as a garbled one; the client
        // may still be there to read why.
        Err(e @ (FrameReadError::Header(_) | FrameReadError::Body(_))) => {
            state.refusal(ErrorCode::Malformed, e.to_string())
        }
    };
    if let Err(e) = write_frame(&mut send, &response).await {
        tracing::debug!(error = %e, "client went away before the response");
    }
}
