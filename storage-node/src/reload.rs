//! Reloading the node's certificate, key and CA bundle while it serves
//! (SIGHUP), so certificates rotate without a restart.
//!
//! New connections get the new certificate and are verified against the
//! new CA bundle; connections already open keep the keys they agreed on,
//! so no request in flight is dropped. The node's identity may not change
//! on the way: a new certificate must name the same node id (the data
//! directory belongs to that node), or the reload is refused and the old
//! files stay in use.

use crate::config::NodeConfig;
use crate::handler::NodeState;
use crate::NodeError;
use quire_shared::NodeId;
use std::sync::{Arc, Weak};

/// What a reload needs: the files to read again and where to put them.
pub struct TlsReloader {
    pub(crate) config: NodeConfig,
    pub(crate) endpoint: quinn::Endpoint,
    /// Weak: the node's state must go when the node stops (its last
    /// handle stops the writer), reloader or not.
    pub(crate) state: Weak<NodeState>,
    pub(crate) node_id: NodeId,
    /// The server config for connections of struck peers, replaced too.
    pub(crate) struck: crate::quic::StruckConfig,
}

impl TlsReloader {
    /// Reads the TLS files again and serves new connections with them.
    /// Refused, with the old files kept, when a file does not load or the
    /// certificate names another node.
    pub fn reload(&self) -> Result<(), NodeError> {
        let named = crate::certificate_node_id(&self.config)?;
        if named != self.node_id {
            return Err(NodeError::NotANodeCertificate {
                path: self.config.tls.cert.display().to_string(),
                reason: format!(
                    "it names node {named}, but this node is {}: a node keeps its id across certificates",
                    self.node_id
                ),
            });
        }
        let verifier = quire_net::seal::Verifier::load(&self.config.tls.ca)?;
        let servers = crate::quic::server_configs(&self.config)?;
        let Some(state) = self.state.upgrade() else {
            return Ok(()); // stopping: nothing to serve with new files
        };
        self.endpoint.set_server_config(Some(servers.normal));
        *self.struck.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(servers.struck);
        *state.verifier.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(verifier);
        tracing::info!(cert = %self.config.tls.cert.display(), "reloaded the TLS certificate, key and CA bundle");
        Ok(())
    }
}
