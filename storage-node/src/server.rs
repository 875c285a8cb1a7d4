//! The QUIC server: one connection per client, requests on bidirectional
//! streams.
//!
//! A stream carries one request frame, or several a client batched
//! ([`stream`]); the node answers each with one response frame, in order,
//! and finishes the stream. A bad frame is answered with a typed error and
//! ends its stream only, so the connection and its other requests carry
//! on; a frame past its limit or garbled is also a strike against its
//! peer ([`strikes`]: pauses, then a closed connection).
//!
//! What a peer may take is bounded here: a new connection must find a
//! free slot in all and for its IP address ([`slots`]; a peer at its cap
//! recycles its oldest idle connection) and prove its address (a QUIC
//! Retry), or it is refused before its handshake; each request frame must
//! arrive within `limits.request_read_timeout_ms`, its first 64 KiB within
//! its connection's own 1 MiB pool and the rest, with every other large
//! request being read, within `limits.request_bytes_in_flight_max`.

mod budget;
mod slots;
mod stream;
pub(crate) mod strikes;

use crate::handler::NodeState;
use budget::CONNECTION_HEAD_BYTES;
use slots::{Refused, Slot, Slots};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use stream::serve_stream;
use strikes::PeerStrikes;
use tokio::sync::Semaphore;

/// How long shutdown waits for in-flight requests to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// QUIC application error code a request stream is stopped (or reset)
/// with when its frame or its answer did not move within the deadline.
pub const DEADLINE_STREAM_CODE: u32 = 1;

/// What every connection of one node shares: the handler, the byte budget
/// for requests being read, the read deadline, and the strikes against
/// each peer address.
struct Shared {
    state: Arc<NodeState>,
    request_bytes: Arc<Semaphore>,
    read_timeout: Duration,
    strikes: PeerStrikes,
}

