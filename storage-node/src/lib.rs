//! `quire-node`: a Quire storage node. Dumb and durable on purpose.
//!
//! A node keeps versioned objects (DVVSets) in LMDB and answers a small
//! request set over QUIC with mutual TLS. It never calls another node: all
//! coordination (quorums, replication, repair) lives in the client SDK.
//!
//! # Layout
//!
//! - [`config`]: the TOML config file.
//! - [`storage`]: the LMDB environment, the only code that knows LMDB.
//! - [`writer`]: the writer thread, batching writes into one commit.
//! - `handler`: validation and dispatch of requests.
//! - `server`: QUIC accept loop, one request or a batch per stream
//!   (answered in order); strikes against peers whose frames cannot be
//!   read.
//! - `quic`: the QUIC settings, for peers in good standing and struck ones.
//! - `error`: [`NodeError`], why a node could not start or stopped.
//! - [`metrics`]: what the node tells Prometheus, and `GET /metrics`.
//! - [`reload`]: new certificates on SIGHUP, without a restart.
//! - [`systemd`]: the notify protocol (ready, stopping, watchdog).
//! - [`logging`]: text or JSON logs for the binaries.
//!
//! TLS set-up (TLS 1.3, client certificates required and chained to the
//! cluster CA) and frame I/O come from [`quire_net`], shared with the SDK.

pub mod config;
mod error;
pub(crate) mod handler;
pub mod inbound;
pub mod logging;
pub mod metrics;
mod quic;
pub mod reload;
pub(crate) mod server;
pub mod storage;
pub mod systemd;
pub mod writer;

use config::NodeConfig;
pub use error::NodeError;
use handler::NodeState;
pub use server::strikes::STRUCK_CONNECTION_CODE;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
pub use storage::Identity;

/// Environment variable that shifts a node's clock by this many
/// milliseconds (signed), read once at the first write, and only by builds
/// with the `fault-injection` feature (test builds): fault tests start
/// nodes whose clocks disagree, as machines' clocks do, to measure what
/// last-write-wins then drops. A release binary ignores it.
pub const CLOCK_SKEW_ENV: &str = "QUIRE_CLOCK_SKEW_MS";

/// File in the data directory holding the address the node is bound to, so
/// tools can find a node started on port 0.
pub const LISTEN_ADDR_FILE: &str = "listen-addr";

/// File in the data directory holding the address metrics are served on,
/// so tools can find it when the config asked for port 0.
pub const METRICS_ADDR_FILE: &str = "metrics-addr";

/// Binds the metrics listener and records its address.
fn bind_metrics(
    addr: SocketAddr,
    data_dir: &std::path::Path,
) -> Result<(tokio::net::TcpListener, SocketAddr), NodeError> {
    let bind_err = |source| NodeError::MetricsBind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let bound = std_listener.local_addr().map_err(bind_err)?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?;
    let path = data_dir.join(METRICS_ADDR_FILE);
    std::fs::write(&path, bound.to_string()).map_err(|source| NodeError::AddrFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok((listener, bound))
}

/// A node serving in this process (tests, `quire` tooling).
pub struct RunningNode {
    /// The bound address.
    pub addr: SocketAddr,
    /// Where it serves metrics (`GET /metrics`), if its config asks.
    pub metrics_addr: Option<SocketAddr>,
    /// Node and actor ids.
    pub identity: Identity,
    /// Reloads the TLS files (SIGHUP): certificate rotation.
    pub reloader: reload::TlsReloader,
    /// Trips when an fsync fails; the node then refuses writes and must
    /// stop.
    pub fail_stop: writer::failstop::FailStop,
    /// The node's storage, for tests that inject faults into it.
    #[cfg(any(test, feature = "fault-injection"))]
    pub storage: storage::Storage,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    lock_watch: storage::dirlock::DirLockWatch,
}

impl RunningNode {
    /// Stops serving, drains in-flight requests and closes storage. When
    /// this returns the data directory may be opened again, unless some
    /// work held storage 10 s past the stop (logged as a warning).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        #[cfg(any(test, feature = "fault-injection"))]
        drop(self.storage);
        // Work that outlived its request (a scan on a blocking thread)
        // may still hold a storage handle for a moment.
        let watch = self.lock_watch;
        let released =
            tokio::task::spawn_blocking(move || watch.released_within(Duration::from_secs(10)))
                .await
                .unwrap_or(false);
        if !released {
            tracing::warn!("storage still open 10 s after the node stopped");
        }
    }
}

