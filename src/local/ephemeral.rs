//! A throwaway cluster of node processes in a temporary directory, for
//! `quire bench --local-nodes N`: started, formed, measured, removed.

use super::layout::Layout;
use super::process::{self, spawn_node};
use super::LocalError;
use crate::admin::form_cluster;
use quire_client::config::ClientConfig;
use quire_client::transport::Transport;
use quire_shared::{Membership, StoreConfig};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Node processes that are killed, and their directory removed, on drop.
pub struct EphemeralCluster {
    _dir: tempfile::TempDir,
    children: Vec<Child>,
    /// A client config reaching every node.
    pub client_config: ClientConfig,
    /// The membership document.
    pub membership: Membership,
}

impl EphemeralCluster {
    /// Starts `nodes` processes of `exe` (`EXE --config F node`) on free
    /// ports and forms a cluster with `stores` (the `default` store when
    /// empty).
    pub async fn start(
        exe: &Path,
        nodes: usize,
        stores: Vec<StoreConfig>,
    ) -> Result<Self, LocalError> {
        let dir = tempfile::tempdir().map_err(|source| {
            LocalError::Layout(super::layout::LayoutError::Io {
                path: std::env::temp_dir(),
                source,
            })
        })?;
        let layout = Layout::new(dir.path().join("cluster"));
        let file = layout.create(nodes, 0)?;
        let mut cluster = Self {
            _dir: dir,
            children: Vec::new(),
            client_config: ClientConfig {
                seeds: Vec::new(),
                tls: quire_client::config::TlsFiles {
                    cert: layout.dir.join("client.pem"),
                    key: layout.dir.join("client-key.pem"),
                    ca: layout.dir.join("ca.pem"),
                },
                timeouts: Default::default(),
            },
            membership: placeholder(),
        };
        for k in 1..=nodes {
            cluster.children.push(spawn_node(exe, &layout, k)?);
        }
        let mut addrs = Vec::new();
        for k in 1..=nodes {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(text) = std::fs::read_to_string(layout.bound_addr_file(k)) {
                    if !text.trim().is_empty() {
                        addrs.push(text.trim().to_string());
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    return Err(LocalError::NodeSlow {
                        k,
                        secs: 30,
                        log: layout.log_file(k).display().to_string(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        cluster.client_config.seeds = addrs.clone();
        let transport = Transport::new(&cluster.client_config.tls, &Default::default())
            .map_err(|e| LocalError::Client(e.to_string()))?;
        cluster.membership = form_cluster(
            &transport,
            file.id()?,
            &addrs,
            stores,
            Duration::from_secs(30),
        )
        .await?;
        transport.close();
        Ok(cluster)
    }

    /// The node processes' ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

/// A document standing in until the real one is formed.
fn placeholder() -> Membership {
    Membership {
        cluster_id: 0,
        epoch: 0,
        partitions: 1,
        members: Vec::new(),
        stores: Vec::new(),
        owners: Vec::new(),
    }
}

impl Drop for EphemeralCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            process::signal(child.id() as i32, process::STOP);
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Peak resident memory of process `pid` in bytes (Linux `VmHWM`).
pub fn peak_memory_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