/// Accepts connections until `shutdown` resolves, then closes the endpoint
/// and waits (bounded) for connections to drain.
pub async fn serve(
    endpoint: quinn::Endpoint,
    state: Arc<NodeState>,
    struck: crate::quic::StruckConfig,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let limits = state.limits.clone();
    let slots = Slots::new(limits.connections_max, limits.connections_per_peer_max);
    let shared = Arc::new(Shared {
        request_bytes: Arc::new(Semaphore::new(
            usize::try_from(limits.request_bytes_in_flight_max).unwrap_or(usize::MAX >> 4),
        )),
        read_timeout: Duration::from_millis(limits.request_read_timeout_ms.into()),
        strikes: PeerStrikes::default(),
        state,
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let peer = incoming.remote_address();
                // Refused anyway: refused at once, without a Retry round.
                if let Some(why) = slots.would_refuse(peer.ip()) {
                    refuse(incoming, why, &shared);
                    continue;
                }
                if !incoming.remote_address_validated() {
                    // A Retry costs the node one stateless packet; only a
                    // peer that receives at its claimed address comes back
                    // with the token, so spoofed floods cost no handshakes.
                    if let Err(e) = incoming.retry() {
                        e.into_incoming().ignore();
                    }
                    continue;
                }
                let slot = match slots.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(why) => {
                        refuse(incoming, why, &shared);
                        continue;
                    }
                };
                // A recently struck address gets small windows from the
                // handshake on, and the rest of its pause. (Refusing it
                // meanwhile was tried: the attacker then retried at once,
                // over and over, and cost the node more.)
                let standing = shared.strikes.standing(peer.ip(), std::time::Instant::now());
                let connecting = match standing {
                    None => incoming.accept(),
                    Some(_) => {
                        let config = struck.read().unwrap_or_else(|e| e.into_inner()).clone();
                        incoming.accept_with(config)
                    }
                };
                let connecting = match connecting {
                    Ok(connecting) => connecting,
                    Err(e) => {
                        shared.state.metrics.handshake_failed(handshake_failure(&e));
                        continue;
                    }
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    match connecting.await {
                        Ok(conn) => serve_connection(conn, &slot, shared, standing).await,
                        Err(e) => {
                            shared.state.metrics.handshake_failed(handshake_failure(&e));
                            tracing::debug!(error = %e, "handshake failed");
                        }
                    }
                    drop(slot);
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

/// Refuses a connection attempt for the cap it hit (QUIC
/// `CONNECTION_REFUSED`, before any handshake), and counts it.
fn refuse(incoming: quinn::Incoming, why: Refused, shared: &Shared) {
    let why = match why {
        Refused::Full => "connections_max",
        Refused::PeerFull => "connections_per_peer_max",
    };
    shared.state.metrics.connection_refused(why);
    tracing::debug!(peer = %incoming.remote_address(), cap = why, "connection refused");
    incoming.refuse();
}

/// QUIC application error code a connection is closed with when its peer
/// opened a newer one at its `connections_per_peer_max` cap while this
/// one was idle.
pub const EVICTED_CONNECTION_CODE: u32 = 2;

/// A failed handshake's reason, as a metric label.
fn handshake_failure(e: &quinn::ConnectionError) -> &'static str {
    use quinn::ConnectionError as E;
    match e {
        // rustls reports a refused certificate as a TLS alert: QUIC's
        // crypto error codes, 0x100 to 0x1ff (RFC 9000, 20.1).
        E::TransportError(t) if (0x100..0x200).contains(&u64::from(t.code)) => "tls",
        E::TransportError(_) => "transport",
        E::ConnectionClosed(_) | E::ApplicationClosed(_) => "closed_by_peer",
        E::TimedOut => "timed_out",
        E::Reset => "reset",
        _ => "other",
    }
}

/// Serves one connection's request streams until it closes. `standing`:
/// its address's pause, if the address has a recent strike.
async fn serve_connection(
    conn: quinn::Connection,
    slot: &Slot,
    shared: Arc<Shared>,
    standing: Option<std::time::Instant>,
) {
    let peer = conn.remote_address();
    let _open = shared.state.metrics.connection_open();
    // Who the certificate names; a certificate naming nobody gets every
    // request refused with `Forbidden` and the reason (the client learns
    // why, instead of a closed connection).
    let principal = Arc::new(quire_net::identity::peer(&conn));
    match principal.as_ref() {
        Ok(p) => tracing::debug!(%peer, principal = %p.principal, "client connected"),
        Err(e) => {
            shared.state.metrics.handshake_failed("no_identity");
            tracing::info!(%peer, reason = %e, "client certificate names no identity");
        }
    }
    let mut streams = tokio::task::JoinSet::new();
    let heads = Arc::new(Semaphore::new(CONNECTION_HEAD_BYTES));
    // New streams are taken again from this instant (see `strikes`).
    let mut paused_until = standing.map(tokio::time::Instant::from_std);
    // Made with the struck config: small windows already, so closing it
    // for its strikes would buy nothing; it is only paused.
    let small_windows = standing.is_some();
    loop {
        let paused = paused_until.is_some_and(|t| t > tokio::time::Instant::now());
        tokio::select! {
            stream = conn.accept_bi(), if !paused => match stream {
                Ok((send, recv)) => {
                    let shared = shared.clone();
                    let heads = heads.clone();
                    let busy = slot.activity.busy();
                    let principal = principal.clone();
                    streams.spawn(async move {
                        let struck =
                            serve_stream(send, recv, heads, &shared, (peer, &principal)).await;
                        drop(busy);
                        struck
                    });
                }
                Err(e) => {
                    tracing::debug!(%peer, reason = %e, "connection closed");
                    break;
                }
            },
            Some(done) = streams.join_next(), if !streams.is_empty() => {
                if done.unwrap_or(false) {
                    let penalty = shared.strikes.strike(peer.ip(), std::time::Instant::now());
                    let close = penalty.close && !small_windows;
                    shared.state.metrics.struck(close);
                    if close {
                        tracing::info!(%peer, "unreadable requests again and again: connection closed");
                        conn.close(
                            strikes::STRUCK_CONNECTION_CODE.into(),
                            b"too many request frames past their limit or garbled",
                        );
                        break;
                    }
                    tracing::debug!(%peer, pause = ?penalty.pause, "unreadable request: the connection is paused");
                    paused_until = Some(tokio::time::Instant::now() + penalty.pause);
                }
            }
            _ = tokio::time::sleep_until(paused_until.unwrap_or_else(tokio::time::Instant::now)), if paused => {
                // Over: no clock read per stream until the next strike.
                paused_until = None;
            }
            _ = slot.activity.evicted() => {
                tracing::debug!(%peer, "idle connection closed: its peer opened a newer one at its cap");
                conn.close(
                    EVICTED_CONNECTION_CODE.into(),
                    b"idle connection closed for a newer one (connections_per_peer_max)",
                );
                break;
            }
        }
    }
    // Let requests already read finish and answer (their writes may have
    // committed; the client learns the outcome if it is still there).
    while streams.join_next().await.is_some() {}
}