/// The node id the node's certificate names: the node is that member
/// and no other, so clients can check who answers at its address.
fn certificate_node_id(config: &NodeConfig) -> Result<quire_shared::NodeId, NodeError> {
    let not_node = |reason: String| NodeError::NotANodeCertificate {
        path: config.tls.cert.display().to_string(),
        reason,
    };
    let chain = quire_net::tls::load_certs(&config.tls.cert, "node certificate")?;
    let principal =
        quire_net::identity::principal_of(&chain[0]).map_err(|e| not_node(e.to_string()))?;
    principal
        .node_id()
        .ok_or_else(|| not_node(format!("it names {principal}")))
}

/// The async runtime a node process runs on, with the threads its config
/// asks for (`runtime.worker_threads`: 1 is a current-thread runtime, 0
/// one thread per core).
pub fn runtime(config: &NodeConfig) -> std::io::Result<tokio::runtime::Runtime> {
    match config.runtime.worker_threads {
        0 => tokio::runtime::Runtime::new(),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

/// Opens storage, binds the listen address and starts serving in the
/// background. Returns once the node accepts connections.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    config.validate()?;
    let node_id = certificate_node_id(&config)?;
    let open = storage::Storage::open_as;
    // Test builds only (see `StorageSettings::test_skip_fsync`).
    #[cfg(feature = "fault-injection")]
    let open = if config.storage.test_skip_fsync {
        tracing::warn!(
            "storage.test_skip_fsync is set: this node does not fsync after opening (a test hook)"
        );
        storage::Storage::open_ignoring_flushes
    } else {
        open
    };
    let (storage, identity) = open(
        &config.data_dir,
        config.storage.map_size_bytes,
        Some(node_id),
    )?;
    let lock_watch = storage.lock_watch();
    let (writer, writer_thread) = writer::Writer::start(
        storage.clone(),
        identity.actor_id,
        writer::Bounds {
            batch_writes_max: config.storage.batch_writes_max,
            queue_bytes_max: config.storage.writer_queue_bytes_max,
        },
        Duration::from_millis(config.storage.flush_interval_ms.into()),
    );
    let fail_stop = writer.fail_stop().clone();
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind_metrics(addr, &config.data_dir)?),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().map(|(_, addr)| *addr);
    let state = Arc::new(NodeState::new(
        identity,
        storage,
        writer,
        config.limits.clone(),
        config.cluster_id,
        quire_net::seal::Verifier::load(&config.tls.ca)?,
        metrics_addr,
    )?);
    if config.cluster_id.is_none() {
        tracing::warn!(
            "no cluster_id in the node config: the first membership document offered decides the node's cluster"
        );
    }

    let configs = quic::server_configs(&config)?;
    let struck = Arc::new(std::sync::RwLock::new(Arc::new(configs.struck)));
    let bind_err = |source| NodeError::Bind {
        addr: config.listen,
        source,
    };
    let socket = quire_net::udp::bind(config.listen).map_err(bind_err)?;
    // Stateless resets keyed by the node's persistent secret: a client
    // still holding a connection from before a restart learns at its first
    // packet that the connection is gone.
    // Connection ids are signed with a key from the same secret, so the
    // restarted node recognises them as its own and answers with a reset
    // instead of dropping the packets.
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &identity.reset_secret);
    let cid_key = u64::from_le_bytes(
        identity.reset_secret[..8]
            .try_into()
            .expect("eight bytes of a 32-byte secret"),
    ) ^ 0x5155_4952_455f_4349;
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let endpoint = quinn::Endpoint::new(
        endpoint_config,
        Some(configs.normal),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(bind_err)?;
    let addr = endpoint.local_addr().map_err(|source| NodeError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr_path = config.data_dir.join(LISTEN_ADDR_FILE);
    std::fs::write(&addr_path, addr.to_string()).map_err(|source| NodeError::AddrFile {
        path: addr_path.display().to_string(),
        source,
    })?;
    tracing::info!(%addr, node_id = %identity.node_id, "node serving");

    let reloader = reload::TlsReloader {
        config: config.clone(),
        endpoint: endpoint.clone(),
        state: Arc::downgrade(&state),
        node_id,
        struck: struck.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    #[cfg(any(test, feature = "fault-injection"))]
    let test_storage = state.storage.clone();
    let scrapes = metrics_listener.map(|(listener, addr)| {
        tracing::info!(%addr, "serving metrics at http://{addr}/metrics");
        tokio::spawn(metrics::http::serve(listener, Arc::downgrade(&state)))
    });
    let task = tokio::spawn(async move {
        server::serve(endpoint, state, struck, async {
            let _ = stopped.await;
        })
        .await;
        if let Some(scrapes) = scrapes {
            scrapes.abort();
        }
        // `serve` has dropped every connection; the last state handle goes
        // here, which stops the writer after its queued writes.
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    });
    Ok(RunningNode {
        addr,
        metrics_addr,
        identity,
        reloader,
        fail_stop,
        #[cfg(any(test, feature = "fault-injection"))]
        storage: test_storage,
        stop,
        task,
        lock_watch,
    })
}

/// How long a node that fail-stopped keeps answering (refusing writes)
/// before it closes its connections and exits.
const FAIL_STOP_GRACE: Duration = Duration::from_secs(1);

/// Runs a node until `shutdown` resolves, then stops it cleanly. If an
/// fsync fails first, the node stops and this returns
/// [`NodeError::FailStop`], so the process exits non-zero and systemd
/// restarts it from what is really on disk.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    restrict_file_modes();
    serve_until(start(config).await?, shutdown).await
}

/// The umask a node process runs with: nothing it creates is readable or
/// writable by group or others.
pub const NODE_UMASK: u32 = 0o077;

/// Sets the process's umask to [`NODE_UMASK`], so every file and directory
/// the node creates from here on (LMDB files, the data directory, the
/// address file, anything a library writes) is its user's only. Process
/// wide, so [`run`] calls it (a node process), never [`start`] (which
/// tests call in a process that writes other files).
pub fn restrict_file_modes() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(NODE_UMASK));
}

