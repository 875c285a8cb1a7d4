//! Test harness: real nodes (LMDB in temp dirs, QUIC + mutual TLS on
//! 127.0.0.1 port 0), started by the same launcher as `quire up`
//! ([`quire::cluster::ClusterBuilder`]), in this process or as node
//! processes, optionally each behind a fault proxy; or node processes on
//! separate hosts made of network namespaces ([`netns`], [`netns_cluster`]).
//!
//! Nothing here stands in for a node: every request goes over a real QUIC
//! connection to a real `quire_node` serving real LMDB.

#![allow(dead_code)] // each test binary uses part of the harness

pub mod checker;
pub mod lazyfs;
pub mod nemesis;
pub mod netns;
pub mod netns_cluster;
pub mod optimized;
pub mod powerloss;
pub mod proxy;
pub mod workload;

use quire::certs::ClusterCa;
use quire::cluster::{ClusterBuilder, LocalCluster, LocalNode};
use quire::shared::wire::{Reply, Request};
use quire::shared::{Membership, NodeId, StoreConfig};
use quire::{Client, ClientConfig};
use quire_client::config::{ReadFanout, Timeouts, TlsFiles as ClientTls, TlsSource};
use quire_client::transport::Transport;
use quire_node::config::Limits;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The `quire` binary, for clusters of node processes.
pub const QUIRE: &str = env!("CARGO_BIN_EXE_quire");

/// Client timeouts for tests: generous enough for a loaded 2-core CI box.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        request_ms: 5_000,
        connect_ms: 1_000,
        attempt_ms: 1_000,
    }
}

/// A launcher set up for tests: small LMDB maps (many environments are
/// open at once) and test timeouts.
pub fn builder(n: usize) -> ClusterBuilder {
    ClusterBuilder::new(n)
        .map_size_bytes(256 << 20)
        .client_timeouts(test_timeouts())
}

/// A formed test cluster and, when proxied, the fault proxies its members
/// are reached through.
pub struct TestCluster {
    /// The cluster; dropping it stops every node.
    pub cluster: LocalCluster,
    /// Fault proxies in front of the nodes (node-1 first), when proxied;
    /// members' addresses are then the proxies'.
    pub proxies: Vec<proxy::FaultProxy>,
    /// The document the nodes were formed with.
    pub membership: Membership,
    /// A client config naming every member.
    pub client_config: ClientConfig,
    /// Each node's own address (node-1 first), fixed across restarts.
    pub node_addrs: Vec<SocketAddr>,
}

impl std::ops::Deref for TestCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.cluster
    }
}

impl TestCluster {
    /// `n` nodes in this process with the `default` store.
    pub async fn start(n: usize) -> Self {
        Self::from(builder(n), false).await
    }

    /// `n` nodes in this process, each behind a fault proxy.
    pub async fn start_proxied(n: usize) -> Self {
        Self::from(builder(n), true).await
    }

    /// `n` nodes in this process with `limits` and `stores` (the `default`
    /// store if empty).
    pub async fn start_with(n: usize, stores: Vec<StoreConfig>, limits: Limits) -> Self {
        Self::from(builder(n).stores(stores).node_limits(limits), false).await
    }

    /// `n` node processes (`quire node`), behind proxies if `proxied`: for
    /// tests that kill -9 a node.
    pub async fn processes(n: usize, proxied: bool) -> Self {
        Self::from(builder(n).processes(QUIRE), proxied).await
    }

    /// Launches `builder`'s nodes and forms them, through proxies if
    /// `proxied`.
    pub async fn from(builder: ClusterBuilder, proxied: bool) -> Self {
        let launched = builder.launch().await.expect("nodes start");
        let node_addrs = launched.node_addrs();
        let mut proxies = Vec::new();
        if proxied {
            for addr in &node_addrs {
                proxies.push(proxy::FaultProxy::start(*addr).await);
            }
        }
        let cluster = if proxied {
            let addrs = proxies.iter().map(|p| p.addr.to_string()).collect();
            launched.form_as(addrs).await
        } else {
            launched.form().await
        }
        .expect("cluster forms");
        Self {
            membership: cluster.membership().clone(),
            client_config: cluster.client_config(),
            cluster,
            proxies,
            node_addrs,
        }
    }

    /// A connected SDK client.
    pub async fn client(&self) -> Client {
        self.cluster.client().await.expect("client connects")
    }

    /// A connected SDK client whose gets ask every replica at once
    /// ([`ReadFanout::All`]), so a read repairs every home replica that is
    /// behind, not only those among the first `R` asked.
    pub async fn client_reading_all(&self) -> Client {
        let mut config = self.client_config.clone();
        config.reads.fanout = ReadFanout::All;
        Client::connect(config).await.expect("client connects")
    }

    /// A bare transport with the client certificate, for single-node
    /// requests. Each call binds a new endpoint, whose first request to
    /// each node makes a handshake under the tests' 1 s connect budget:
    /// make one for a whole check and reuse it, never one per request in
    /// a loop (about 600 handshakes in one check once timed out on CI).
    pub fn transport(&self) -> Transport {
        Transport::new(&self.client_config.tls, &test_timeouts()).expect("transport")
    }

    /// The node with id `id`.
    pub fn node_by_id(&mut self, id: NodeId) -> &mut LocalNode {
        self.cluster.node_by_id(id).expect("a node with that id")
    }

    /// The node number (from 1) of member `id`.
    pub fn k_of(&self, id: NodeId) -> usize {
        self.cluster
            .nodes
            .iter()
            .find(|n| n.node_id == id)
            .expect("a node for the member")
            .k
    }

