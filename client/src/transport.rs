//! QUIC transport: one reused connection per node; the data path's
//! requests share streams under load ([`batch`]), every other request has
//! a stream of its own.
//!
//! Connections are made lazily and kept; a closed one is replaced on the next
//! request. Each node has its own slot lock so concurrent requests to a node
//! share one handshake instead of racing several.
//!
//! A request that runs out of time gives up its own stream, never the
//! connection: every other request to that node rides on the same
//! connection, and one slow answer (a long fsync) must not fail them all.
//! A connection is closed only when QUIC finds it dead (a restarted node
//! answers its packets with a stateless reset; an unreachable one hits the
//! idle timeout), or after [`SILENT_TIMEOUTS_MAX`] timeouts in a row during
//! which the node sent nothing at all, not even an acknowledgement: then the
//! process behind it is gone, and the next request connects afresh instead
//! of waiting out the idle timeout.
//!
//! Every node's certificate names its node id; a request goes to a
//! member's address only if the node there is that member
//! ([`Transport::expect_members`]), so one node's key cannot stand in for
//! another's.

use crate::config::{Timeouts, TlsSource};
use quinn::rustls::pki_types::CertificateDer;
use quire_net::frame::{read_frame, write_encoded, FrameReadError};
use quire_net::identity::peer_principal;
use quire_net::tls::TlsMaterial;
use quire_net::validity::not_after_unix;
use quire_shared::limits::FRAME_BYTES_CEILING;
use quire_shared::wire::{encode_frame, Request, Response};
use quire_shared::{Membership, NodeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use quire_net::tls::NODE_SERVER_NAME;

mod batch;
mod error;

use batch::{Batcher, Class};
pub use error::{SetupError, TransportError};

/// Timeouts in a row, with no answer in between and not a datagram from
/// the node during any of them, after which its connection is closed.
/// More than one, so a node that pauses (a stalled disk, a lost burst of
/// packets) keeps the connection its other requests share.
pub const SILENT_TIMEOUTS_MAX: u32 = 3;

/// One node's connection. A request takes the open one without waiting
/// on anything but a read lock. Connects are single-flight: callers queue
/// on the slot's `connecting` lock, and a caller that was already waiting
/// when a failed attempt began gets that failure at once instead of
/// starting another (a dead node would otherwise cost every queued
/// request a full connect timeout in turn). An attempt that began before a
/// caller arrived may predate a restart, so that caller tries afresh.
#[derive(Default)]
struct Slot {
    /// The connection requests use while it is open.
    open: RwLock<Option<Connection>>,
    /// Held while connecting: the last failed connect, when it began and
    /// why it failed.
    connecting: tokio::sync::Mutex<Option<(Instant, TransportError)>>,
}

impl Slot {
    /// The connection, if one is open.
    fn open(&self) -> Option<Connection> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|c| c.is_open())
            .cloned()
    }
}

/// One node's connection, shared by every request to it, with its count
/// of silent timeouts in a row (see [`SILENT_TIMEOUTS_MAX`]).
#[derive(Clone)]
struct Connection {
    quic: quinn::Connection,
    silent_timeouts: Arc<AtomicU32>,
    /// The node its certificate names, or what it names instead.
    node: Result<NodeId, String>,
    /// When the node's certificate expires (Unix seconds), if it parses.
    not_after: Option<i64>,
    /// Queues of reads and of writes sent together ([`batch`]).
    batchers: Arc<[Batcher; 2]>,
    /// Set once the connection has closed, by a task watching it: asking
    /// quinn instead takes the connection's lock, which its driver holds
    /// for every packet, on every request.
    closed: Arc<AtomicBool>,
    /// Dropped with the last clone, which ends the watching task (so that
    /// it does not keep the connection open).
    _watched: Arc<oneshot::Sender<()>>,
}