/// Serves a started node until `shutdown` resolves or an fsync fails (see
/// [`run`]).
pub async fn serve_until(
    node: RunningNode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let fail_stop = node.fail_stop.clone();
    systemd::ready();
    let watched = fail_stop.clone();
    systemd::spawn_watchdog(move || watched.reason().is_none());
    let reloads = reload_on_sighup(&node.reloader);
    tokio::select! {
        () = reloads => unreachable!("the reload loop never ends"),
        _ = shutdown => {
            tracing::info!("shutting down");
            systemd::stopping();
            node.stop().await;
            Ok(())
        }
        reason = fail_stop.failed() => {
            systemd::stopping();
            // Answer what is in flight (writes get a typed Unavailable, so
            // clients move to another replica at once) before going away.
            tokio::time::sleep(FAIL_STOP_GRACE).await;
            node.stop().await;
            Err(NodeError::FailStop(reason))
        }
    }
}

/// Reloads the TLS files at every SIGHUP, forever; a reload that fails is
/// logged and the files in use stay.
async fn reload_on_sighup(reloader: &reload::TlsReloader) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot handle SIGHUP: certificates reload only at restart");
        return std::future::pending().await;
    };
    while hup.recv().await.is_some() {
        if let Err(e) = reloader.reload() {
            tracing::error!(error = %e, "certificate reload refused; the old files stay in use");
        }
    }
    std::future::pending().await
}

/// Resolves on SIGINT or SIGTERM (what systemd sends on stop).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a SIGTERM that arrives right after a node reported ready
/// must stop it cleanly, not kill it with the default action. Call it
/// inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