    /// kill -9 node K (a node in this process is stopped instead).
    pub async fn kill(&mut self, k: usize) {
        self.cluster.node(k).kill().await;
    }

    /// Stops node K cleanly (SIGTERM for a process).
    pub async fn stop(&mut self, k: usize) {
        self.cluster.node(k).stop().await;
    }

    /// Starts node K again on its address, with its data.
    pub async fn restart(&mut self, k: usize) {
        self.cluster.node(k).start().await.expect("node restarts");
    }

    /// Node K's process id, while it runs as a process.
    pub fn pid(&mut self, k: usize) -> Option<u32> {
        self.cluster.node(k).pid()
    }

    /// Whether node K runs.
    pub fn running(&mut self, k: usize) -> bool {
        self.cluster.node(k).running()
    }

    /// The log of node K (process nodes), for failure messages.
    pub fn log(&mut self, k: usize) -> PathBuf {
        self.cluster.node(k).log()
    }
}

/// Certificates of a cluster that is not ours, written into a directory:
/// for tests of what a foreign CA may not do.
pub struct Pki {
    /// The directory holding the PEM files.
    pub dir: PathBuf,
}

impl Pki {
    /// Generates a CA and a client certificate signed by it.
    pub fn generate(dir: &Path) -> Self {
        let ca = ClusterCa::generate("foreign").expect("CA");
        ca.pem()
            .write(&dir.join("ca.pem"), &dir.join("ca-key.pem"))
            .expect("write CA");
        ca.client(
            &quire::shared::access::Principal::new(quire::shared::access::Role::Admin, "foreign")
                .unwrap(),
            365,
        )
        .expect("client cert")
        .write(&dir.join("client.pem"), &dir.join("client-key.pem"))
        .expect("write client cert");
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The TLS files of a client of this CA.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            cert: self.dir.join("client.pem"),
            key: self.dir.join("client-key.pem"),
            ca: self.dir.join("ca.pem"),
        }
    }
}

/// `doc` signed by the admin identity in `tls`: nodes take only signed
/// documents, so a test offering one by hand signs it first.
pub fn sign(tls: impl Into<TlsSource>, doc: Membership) -> Membership {
    let material = quire_net::tls::TlsMaterial::load(&tls.into()).expect("the identity loads");
    quire_net::seal::Sealer::from_material(&material)
        .expect("the admin identity loads")
        .sign(doc)
        .expect("an admin signs")
}

/// The value node `addr` holds for `key` in `store` in its own data (not
/// its hints), asked directly so no read repair follows; `None` when it
/// holds none or does not answer.
pub async fn local_value(t: &Transport, addr: &str, store: &str, key: &[u8]) -> Option<Vec<u8>> {
    let get = Request::Get {
        store: store.into(),
        key: key.to_vec(),
        hint: None,
    };
    match t
        .call(addr, &get, std::time::Duration::from_secs(5))
        .await
        .ok()?
        .result
    {
        Ok(Reply::Object(Some(o))) => o.values().find_map(|v| v.data.clone()),
        _ => None,
    }
}

/// Puts the value `v` under `key` in `store` on member `nodes` only, by a
/// raw `Replicate` to each: a key the other replicas missed.
pub async fn place_on(t: &Transport, doc: &Membership, nodes: &[NodeId], store: &str, key: &[u8]) {
    let mut object = quire::shared::Dvvset::new();
    object.event(
        quire::shared::ActorId(7),
        quire::shared::Value::bytes(b"v".to_vec(), 1),
    );
    for &id in nodes {
        let addr = &doc.member(id).expect("a member").addr;
        let replicate = Request::Replicate {
            store: store.into(),
            key: key.to_vec(),
            object: object.clone(),
            hint: None,
        };
        let answer = t
            .call(addr, &replicate, std::time::Duration::from_secs(5))
            .await
            .expect("replicate answered")
            .result;
        assert!(matches!(answer, Ok(Reply::Stored(_))), "{answer:?}");
    }
}

/// Panics with `what` and the command's stderr unless it succeeded.
pub fn assert_ran(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `quire ARGS` as its own process (a cold client, as a user's
/// every command is), with `--config CONFIG` when given; how it ended
/// and what it printed.
pub fn quire_cli(config: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(QUIRE);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.args(args).output().expect("quire runs")
}

/// Runs `quire --config CONFIG --json ARGS` as its own process, asserts
/// it succeeded, and returns what it printed.
pub fn quire_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = quire_cli(Some(config), &[&["--json"], args].concat());
    assert_ran(&out, &format!("quire {args:?}"));
    serde_json::from_slice(&out.stdout).expect("quire printed JSON")
}

/// The cluster CA, loaded from the test cluster's directory.
pub fn cluster_ca(cluster: &TestCluster) -> quire::certs::ClusterCa {
    let layout = cluster.layout();
    let file = layout.read().unwrap().expect("a cluster file");
    let key = std::fs::read_to_string(layout.dir.join("ca-key.pem")).unwrap();
    quire::certs::ClusterCa::load(&file.cluster_id, &key).unwrap()
}

/// Replaces node K's certificate and key with `pem` (key files are
/// written create-new, so the old ones go first).
pub fn replace_node_certificate(cluster: &TestCluster, k: usize, pem: &quire::certs::Pem) {
    let dir = cluster.layout().node_dir(k);
    std::fs::remove_file(dir.join("node.pem")).unwrap();
    std::fs::remove_file(dir.join("node-key.pem")).unwrap();
    pem.write(&dir.join("node.pem"), &dir.join("node-key.pem"))
        .unwrap();
}
