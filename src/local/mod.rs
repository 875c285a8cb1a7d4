//! A local cluster for development: `quire up` and `quire down`.
//!
//! `up` starts the nodes of a cluster directory as processes through the
//! one launcher ([`crate::cluster::ClusterBuilder`]), supervises them and
//! runs hint delivery until told to stop; run again on the same directory it
//! restarts the same nodes with their data. `down` stops nodes whose `up`
//! is gone, from their pid files.

use crate::cluster::layout::{Layout, LayoutError};
use crate::cluster::{process, ClusterBuilder, ClusterError, LocalCluster, NODE_GRACE};
use quire_shared::Membership;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Nodes in a new local cluster unless `--nodes` says otherwise.
pub const NODES_DEFAULT: usize = 3;

/// First port of a new local cluster unless `--base-port` says otherwise.
pub const BASE_PORT_DEFAULT: u16 = 7400;

/// Pause between hint-delivery passes while `quire up` runs.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);

/// Why `quire up` or `quire down` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The directory or its files.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Starting or forming the cluster.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
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

/// Runs a local cluster until `shutdown` resolves: create or reuse the
/// directory, start the nodes, form the cluster, call `ready` with the
/// membership document, supervise, then stop every node.
pub async fn up(
    options: UpOptions,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&Membership, &Layout),
) -> Result<(), LocalError> {
    let layout = Layout::new(&options.dir);
    let existing = layout.read()?;
    if existing.as_ref().is_some_and(|f| f.nodes == 0) {
        return Err(crate::cluster::layout::LayoutError::Mismatch(format!(
            "{} belongs to a cluster on hosts of its own (made by `quire cert init`): it has no local nodes to run",
            options.dir.display()
        ))
        .into());
    }
    if let Some(mut file) = existing.clone() {
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
        if let Some(p) = options.base_port.filter(|p| *p != file.base_port) {
            layout.change_base_port(&mut file, p)?;
        }
    }
    let nodes = options
        .nodes
        .or(existing.as_ref().map(|f| f.nodes))
        .unwrap_or(NODES_DEFAULT);
    let mut cluster = ClusterBuilder::new(nodes)
        .processes(&options.exe)
        .dir(&options.dir)
        .base_port(options.base_port.unwrap_or(BASE_PORT_DEFAULT))
        .start()
        .await?;
    // Hint delivery for the local cluster, while it runs.
    let maintenance = cluster.client().await.map_err(ClusterError::from)?;
    let maintenance_task = maintenance.spawn_maintenance(MAINTENANCE_INTERVAL);
    ready(cluster.membership(), cluster.layout());

    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut identity = identity_stamp(cluster.layout());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                if report_exits(&mut cluster) {
                    eprintln!("quire: every node has exited; stopping");
                    break;
                }
                // `quire cert rotate` and `rotate-ca` replace the files
                // under us: the maintenance client follows, as nodes do.
                let now = identity_stamp(cluster.layout());
                if now != identity {
                    identity = now;
                    if let Err(e) = maintenance.reload_tls() {
                        eprintln!("quire: certificate reload refused, the old files stay in use: {e}");
                    }
                }
            }
        }
    }
    maintenance_task.abort();
    maintenance.close();
    cluster.stop_all().await;
    Ok(())
}

/// When the operator's certificate, key and CA bundle were last written.
fn identity_stamp(layout: &Layout) -> Vec<Option<std::time::SystemTime>> {
    let tls = layout.client_tls();
    [tls.cert, tls.key, tls.ca]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Reports nodes that exited since the last call; true when none is left.
fn report_exits(cluster: &mut LocalCluster) -> bool {
    for node in &mut cluster.nodes {
        if let Some(status) = node.exited() {
            let config = cluster.layout.node_config(node.k);
            eprintln!(
                "quire: node-{} exited ({status}); restart it by hand with \
                 `quire-node --config {1}` (or `quire --config {1} node`)",
                node.k,
                config.display()
            );
        }
    }
    cluster.nodes.iter().all(|n| !n.running())
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
        let recorded = process::read_pid(&layout.pid_file(k));
        match recorded.filter(|&pid| process::is_node_alive(pid)) {
            Some(pid) => live.push((k, pid)),
            None => {
                if recorded.is_some() {
                    let _ = std::fs::remove_file(layout.pid_file(k));
                }
                // A node the operator started by hand (one made with
                // `quire node new`, say) has no pid file.
                if let Some(pid) = process::find_node_by_config(&layout.node_config(k)) {
                    live.push((k, pid));
                }
            }
        }
    }
    for (_, pid) in &live {
        process::signal(*pid, process::STOP);
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