impl Connection {
    /// Wraps a new connection to the node at `addr`; starts its batchers
    /// (call within the runtime).
    fn new(quic: quinn::Connection, addr: SocketAddr) -> Self {
        let node = match peer_principal(&quic) {
            Ok(p) => p
                .node_id()
                .ok_or_else(|| format!("its certificate names {p}")),
            Err(e) => Err(e.to_string()),
        };
        let not_after = quic
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| not_after_unix(chain.first()?));
        let batchers = Arc::new([
            Batcher::start(quic.clone(), addr),
            Batcher::start(quic.clone(), addr),
        ]);
        let closed = Arc::new(AtomicBool::new(false));
        let (watched, unwatched) = oneshot::channel();
        tokio::spawn(watch_close(quic.clone(), closed.clone(), unwatched));
        Self {
            quic,
            silent_timeouts: Arc::default(),
            node,
            not_after,
            batchers,
            closed,
            _watched: Arc::new(watched),
        }
    }

    /// Whether the connection is still open, as far as its watcher knows.
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// A request on it failed: if quinn has closed the connection (the
    /// node restarted and reset it, say), it is marked closed now, so the
    /// next request connects afresh instead of meeting it again before
    /// the watcher has run. Asked on failures only: quinn's lock is taken
    /// by its driver for every packet.
    fn failed(&self) {
        if self.quic.close_reason().is_some() {
            self.closed.store(true, Ordering::Release);
        }
    }

    /// The batcher of `class`.
    fn batcher(&self, class: Class) -> &Batcher {
        match class {
            Class::Read => &self.batchers[0],
            Class::Write => &self.batchers[1],
        }
    }

    /// Datagrams received from the node so far.
    fn datagrams_received(&self) -> u64 {
        self.quic.stats().udp_rx.datagrams
    }

    /// A request on it was answered: the node is alive.
    fn answered(&self) {
        self.silent_timeouts.store(0, Ordering::Relaxed);
    }

    /// A request on it timed out; `heard` is whether any datagram came
    /// from the node meanwhile. A node that acknowledges packets but
    /// answers late is slow, not gone: only silence counts towards
    /// closing the connection.
    fn timed_out(&self, heard: bool) {
        if heard {
            self.silent_timeouts.store(0, Ordering::Relaxed);
            return;
        }
        let silent = self.silent_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if silent >= SILENT_TIMEOUTS_MAX {
            self.quic.close(0u32.into(), b"no answer");
            // Closed here: the next request connects afresh, without
            // waiting for the watcher to learn it.
            self.closed.store(true, Ordering::Release);
        }
    }
}

/// Sets `closed` once `quic` closes; ends early, without setting it, when
/// the last handle of the connection is dropped (`unwatched`).
async fn watch_close(
    quic: quinn::Connection,
    closed: Arc<AtomicBool>,
    unwatched: oneshot::Receiver<()>,
) {
    tokio::select! {
        _ = quic.closed() => closed.store(true, Ordering::Release),
        _ = unwatched => {}
    }
}

/// Reads the next answer frame from the node at `addr`. The node's limit
/// is configurable, so the client accepts answers up to the ceiling any
/// node may be configured with.
async fn read_answer(
    recv: &mut quinn::RecvStream,
    addr: SocketAddr,
) -> Result<Response, TransportError> {
    read_frame(recv, FRAME_BYTES_CEILING)
        .await
        .map_err(|e| match e {
            FrameReadError::Header(e) | FrameReadError::Body(e) => TransportError::Stream {
                addr,
                reason: e.to_string(),
            },
            FrameReadError::Frame(e) => TransportError::BadResponse {
                addr,
                reason: e.to_string(),
            },
        })
}

/// The client's QUIC endpoint and its connections, one per node.
#[derive(Clone)]
pub struct Transport {
    endpoint: quinn::Endpoint,
    /// The TLS identity new connections present; swapped by
    /// [`Transport::reload_tls`].
    tls: Arc<RwLock<quinn::ClientConfig>>,
    slots: Arc<RwLock<HashMap<SocketAddr, Arc<Slot>>>>,
    /// The member the membership puts at each address
    /// ([`Transport::expect_members`]).
    expected: Arc<RwLock<HashMap<SocketAddr, NodeId>>>,
    connect_timeout: Duration,
}

impl Transport {
    /// Binds a local UDP socket and loads the TLS identity.
    pub fn new(tls: impl Into<TlsSource>, timeouts: &Timeouts) -> Result<Self, SetupError> {
        let client_config = Self::client_config(&tls.into())?;
        // Any local IPv4 address, any port: the kernel picks the route.
        let bind: SocketAddr = "0.0.0.0:0".parse().expect("literal address");
        // Answers from every node arrive on this one socket: a buffer
        // that absorbs bursts (see `quire_net::udp`).
        let socket = quire_net::udp::bind(bind).map_err(SetupError::Bind)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(SetupError::Bind)?;
        Ok(Self {
            endpoint,
            tls: Arc::new(RwLock::new(client_config)),
            slots: Arc::default(),
            expected: Arc::default(),
            connect_timeout: Duration::from_millis(timeouts.connect_ms),
        })
    }

