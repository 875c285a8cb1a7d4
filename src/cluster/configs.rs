//! Writing the config files of a local cluster directory: each node's
//! `node.toml` (where it listens, serves metrics, keeps data, and with
//! what limits) and the operator's `client.toml`.

use super::layout::{io_err, Layout, LayoutError, NodeSettings};
use quire_client::config::{ClientConfig, Timeouts, TlsFiles as ClientTls};
use quire_node::config::{NodeConfig, TlsFiles as NodeTls};
use quire_shared::ClusterId;
use std::net::SocketAddr;

impl Layout {
    /// Writes `DIR/node-K/node.toml` for `base_port`.
    pub fn write_node_config(&self, k: usize, base_port: u16) -> Result<(), LayoutError> {
        self.write_node_config_at(k, Self::listen_addr(k, base_port))
    }

    /// Writes `DIR/node-K/node.toml` listening on `listen`, metrics on the
    /// same address over TCP.
    pub fn write_node_config_at(&self, k: usize, listen: SocketAddr) -> Result<(), LayoutError> {
        self.rewrite_node_config(k, listen, false)
    }

    /// Writes `DIR/node-K/node.toml` listening on `listen`, the address a
    /// node started on port 0 was given, so that it restarts there; its
    /// metrics address stays as it was. (A metrics port the OS picked is
    /// picked afresh at the restart: the UDP port's number may belong to
    /// another TCP socket by then.)
    pub fn pin_node_address(&self, k: usize, listen: SocketAddr) -> Result<(), LayoutError> {
        self.rewrite_node_config(k, listen, true)
    }

    fn rewrite_node_config(
        &self,
        k: usize,
        listen: SocketAddr,
        keep_metrics: bool,
    ) -> Result<(), LayoutError> {
        let (settings, cluster_id, metrics) = match self.read_node_config(k) {
            Ok(old) => (
                NodeSettings {
                    limits: old.limits,
                    storage: old.storage,
                    runtime: old.runtime,
                },
                old.cluster_id,
                if keep_metrics {
                    old.metrics_listen
                } else {
                    Some(listen)
                },
            ),
            Err(_) => (
                NodeSettings::default(),
                self.read()?.map(|f| f.id()).transpose()?,
                Some(listen),
            ),
        };
        self.write_node_config_with(k, (listen, metrics), &settings, cluster_id)
    }

    /// Node K's config as written (paths still relative).
    pub(super) fn read_node_config(&self, k: usize) -> Result<NodeConfig, LayoutError> {
        let path = self.node_config(k);
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        toml::from_str(&text).map_err(|e| LayoutError::Parse {
            path,
            message: e.to_string(),
        })
    }

    /// Writes node K's config listening on `listen`, serving metrics on
    /// `metrics`: for a new node, TCP on its own (UDP) address and port, one
    /// number per node to remember and no second port range to keep free.
    pub(super) fn write_node_config_with(
        &self,
        k: usize,
        (listen, metrics): (SocketAddr, Option<SocketAddr>),
        settings: &NodeSettings,
        cluster_id: Option<ClusterId>,
    ) -> Result<(), LayoutError> {
        let config = NodeConfig {
            listen,
            data_dir: "data".into(),
            cluster_id,
            metrics_listen: metrics,
            tls: NodeTls {
                cert: "node.pem".into(),
                key: "node-key.pem".into(),
                ca: "../ca.pem".into(),
            },
            limits: settings.limits.clone(),
            storage: settings.storage.clone(),
            runtime: settings.runtime.clone(),
        };
        self.write_toml(&self.node_config(k), &config)
    }

    /// Writes `DIR/client.toml` with `seeds`.
    pub fn write_client_config(&self, seeds: Vec<String>) -> Result<(), LayoutError> {
        self.write_client_config_with(seeds, Timeouts::default())
    }

    /// Like [`Layout::write_client_config`], with `timeouts`.
    pub fn write_client_config_with(
        &self,
        seeds: Vec<String>,
        timeouts: Timeouts,
    ) -> Result<(), LayoutError> {
        let config = ClientConfig {
            seeds,
            tls: ClientTls {
                cert: "client.pem".into(),
                key: "client-key.pem".into(),
                ca: "ca.pem".into(),
            }
            .into(),
            timeouts,
            reads: Default::default(),
        };
        self.write_toml(&self.client_config(), &config)
    }
}
