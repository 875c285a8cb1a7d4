//! The one way to start a local cluster: [`ClusterBuilder`].
//!
//! `quire up`, `quire bench --local-nodes`, the examples and the tests all
//! start nodes through it, in this process ([`Launch::InProcess`]) or as
//! node processes ([`Launch::Processes`]), in a directory laid out by
//! [`layout`] (CA, certificates, one config per node, the client config).
//! A cluster directory that already holds a cluster is started again with
//! its data; otherwise it is created.
//!
//! # Layout
//!
//! - [`layout`]: the directory, certificates and configs.
//! - [`issue`]: certificates for more identities (`quire cert issue`).
//! - [`rotate`]: new certificates for a running cluster (`quire cert rotate`).
//! - [`node`]: one node's handle (start, stop, kill, restart).
//! - [`process`]: spawning and signalling node processes.
//! - [`hosts`]: clusters on hosts of their own (`quire cert init`).

pub mod configs;
pub mod hosts;
pub mod issue;
pub mod layout;
pub mod node;
pub mod process;
pub mod rotate;
pub mod rotate_ca;

use crate::admin::{form_cluster, AdminError, NewCluster};
use layout::{ClusterFile, Layout, LayoutError, NodeSettings};
pub use node::{Launch, LocalNode, NODE_GRACE};
use quire_client::config::Timeouts;
use quire_client::{Client, ClientConfig, ClientError};
use quire_node::config::Limits;
use quire_shared::{Membership, NodeId, StoreConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a local cluster could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The directory or its files.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A node's config could not be read.
    #[error(transparent)]
    Config(#[from] quire_node::config::ConfigError),
    /// A node in this process failed to start.
    #[error(transparent)]
    Node(#[from] quire_node::NodeError),
    /// A node is already running.
    #[error("node-{k} is already running")]
    AlreadyRunning {
        /// Node number.
        k: usize,
    },
    /// A node process exited while starting.
    #[error("node-{k} exited while starting ({status}); its log {log} ends with:\n{tail}")]
    NodeDied {
        /// Node number.
        k: usize,
        /// How it exited.
        status: String,
        /// Its log file.
        log: String,
        /// The last lines of the log.
        tail: String,
    },
    /// A node did not report its address in time.
    #[error("node-{k} did not start listening within {secs} s; see {log}")]
    NodeSlow {
        /// Node number.
        k: usize,
        /// Seconds waited.
        secs: u64,
        /// Its log file.
        log: String,
    },
    /// The directory holds a cluster of another size.
    #[error("{dir} holds a {holds}-node cluster, not {asked}; adding or removing nodes needs rebalancing (use another directory for a new cluster)")]
    SizeMismatch {
        /// The directory.
        dir: String,
        /// Nodes it holds.
        holds: usize,
        /// Nodes asked for.
        asked: usize,
    },
    /// The client side could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The nodes would not form a cluster.
    #[error(transparent)]
    Form(#[from] AdminError),
}

/// Where the cluster's files live.
enum Dir {
    /// Removed when the cluster is dropped.
    Temporary(tempfile::TempDir),
    /// Kept: `quire up`'s directory.
    Kept(PathBuf),
}

/// Builds a local cluster: how many nodes, how they run, where, and with
/// which stores and limits.
pub struct ClusterBuilder {
    nodes: usize,
    launch: Launch,
    dir: Option<PathBuf>,
    base_port: u16,
    new: NewCluster,
    settings: NodeSettings,
    timeouts: Timeouts,
}

impl ClusterBuilder {
    /// `nodes` nodes in this process, in a temporary directory, on free
    /// ports, with the `default` store.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            launch: Launch::InProcess,
            dir: None,
            base_port: 0,
            new: NewCluster::default(),
            settings: NodeSettings::default(),
            timeouts: Timeouts::default(),
        }
    }

    /// Runs each node as its own process of `exe`.
    pub fn processes(mut self, exe: impl Into<PathBuf>) -> Self {
        self.launch = Launch::Processes { exe: exe.into() };
        self
    }

    /// Keeps the cluster in `dir` (created on first use, started again with
    /// its data later) instead of a temporary directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Node K of a new cluster listens on `base_port + K - 1`; 0 (the
    /// default) picks free ports.
    pub fn base_port(mut self, base_port: u16) -> Self {
        self.base_port = base_port;
        self
    }

    /// The stores of a new cluster (the `default` store when empty).
    pub fn stores(mut self, stores: Vec<StoreConfig>) -> Self {
        self.new.stores = stores;
        self
    }

    /// The ring size of a new cluster (a power of two; 256 by default).
    /// Small rings make partitions large, as measurements of one
    /// partition need.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.new.partitions = partitions;
        self
    }

    /// Every node's limits.
    pub fn node_limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Every node's LMDB map size (virtual until used; tests that open many
    /// environments at once shrink it).
    pub fn map_size_bytes(mut self, bytes: u64) -> Self {
        self.settings.storage.map_size_bytes = bytes;
        self
    }

    /// Every node's bound on bytes queued for its writer (tests of that
    /// bound make it small).
    pub fn writer_queue_bytes_max(mut self, bytes: u64) -> Self {
        self.settings.storage.writer_queue_bytes_max = bytes;
        self
    }

    /// The timeouts written into the client config.
    pub fn client_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Starts every node without forming a cluster: they serve, but hold no
    /// membership until [`Launched::form`].
    pub async fn launch(self) -> Result<Launched, ClusterError> {
        let dir = match self.dir {
            Some(d) => Dir::Kept(d),
            None => Dir::Temporary(tempfile::tempdir().map_err(|source| LayoutError::Io {
                path: std::env::temp_dir(),
                source,
            })?),
        };
        let root = match &dir {
            Dir::Temporary(t) => t.path().join("cluster"),
            Dir::Kept(p) => p.clone(),
        };
        let layout = Layout::new(root);
        let file = match layout.read()? {
            Some(file) if file.nodes != self.nodes => {
                return Err(ClusterError::SizeMismatch {
                    dir: layout.dir.display().to_string(),
                    holds: file.nodes,
                    asked: self.nodes,
                })
            }
            Some(file) => file,
            None => layout.create_with(self.nodes, self.base_port, &self.settings)?,
        };
        let mut launched = Launched {
            dir,
            layout: layout.clone(),
            file,
            new: self.new,
            timeouts: self.timeouts,
            nodes: (1..=self.nodes)
                .map(|k| LocalNode::new(k, self.launch.clone(), layout.clone()))
                .collect(),
        };
        for node in &mut launched.nodes {
            node.start().await?;
        }
        Ok(launched)
    }

    /// Starts every node and forms the cluster.
    pub async fn start(self) -> Result<LocalCluster, ClusterError> {
        self.launch().await?.form().await
    }
}