    /// The QUIC client config for the TLS identity in `tls`.
    fn client_config(tls: &TlsSource) -> Result<quinn::ClientConfig, SetupError> {
        let quic = quire_net::tls::client_config_from(&TlsMaterial::load(tls)?)?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // Keep idle connections alive well inside the node's idle timeout.
        transport
            .keep_alive_interval(Some(Duration::from_secs(5)))
            .max_concurrent_uni_streams(0u32.into());
        client_config.transport_config(Arc::new(transport));
        Ok(client_config)
    }

    /// Loads `tls` again (certificate rotation), and forgets the open
    /// connections: each node's next request opens a new one with the new
    /// identity. Requests in flight finish on the old connections, which
    /// close once their last stream is done; an old certificate revoked
    /// after the reload is then never presented again.
    pub fn reload_tls(&self, tls: &TlsSource) -> Result<(), SetupError> {
        let config = Self::client_config(tls)?;
        *self.tls.write().unwrap_or_else(|e| e.into_inner()) = config;
        self.slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// From now on, requests to a member's address go only to the node
    /// whose certificate names that member's id; any other node there is
    /// refused with [`TransportError::WrongNode`] before a request is
    /// sent. Addresses of no member (a node about to join) take any node.
    pub fn expect_members(&self, doc: &Membership) {
        let expected = doc
            .members
            .iter()
            .filter_map(|m| Some((m.addr.parse().ok()?, m.id)))
            .collect();
        *self.expected.write().unwrap_or_else(|e| e.into_inner()) = expected;
    }

    /// Refuses a connection whose peer is not a node, or not the node
    /// expected at `addr`.
    fn check_node(&self, addr: SocketAddr, conn: &Connection) -> Result<(), TransportError> {
        let found = conn
            .node
            .clone()
            .map_err(|reason| TransportError::NotANode { addr, reason })?;
        let expected = self
            .expected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .copied();
        match expected {
            Some(expected) if expected != found => Err(TransportError::WrongNode {
                addr,
                expected,
                found,
            }),
            _ => Ok(()),
        }
    }

    /// The slot of `addr`, made on first use.
    fn slot(&self, addr: SocketAddr) -> Arc<Slot> {
        let known = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)
            .cloned();
        known.unwrap_or_else(|| {
            self.slots
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(addr)
                .or_default()
                .clone()
        })
    }

