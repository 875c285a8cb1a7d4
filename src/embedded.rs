//! A cluster inside this process: real nodes (LMDB, QUIC, mutual TLS on
//! 127.0.0.1, free ports) for examples and benchmarks that must not depend
//! on a cluster being up.

use crate::admin::{form_cluster, AdminError};
use crate::certs::{CertError, ClusterCa};
use quire_client::config::{ClientConfig, Timeouts, TlsFiles as ClientTls};
use quire_client::transport::Transport;
use quire_node::config::{Limits, NodeConfig, StorageSettings, TlsFiles as NodeTls};
use quire_node::{NodeError, RunningNode};
use quire_shared::{Membership, StoreConfig};
use std::path::Path;
use std::time::Duration;

/// Why an embedded cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Certificates.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// A node.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Forming the cluster.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The admin transport.
    #[error("cannot set up the admin client: {0}")]
    Client(String),
}

/// Nodes serving in this process, formed into one cluster.
pub struct EmbeddedCluster {
    /// The running nodes.
    pub nodes: Vec<RunningNode>,
    /// A client config reaching every node.
    pub client_config: ClientConfig,
    /// The membership document the nodes hold.
    pub membership: Membership,
}

impl EmbeddedCluster {
    /// Starts `nodes` nodes with data under `dir` and forms a cluster with
    /// `stores` (the `default` store when empty).
    pub async fn start(
        dir: &Path,
        nodes: usize,
        stores: Vec<StoreConfig>,
    ) -> Result<Self, EmbeddedError> {
        let ca = ClusterCa::generate("embedded")?;
        ca.pem()
            .write(&dir.join("ca.pem"), &dir.join("ca-key.pem"))?;
        ca.node("embedded-node")?
            .write(&dir.join("node.pem"), &dir.join("node-key.pem"))?;
        ca.client("embedded-client")?
            .write(&dir.join("client.pem"), &dir.join("client-key.pem"))?;
        let mut running = Vec::new();
        for k in 1..=nodes {
            let config = NodeConfig {
                listen: "127.0.0.1:0".parse().expect("literal address"),
                data_dir: dir.join(format!("node-{k}")),
                tls: NodeTls {
                    cert: dir.join("node.pem"),
                    key: dir.join("node-key.pem"),
                    ca: dir.join("ca.pem"),
                },
                limits: Limits::default(),
                storage: StorageSettings {
                    map_size_bytes: 1 << 30,
                    ..StorageSettings::default()
                },
            };
            running.push(quire_node::start(config).await?);
        }
        let client_config = ClientConfig {
            seeds: running.iter().map(|n| n.addr.to_string()).collect(),
            tls: ClientTls {
                cert: dir.join("client.pem"),
                key: dir.join("client-key.pem"),
                ca: dir.join("ca.pem"),
            },
            timeouts: Timeouts::default(),
        };
        let transport = Transport::new(&client_config.tls, &client_config.timeouts)
            .map_err(|e| EmbeddedError::Client(e.to_string()))?;
        let membership = form_cluster(
            &transport,
            rand::random(),
            &client_config.seeds,
            stores,
            Duration::from_secs(10),
        )
        .await?;
        transport.close();
        Ok(Self {
            nodes: running,
            client_config,
            membership,
        })
    }

    /// Stops every node cleanly.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}
