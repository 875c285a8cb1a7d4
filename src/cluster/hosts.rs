//! Clusters whose nodes run on hosts of their own (one machine each, as
//! `docs/deploy.md` installs them), made from an operator's directory.
//!
//! `quire up` makes a directory whose nodes run on this machine. A cluster
//! on hosts needs the same trust (a CA, an admin identity, a cluster id)
//! but no local nodes: [`Layout::create_for_hosts`] makes that directory,
//! and each node's certificate, key and `node.toml` come from `quire cert
//! issue node NAME --listen ADDR` ([`Layout::write_issued_node_config`]),
//! a directory to copy whole to the host's `/etc/quire`.

use super::layout::{private_dir, ClusterFile, Layout, LayoutError};
use quire_node::config::{
    Limits, NodeConfig, RuntimeSettings, StorageSettings, TlsFiles as NodeTls,
};
use quire_shared::ClusterId;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where an issued node keeps its data unless told otherwise: the
/// directory the systemd unit in `docs/deploy/` may write.
pub const HOST_DATA_DIR: &str = "/var/lib/quire/data";

/// Where an issued node listens unless told otherwise.
pub const HOST_LISTEN: &str = "0.0.0.0:7400";

/// How an issued node is reached and where it keeps its data.
#[derive(Clone, Debug)]
pub struct HostNode {
    /// QUIC (UDP) address the node listens on.
    pub listen: SocketAddr,
    /// TCP address of its metrics, if any.
    pub metrics: Option<SocketAddr>,
    /// Its data directory on the host.
    pub data_dir: PathBuf,
}

impl Default for HostNode {
    fn default() -> Self {
        Self {
            listen: HOST_LISTEN.parse().expect("a socket address"),
            metrics: None,
            data_dir: HOST_DATA_DIR.into(),
        }
    }
}

impl Layout {
    /// Creates the operator's directory of a cluster on hosts: a new
    /// cluster id, the CA, and the operator's admin identity with a
    /// `client.toml` naming `seeds` (the nodes' addresses). No node runs
    /// from it: nodes get their files from `quire cert issue node`.
    /// Refused if the directory holds a cluster already.
    pub fn create_for_hosts(&self, seeds: Vec<String>) -> Result<ClusterFile, LayoutError> {
        if self.read()?.is_some() {
            return Err(LayoutError::Mismatch(format!(
                "{} holds a cluster already (cluster.toml)",
                self.dir.display()
            )));
        }
        if seeds.is_empty() {
            return Err(LayoutError::Mismatch(
                "name at least one node address (--seed HOST:PORT) for client.toml".into(),
            ));
        }
        private_dir(&self.dir)?;
        let file = ClusterFile {
            cluster_id: ClusterId(rand::random()).to_string(),
            nodes: 0,
            base_port: 0,
        };
        self.create_trust(&file)?;
        self.write_client_config(seeds)?;
        // Written last: a directory with cluster.toml is complete.
        self.write_toml(&self.cluster_file(), &file)?;
        Ok(file)
    }

    /// Writes `node.toml` into `dir` (an issued node's directory) for
    /// `host`: its certificate, key and CA beside it, this cluster's id.
    pub fn write_issued_node_config(
        &self,
        dir: &Path,
        cluster_id: ClusterId,
        host: &HostNode,
    ) -> Result<PathBuf, LayoutError> {
        let config = NodeConfig {
            listen: host.listen,
            data_dir: host.data_dir.clone(),
            cluster_id: Some(cluster_id),
            metrics_listen: host.metrics,
            tls: NodeTls {
                cert: "node.pem".into(),
                key: "node-key.pem".into(),
                ca: "ca.pem".into(),
            },
            limits: Limits::default(),
            storage: StorageSettings::default(),
            // A machine of its own: a thread per core.
            runtime: RuntimeSettings::default(),
        };
        let path = dir.join("node.toml");
        self.write_toml(&path, &config)?;
        Ok(path)
    }
}
