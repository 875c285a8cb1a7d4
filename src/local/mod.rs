//! A local cluster for development and tests: `quire up` and `quire down`.
//!
//! `up` creates the cluster directory on first use (see [`layout`]), starts
//! every node as its own process, forms the cluster and supervises the
//! nodes until told to stop; run again on the same directory it restarts
//! the same nodes with their data.
//!
//! # Layout
//!
//! - [`layout`]: the directory, certificates and configs.
//! - [`process`]: spawning and signalling node processes.
//! - [`ephemeral`]: a throwaway cluster for benchmarks.

pub mod ephemeral;
pub mod layout;
pub mod process;

use crate::admin::{form_cluster, AdminError};
use layout::{Layout, LayoutError};
use quire_client::config::ClientConfig;
use quire_client::transport::Transport;
use quire_shared::Membership;
use std::future::Future;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// Nodes in a new local cluster unless `--nodes` says otherwise.
pub const NODES_DEFAULT: usize = 3;

/// First port of a new local cluster unless `--base-port` says otherwise.
pub const BASE_PORT_DEFAULT: u16 = 7400;

/// Pause between hint-delivery passes while `quire up` runs.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);

/// How long nodes get to start and to stop cleanly.
const NODE_GRACE: Duration = Duration::from_secs(30);

/// Why `quire up` or `quire down` failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The directory or its files.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A node of this directory is still running.
    #[error(
        "node-{k} of {dir} is already running (pid {pid}); stop it with `quire down --dir {dir}`"
    )]
    AlreadyRunning {
        /// Node number.
        k: usize,
        /// Its pid.
        pid: i32,
        /// The cluster directory.
        dir: String,
    },
    /// A node process exited while starting.
    #[error("node-{k} exited while starting ({status}); its log {log} ends with:\n{tail}")]
    NodeDied {
        /// Node number.
        k: usize,
        /// How it exited.
        status: String,
        /// Its log file.
        log: String,
        /// The last lines of the log.
        tail: String,
    },
    /// A node did not report its address in time.
    #[error("node-{k} did not start listening within {secs} s; see {log}")]
    NodeSlow {
        /// Node number.
        k: usize,
        /// Seconds waited.
        secs: u64,
        /// Its log file.
        log: String,
    },
    /// The client side (TLS files) could not be set up.
    #[error("cannot set up the admin client: {0}")]
    Client(String),
    /// The nodes would not form a cluster.
    #[error(transparent)]
    Form(#[from] AdminError),
}

/// What `quire up` was asked for.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The cluster directory.
    pub dir: PathBuf,
    /// Number of nodes; `None` keeps an existing cluster's count (or the
    /// default for a new one).
    pub nodes: Option<usize>,
    /// First port; `None` keeps an existing cluster's (or the default).
    pub base_port: Option<u16>,
    /// The executable to run nodes with (`EXE --config FILE node`).
    pub exe: PathBuf,
}

fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Node processes started by `up`, stopped on drop if not stopped before.
struct Nodes {
    layout: Layout,
    children: Vec<(usize, Child)>,
    reported: Vec<usize>,
}

