//! Test harness: real nodes (LMDB in temp dirs, QUIC + mutual TLS on
//! 127.0.0.1 port 0) in this process, and the certificates they need.
//!
//! Nothing here stands in for a node: every request goes over a real QUIC
//! connection to a real `quire_node` serving real LMDB.

#![allow(dead_code)] // each test binary uses part of the harness

pub mod procs;
pub mod proxy;

use quire::admin::{default_store, form_cluster};
use quire::certs::ClusterCa;
use quire::shared::{Membership, StoreConfig};
use quire::{Client, ClientConfig};
use quire_client::config::{Timeouts, TlsFiles as ClientTls};
use quire_client::transport::Transport;
use quire_node::config::{Limits, NodeConfig, StorageSettings, TlsFiles as NodeTls};
use quire_node::RunningNode;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Certificates for one test cluster, written into a directory.
pub struct Pki {
    /// The directory holding the PEM files.
    pub dir: PathBuf,
}

impl Pki {
    /// Generates a CA, one node certificate (shared by all test nodes: they
    /// all answer to the same server name) and a client certificate.
    pub fn generate(dir: &Path) -> Self {
        let ca = ClusterCa::generate("test").expect("CA");
        ca.pem()
            .write(&dir.join("ca.pem"), &dir.join("ca-key.pem"))
            .expect("write CA");
        ca.node("test-node")
            .expect("node cert")
            .write(&dir.join("node.pem"), &dir.join("node-key.pem"))
            .expect("write node cert");
        ca.client("test-client")
            .expect("client cert")
            .write(&dir.join("client.pem"), &dir.join("client-key.pem"))
            .expect("write client cert");
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The TLS files of a node.
    pub fn node_tls(&self) -> NodeTls {
        NodeTls {
            cert: self.dir.join("node.pem"),
            key: self.dir.join("node-key.pem"),
            ca: self.dir.join("ca.pem"),
        }
    }

    /// The TLS files of a client.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            cert: self.dir.join("client.pem"),
            key: self.dir.join("client-key.pem"),
            ca: self.dir.join("ca.pem"),
        }
    }
}

/// One node of a test cluster; stopped and restarted on the same port and
/// data directory.
pub struct TestNode {
    /// Its config; `listen` holds the bound address once started.
    pub config: NodeConfig,
    /// The serving node, while it runs.
    pub running: Option<RunningNode>,
    /// Its id, known from its first start (kept across restarts).
    pub node_id: u64,
}

impl TestNode {
    /// A node config on 127.0.0.1:0 with its data under `dir`.
    pub fn config(dir: &Path, pki: &Pki, limits: Limits) -> NodeConfig {
        NodeConfig {
            listen: "127.0.0.1:0".parse().expect("literal"),
            data_dir: dir.to_owned(),
            tls: pki.node_tls(),
            limits,
            storage: StorageSettings {
                // Small map: tests store little, and many envs may be open.
                map_size_bytes: 256 << 20,
                ..StorageSettings::default()
            },
        }
    }

    /// Starts (or restarts) the node; a restart reuses the port it bound.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "node already running");
        let node = quire_node::start(self.config.clone())
            .await
            .expect("node starts");
        self.config.listen = node.addr;
        self.node_id = node.identity.node_id;
        self.running = Some(node);
    }

    /// Stops the node cleanly (storage closed when this returns).
    pub async fn stop(&mut self) {
        if let Some(node) = self.running.take() {
            node.stop().await;
        }
    }

    /// `host:port` for clients.
    pub fn addr(&self) -> String {
        self.config.listen.to_string()
    }
}

/// A cluster of in-process nodes, formed with a membership document.
pub struct TestCluster {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    /// Certificates.
    pub pki: Pki,
    /// The nodes, in start order.
    pub nodes: Vec<TestNode>,
    /// The document the nodes hold.
    pub membership: Membership,
    /// Fault proxies in front of the nodes (same order), when started
    /// with [`TestCluster::start_proxied`]; members' addresses are then the
    /// proxies'.
    pub proxies: Vec<proxy::FaultProxy>,
}

/// Client timeouts for tests: generous enough for a loaded 2-core CI box.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        request_ms: 5_000,
        connect_ms: 1_000,
        attempt_ms: 1_000,
    }
}

impl TestCluster {
    /// Starts `n` nodes and forms a cluster with the `default` store.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, Vec::new(), Limits::default()).await
    }

    /// Starts `n` nodes, each behind a fault proxy, and forms the cluster
    /// with the proxies' addresses: clients reach nodes only through them.
    pub async fn start_proxied(n: usize) -> Self {
        Self::start_inner(n, Vec::new(), Limits::default(), true).await
    }

    /// Starts `n` nodes with `limits` and forms a cluster with `stores`
    /// (the `default` store if empty).
    pub async fn start_with(n: usize, stores: Vec<StoreConfig>, limits: Limits) -> Self {
        Self::start_inner(n, stores, limits, false).await
    }

    async fn start_inner(
        n: usize,
        stores: Vec<StoreConfig>,
        limits: Limits,
        proxied: bool,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::generate(dir.path());
        let mut nodes = Vec::new();
        for k in 1..=n {
            let data = dir.path().join(format!("node-{k}"));
            let mut node = TestNode {
                config: TestNode::config(&data, &pki, limits.clone()),
                running: None,
                node_id: 0,
            };
            node.start().await;
            nodes.push(node);
        }
        let stores = if stores.is_empty() {
            vec![default_store(n)]
        } else {
            stores
        };
        let mut proxies = Vec::new();
        if proxied {
            for node in &nodes {
                proxies.push(proxy::FaultProxy::start(node.config.listen).await);
            }
        }
        let addrs: Vec<String> = if proxied {
            proxies.iter().map(|p| p.addr.to_string()).collect()
        } else {
            nodes.iter().map(TestNode::addr).collect()
        };
        let transport = Transport::new(&pki.client_tls(), &test_timeouts()).expect("transport");
        let membership = form_cluster(&transport, 42, &addrs, stores, Duration::from_secs(10))
            .await
            .expect("cluster forms");
        transport.close();
        Self {
            dir,
            pki,
            nodes,
            membership,
            proxies,
        }
    }

    /// A client config naming every member as a seed.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            seeds: self
                .membership
                .members
                .iter()
                .map(|m| m.addr.clone())
                .collect(),
            tls: self.pki.client_tls(),
            timeouts: test_timeouts(),
        }
    }

    /// A connected SDK client.
    pub async fn client(&self) -> Client {
        Client::connect(self.client_config())
            .await
            .expect("client connects")
    }

    /// A bare transport with the client certificate, for single-node
    /// requests.
    pub fn transport(&self) -> Transport {
        Transport::new(&self.pki.client_tls(), &test_timeouts()).expect("transport")
    }

    /// The node with id `id`.
    pub fn node_by_id(&mut self, id: u64) -> &mut TestNode {
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .expect("a node with that id")
    }

    /// Stops every node.
    pub async fn stop_all(&mut self) {
        for n in &mut self.nodes {
            n.stop().await;
        }
    }
}
