//! Certificate rotation for a local cluster: `quire cert rotate`.
//!
//! Every node gets a new certificate naming the same node id, the local
//! operator a new admin certificate, all from the cluster CA; running
//! nodes are then told to reload (SIGHUP). Nodes serve new connections
//! with the new certificates and keep the connections already open, so
//! clients see no failed request.

use super::layout::{io_err, Layout, LayoutError};
use super::process;
use crate::certs::{operator, ClusterCa};
use quire_shared::NodeId;

/// What one rotation did.
#[derive(Clone, Debug)]
pub struct Rotated {
    /// Each node: its number, its id, and whether a running process was
    /// told to reload.
    pub nodes: Vec<(usize, NodeId, bool)>,
}

impl Layout {
    /// Issues new certificates (valid `days` days) for every node of this
    /// directory and for its operator, and signals running nodes to
    /// reload them.
    pub fn rotate(&self, days: u32) -> Result<Rotated, LayoutError> {
        let file = self.read()?.ok_or_else(|| {
            LayoutError::Mismatch(format!("{} holds no cluster", self.dir.display()))
        })?;
        let key_path = self.dir.join("ca-key.pem");
        let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let ca = ClusterCa::load(&file.cluster_id, &key)?;
        let mut nodes = Vec::new();
        for k in 1..=file.nodes {
            let dir = self.node_dir(k);
            let cert = dir.join("node.pem");
            let id = node_id_of(&cert)?;
            ca.node(id, days)?
                .replace(&cert, &dir.join("node-key.pem"))?;
            nodes.push((k, id, self.reload_node(k)));
        }
        ca.client(&operator(), days)?.replace(
            &self.dir.join("client.pem"),
            &self.dir.join("client-key.pem"),
        )?;
        Ok(Rotated { nodes })
    }

    /// Tells node K's running process, if any, to reload its certificate,
    /// key and CA bundle (SIGHUP); true when one was running.
    pub(super) fn reload_node(&self, k: usize) -> bool {
        let pid = process::read_pid(&self.pid_file(k)).filter(|p| process::is_node_alive(*p));
        if let Some(pid) = pid {
            process::signal(pid, process::RELOAD);
        }
        pid.is_some()
    }
}

/// The node id a node certificate names.
pub(super) fn node_id_of(cert: &std::path::Path) -> Result<NodeId, LayoutError> {
    quire_net::tls::load_certs(cert, "node certificate")
        .ok()
        .and_then(|chain| quire_net::identity::principal_of(&chain[0]).ok())
        .and_then(|p| p.node_id())
        .ok_or_else(|| {
            LayoutError::Mismatch(format!(
                "{} names no node id: it predates node identities; issue the node a new one with `quire cert issue node`",
                cert.display()
            ))
        })
}