impl Nodes {
    /// SIGTERM every node, wait for them, SIGKILL stragglers, remove pid
    /// files.
    fn stop(&mut self) {
        for (_, child) in &self.children {
            process::signal(child.id() as i32, process::STOP);
        }
        let deadline = Instant::now() + NODE_GRACE;
        for (k, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("quire: node-{k} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            let _ = std::fs::remove_file(self.layout.pid_file(*k));
        }
        self.children.clear();
    }

    /// Reports nodes that exited since the last call, once each; true when
    /// none is left.
    fn check(&mut self) -> bool {
        for (k, child) in &mut self.children {
            if self.reported.contains(k) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                self.reported.push(*k);
                let config = self.layout.node_config(*k);
                eprintln!(
                    "quire: node-{k} exited ({status}); restart it by hand with \
                     `quire-node --config {0}` (or `quire --config {0} node`)",
                    config.display()
                );
            }
        }
        self.reported.len() == self.children.len()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for node K to write its bound address.
async fn bound_addr(layout: &Layout, k: usize, child: &mut Child) -> Result<String, LocalError> {
    let deadline = Instant::now() + NODE_GRACE;
    let path = layout.bound_addr_file(k);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&path) {
            if !addr.trim().is_empty() {
                return Ok(addr.trim().to_string());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // The node may have written its last words just now.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(LocalError::NodeDied {
                k,
                status: status.to_string(),
                log: layout.log_file(k).display().to_string(),
                tail: log_tail(&layout.log_file(k)),
            });
        }
        if Instant::now() >= deadline {
            return Err(LocalError::NodeSlow {
                k,
                secs: NODE_GRACE.as_secs(),
                log: layout.log_file(k).display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a local cluster until `shutdown` resolves: create or reuse the
/// directory, start the nodes, form the cluster, call `ready` with the
/// membership document, supervise, then stop every node.
pub async fn up(
    options: UpOptions,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&Membership, &Layout),
) -> Result<(), LocalError> {
    let layout = Layout::new(&options.dir);
    let file = match layout.read()? {
        None => layout.create(
            options.nodes.unwrap_or(NODES_DEFAULT),
            options.base_port.unwrap_or(BASE_PORT_DEFAULT),
        )?,
        Some(mut file) => {
            if let Some(n) = options.nodes.filter(|n| *n != file.nodes) {
                return Err(LayoutError::Mismatch(format!(
                    "{} holds a {}-node cluster; --nodes {n} would need rebalancing, which \
                     `quire up` does not do (use another --dir for a new cluster)",
                    options.dir.display(),
                    file.nodes
                ))
                .into());
            }
            if let Some(p) = options.base_port.filter(|p| *p != file.base_port) {
                layout.change_base_port(&mut file, p)?;
            }
            file
        }
    };
    let cluster_id = file.id()?;
    for k in 1..=file.nodes {
        if let Some(pid) = process::read_pid(&layout.pid_file(k)) {
            if process::is_node_alive(pid) {
                return Err(LocalError::AlreadyRunning {
                    k,
                    pid,
                    dir: options.dir.display().to_string(),
                });
            }
        }
    }

    let mut nodes = Nodes {
        layout: layout.clone(),
        children: Vec::new(),
        reported: Vec::new(),
    };
    for k in 1..=file.nodes {
        let child = process::spawn_node(&options.exe, &layout, k)?;
        nodes.children.push((k, child));
    }
    let mut addrs = Vec::new();
    for (k, child) in &mut nodes.children {
        addrs.push(bound_addr(&layout, *k, child).await?);
    }
    // The admin client uses the client certificate; seeds do not matter.
    layout.write_client_config(addrs.clone())?;
    let config = ClientConfig::load(&layout.client_config())
        .map_err(|e| LocalError::Client(e.to_string()))?;
    let transport = Transport::new(&config.tls, &config.timeouts)
        .map_err(|e| LocalError::Client(e.to_string()))?;
    let doc = form_cluster(&transport, cluster_id, &addrs, Vec::new(), NODE_GRACE).await?;
    transport.close();
    // Hint delivery for the local cluster, while it runs.
    let maintenance = quire_client::Client::connect(config)
        .await
        .map_err(|e| LocalError::Client(e.to_string()))?;
    let maintenance_task = maintenance.spawn_maintenance(MAINTENANCE_INTERVAL);
    ready(&doc, &layout);

    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => if nodes.check() {
                eprintln!("quire: every node has exited; stopping");
                break;
            },
        }
    }
    maintenance_task.abort();
    maintenance.close();
    tokio::task::block_in_place(|| nodes.stop());
    Ok(())
}

/// Stops the nodes of a cluster directory whose `quire up` is gone (or
/// still running: its nodes stop and it reports them exited). Returns how
/// many node processes were stopped.
pub fn down(dir: &std::path::Path) -> Result<usize, LocalError> {
    let layout = Layout::new(dir);
    let Some(file) = layout.read()? else {
        return Err(
            LayoutError::Mismatch(format!("{} holds no Quire cluster", dir.display())).into(),
        );
    };
    let mut live = Vec::new();
    for k in 1..=file.nodes {
        if let Some(pid) = process::read_pid(&layout.pid_file(k)) {
            if process::is_node_alive(pid) {
                process::signal(pid, process::STOP);
                live.push((k, pid));
            } else {
                let _ = std::fs::remove_file(layout.pid_file(k));
            }
        }
    }
    let deadline = Instant::now() + NODE_GRACE;
    for (k, pid) in &live {
        while process::is_node_alive(*pid) {
            if Instant::now() >= deadline {
                process::signal(*pid, process::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(layout.pid_file(*k));
    }
    Ok(live.len())
}