/// Nodes serving, not yet formed into a cluster.
pub struct Launched {
    dir: Dir,
    layout: Layout,
    file: ClusterFile,
    new: NewCluster,
    timeouts: Timeouts,
    /// The nodes, node-1 first.
    pub nodes: Vec<LocalNode>,
}

impl Launched {
    /// Each node's own address, node-1 first.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.listen).collect()
    }

    /// The cluster directory.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Forms the cluster with the nodes' own addresses.
    pub async fn form(self) -> Result<LocalCluster, ClusterError> {
        let addrs = self.nodes.iter().map(LocalNode::addr).collect();
        self.form_as(addrs).await
    }

    /// Forms the cluster with members reached at `addrs` (node-1 first):
    /// e.g. fault proxies in front of the nodes.
    pub async fn form_as(mut self, addrs: Vec<String>) -> Result<LocalCluster, ClusterError> {
        self.layout
            .write_client_config_with(addrs.clone(), self.timeouts.clone())?;
        let client_config = ClientConfig::load(&self.layout.client_config())
            .map_err(|e| ClusterError::Client(e.into()))?;
        let membership = form_cluster(
            &client_config,
            self.file.id()?,
            &addrs,
            std::mem::take(&mut self.new),
            NODE_GRACE,
        )
        .await?;
        for (node, addr) in self.nodes.iter_mut().zip(&addrs) {
            if let Some(m) = membership.members.iter().find(|m| &m.addr == addr) {
                node.node_id = m.id;
            }
        }
        Ok(LocalCluster {
            _dir: self.dir,
            layout: self.layout,
            client_config,
            membership,
            nodes: self.nodes,
        })
    }
}

/// A formed local cluster. Dropping it stops every node (processes get
/// SIGTERM, then SIGKILL) and removes a temporary directory.
pub struct LocalCluster {
    /// The nodes, node-1 first.
    pub nodes: Vec<LocalNode>,
    /// The cluster directory.
    pub layout: Layout,
    client_config: ClientConfig,
    membership: Membership,
    // Declared last: removed after the nodes have stopped.
    _dir: Dir,
}

impl LocalCluster {
    /// The membership document the cluster was formed with.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// A client config naming every member as a seed.
    pub fn client_config(&self) -> ClientConfig {
        self.client_config.clone()
    }

    /// A connected SDK client.
    pub async fn client(&self) -> Result<Client, ClientError> {
        Client::connect(self.client_config()).await
    }

    /// The cluster directory.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cluster directory's path.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// The node with id `id`.
    pub fn node_by_id(&mut self, id: NodeId) -> Option<&mut LocalNode> {
        self.nodes.iter_mut().find(|n| n.node_id == id)
    }

    /// Node K (from 1).
    pub fn node(&mut self, k: usize) -> &mut LocalNode {
        &mut self.nodes[k - 1]
    }

    /// The process ids of nodes running as processes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(LocalNode::pid).collect()
    }

    /// Adds a node to the cluster directory ([`Layout::add_node`]) and
    /// starts it, launched as the others are; it is not a member until it
    /// joins (`quire cluster join`, [`Client::commit_change`]).
    pub async fn add_node(&mut self) -> Result<&mut LocalNode, ClusterError> {
        let (k, _) = self.layout.add_node()?;
        let launch = self.nodes[0].launch().clone();
        let mut node = LocalNode::new(k, launch, self.layout.clone());
        node.start().await?;
        self.nodes.push(node);
        Ok(self.nodes.last_mut().expect("just pushed"))
    }

    /// Stops every node cleanly.
    pub async fn stop_all(&mut self) {
        for n in &mut self.nodes {
            n.stop().await;
        }
    }
}
