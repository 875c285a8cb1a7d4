//! One node of a local cluster, in this process or as its own process, with
//! the same handle either way: start, stop, kill (processes only) and start
//! again on the same address and data.

use super::layout::Layout;
use super::process;
use super::ClusterError;
use quire_node::config::NodeConfig;
use quire_node::RunningNode;
use quire_shared::NodeId;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a node gets to start listening, and to stop cleanly.
pub const NODE_GRACE: Duration = Duration::from_secs(30);

/// How the nodes of a cluster run.
#[derive(Clone, Debug)]
pub enum Launch {
    /// Tasks in this process: quick to start, for examples and most tests.
    InProcess,
    /// One OS process per node (`EXE --config node.toml node`), for tests
    /// that kill -9 a node and for `quire up`.
    Processes {
        /// The executable that runs a node.
        exe: PathBuf,
    },
}

/// What runs node K right now.
enum Running {
    Stopped,
    Task(Box<RunningNode>),
    Process(Child),
}

/// Node K of a local cluster.
pub struct LocalNode {
    /// Its number in the cluster directory (`node-K`), from 1.
    pub k: usize,
    /// Its node id, known once the cluster is formed.
    pub node_id: NodeId,
    /// The address it listens on (fixed after its first start).
    pub listen: SocketAddr,
    /// Milliseconds the node's clock is shifted by from its next start
    /// (node processes only): fault tests skew clocks between nodes.
    pub clock_skew_ms: i64,
    launch: Launch,
    layout: Layout,
    running: Running,
}

impl LocalNode {
    pub(super) fn new(k: usize, launch: Launch, layout: Layout) -> Self {
        Self {
            k,
            node_id: NodeId(0),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock_skew_ms: 0,
            launch,
            layout,
            running: Running::Stopped,
        }
    }

    /// Starts the node and waits until it listens. After the first start
    /// its config names the bound address, so it comes back on the same
    /// one.
    pub async fn start(&mut self) -> Result<(), ClusterError> {
        if self.running() {
            return Err(ClusterError::AlreadyRunning { k: self.k });
        }
        let first = self.listen.port() == 0;
        match &self.launch {
            Launch::InProcess => {
                let config = NodeConfig::load(&self.layout.node_config(self.k))?;
                let node = quire_node::start(config).await?;
                self.listen = node.addr;
                self.node_id = node.identity.node_id;
                self.running = Running::Task(Box::new(node));
            }
            Launch::Processes { exe } => {
                let mut child = process::spawn_node(exe, &self.layout, self.k, self.clock_skew_ms)?;
                let addr = wait_for_addr(&self.layout, self.k, &mut child).await;
                self.running = Running::Process(child);
                self.listen = addr?;
            }
        }
        if first {
            self.layout.pin_node_address(self.k, self.listen)?;
        }
        Ok(())
    }

    /// Stops the node cleanly (SIGTERM for a process, then SIGKILL after
    /// [`NODE_GRACE`]); its storage is closed when this returns.
    pub async fn stop(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Stopped => {}
            Running::Task(node) => node.stop().await,
            Running::Process(mut child) => {
                stop_signal(&child);
                let deadline = Instant::now() + NODE_GRACE;
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reap(&mut child, self.k);
                let _ = std::fs::remove_file(self.layout.pid_file(self.k));
            }
        }
    }

    /// kill -9: the process dies without closing anything. A node in this
    /// process cannot be killed; it is stopped instead.
    pub async fn kill(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Process(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            other => {
                self.running = other;
                self.stop().await;
            }
        }
    }

    /// How the node is run (in this process, or as a process of which
    /// binary).
    pub(super) fn launch(&self) -> &Launch {
        &self.launch
    }

    /// SIGSTOP (`pause`) or SIGCONT the node's process; a node in this
    /// process cannot be paused (false).
    pub fn pause(&self, pause: bool) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        let signal = if pause {
            process::PAUSE
        } else {
            process::RESUME
        };
        process::signal(pid as i32, signal);
        true
    }

    /// Whether the node runs (a process that exited by itself counts as
    /// stopped only after [`LocalNode::exited`] saw it).
    pub fn running(&self) -> bool {
        !matches!(self.running, Running::Stopped)
    }

    /// The process id, for a node running as a process.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(child) => Some(child.id()),
            _ => None,
        }
    }

    /// If the node's process exited by itself, how; it is then stopped.
    pub fn exited(&mut self) -> Option<String> {
        let Running::Process(child) = &mut self.running else {
            return None;
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                self.running = Running::Stopped;
                Some(status.to_string())
            }
            _ => None,
        }
    }

    /// `host:port` of the node itself.
    pub fn addr(&self) -> String {
        self.listen.to_string()
    }

    /// The node's log file (process nodes).
    pub fn log(&self) -> PathBuf {
        self.layout.log_file(self.k)
    }

    /// The node's data directory (its LMDB environment): tests wipe it to
    /// bring a node back with no data.
    pub fn data_dir(&self) -> PathBuf {
        self.layout.node_dir(self.k).join("data")
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        if let Running::Process(child) = &mut self.running {
            stop_signal(child);
            reap(child, self.k);
            let _ = std::fs::remove_file(self.layout.pid_file(self.k));
        }
    }
}

/// Asks a node process to stop: SIGTERM, then SIGCONT so that a paused
/// node (SIGSTOP, in fault tests) gets to handle it.
fn stop_signal(child: &Child) {
    process::signal(child.id() as i32, process::STOP);
    process::signal(child.id() as i32, process::RESUME);
}

/// Waits for a stopping child, SIGKILLing it after [`NODE_GRACE`].
fn reap(child: &mut Child, k: usize) {
    let deadline = Instant::now() + NODE_GRACE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                eprintln!("quire: node-{k} did not stop in time; killing it");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Waits for node K's process to write its bound address.
async fn wait_for_addr(
    layout: &Layout,
    k: usize,
    child: &mut Child,
) -> Result<SocketAddr, ClusterError> {
    let deadline = Instant::now() + NODE_GRACE;
    let path = layout.bound_addr_file(k);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(addr) = text.trim().parse() {
                return Ok(addr);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // The node may have written its last words just now.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(ClusterError::NodeDied {
                k,
                status: status.to_string(),
                log: layout.log_file(k).display().to_string(),
                tail: log_tail(&layout.log_file(k)),
            });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ClusterError::NodeSlow {
                k,
                secs: NODE_GRACE.as_secs(),
                log: layout.log_file(k).display().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