    async fn connection(&self, addr: SocketAddr) -> Result<Connection, TransportError> {
        let slot = self.slot(addr);
        if let Some(conn) = slot.open() {
            return Ok(conn);
        }
        let waited_from = Instant::now();
        let mut failed = slot.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(conn) = slot.open() {
            return Ok(conn);
        }
        if let Some((at, e)) = &*failed {
            if *at >= waited_from {
                return Err(e.clone());
            }
        }
        let connect_err = |reason: String| TransportError::Connect { addr, reason };
        let began = Instant::now();
        let attempt = async {
            let config = self.tls.read().unwrap_or_else(|e| e.into_inner()).clone();
            let connecting = self
                .endpoint
                .connect_with(config, addr, NODE_SERVER_NAME)
                .map_err(|e| connect_err(e.to_string()))?;
            tokio::time::timeout(self.connect_timeout, connecting)
                .await
                .map_err(|_| {
                    connect_err(format!("no handshake within {:?}", self.connect_timeout))
                })?
                .map_err(|e| connect_err(e.to_string()))
        };
        match attempt.await {
            Ok(quic) => {
                let conn = Connection::new(quic, addr);
                *slot.open.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                *failed = None;
                Ok(conn)
            }
            Err(e) => {
                *failed = Some((began, e.clone()));
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
        let class = Class::of(request, &frame);
        self.exchange(addr, frame, class, timeout).await
    }

    /// Sends `frame` (with the next batch of `class`, or on a stream of its
    /// own) and reads the answer, all within `timeout`. On a timeout the
    /// request is abandoned (its stream reset, so the node stops on it
    /// too); the connection is left to the others.
    async fn exchange(
        &self,
        addr: SocketAddr,
        frame: Vec<u8>,
        class: Option<Class>,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = tokio::time::timeout_at(deadline, self.connection(addr))
            .await
            .map_err(|_| TransportError::Timeout(addr))??;
        self.check_node(addr, &conn)?;
        let datagrams_before = conn.datagrams_received();
        let timed_out = |conn: &Connection| {
            let heard = conn.datagrams_received() > datagrams_before;
            conn.timed_out(heard);
            if heard {
                TransportError::Slow(addr)
            } else {
                TransportError::Timeout(addr)
            }
        };
        if let Some(class) = class {
            let call = conn.batcher(class).call(frame, deadline);
            return match tokio::time::timeout_at(deadline, call).await {
                Ok(answer) => {
                    match &answer {
                        Ok(_) => conn.answered(),
                        Err(_) => conn.failed(),
                    }
                    answer
                }
                Err(_) => Err(timed_out(&conn)),
            };
        }
        let stream_err = |reason: String| TransportError::Stream { addr, reason };
        // Opening waits while the node's stream limit is reached.
        let (mut send, mut recv) =
            match tokio::time::timeout_at(deadline, conn.quic.open_bi()).await {
                Ok(Ok(opened)) => opened,
                Ok(Err(e)) => {
                    conn.failed();
                    return Err(stream_err(e.to_string()));
                }
                Err(_) => return Err(timed_out(&conn)),
            };
        let talk = async {
            write_encoded(&mut send, &frame)
                .await
                .map_err(|e| stream_err(e.to_string()))?;
            read_answer(&mut recv, addr).await
        };
        match tokio::time::timeout_at(deadline, talk).await {
            Ok(answer) => {
                match &answer {
                    Ok(_) => conn.answered(),
                    Err(_) => conn.failed(),
                }
                answer
            }
            Err(_) => {
                // Errors here only mean the stream is already closed.
                let _ = send.reset(0u32.into());
                let _ = recv.stop(0u32.into());
                Err(timed_out(&conn))
            }
        }
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
        self.exchange(addr, bytes.to_vec(), None, timeout).await
    }

    #[cfg(feature = "testing")]
    /// Sends `frames` (each framed already) on one stream and reads
    /// `answers` answers from it; for tests of how a node serves a stream
    /// of several requests.
    pub async fn call_frames(
        &self,
        addr: SocketAddr,
        frames: &[Vec<u8>],
        answers: usize,
        timeout: Duration,
    ) -> Result<Vec<Response>, TransportError> {
        let stream_err = |reason: String| TransportError::Stream { addr, reason };
        let talk = async {
            let conn = self.connection(addr).await?;
            let (mut send, mut recv) = conn
                .quic
                .open_bi()
                .await
                .map_err(|e| stream_err(e.to_string()))?;
            for frame in frames {
                send.write_all(frame)
                    .await
                    .map_err(|e| stream_err(e.to_string()))?;
            }
            let _ = send.finish();
            let mut out = Vec::new();
            for _ in 0..answers {
                out.push(read_answer(&mut recv, addr).await?);
            }
            Ok(out)
        };
        tokio::time::timeout(timeout, talk)
            .await
            .map_err(|_| TransportError::Timeout(addr))?
    }

    /// The connection to `addr` as it is now, if one is open (a peek:
    /// never waits).
    fn open_connection(&self, addr: SocketAddr) -> Option<Connection> {
        let slot = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&addr)?
            .clone();
        slot.open()
    }

    #[cfg(feature = "testing")]
    /// The id of the open connection to `addr`, if any. Two equal answers
    /// mean requests in between shared one connection (tests check that a
    /// refused request does not cost the connection).
    pub fn connection_id(&self, addr: SocketAddr) -> Option<usize> {
        Some(self.open_connection(addr)?.quic.stable_id())
    }

    /// When the certificate of the node at `addr` expires (Unix seconds),
    /// if a connection to it is open: for warnings before it does.
    pub fn peer_not_after(&self, addr: &str) -> Option<i64> {
        self.open_connection(addr.parse().ok()?)?.not_after
    }

    /// Closes every connection (clean goodbye to the nodes).
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"client closing");
    }
}
