//! The on-disk layout of a local cluster directory, and its creation.
//!
//! ```text
//! DIR/cluster.toml            cluster id, node count, base port
//! DIR/ca.pem, ca-key.pem      the cluster CA
//! DIR/client.pem, client-key.pem, client.toml
//! DIR/node-K/node.toml        config for `quire-node --config`
//! DIR/node-K/node.pem, node-key.pem
//! DIR/node-K/data/            LMDB environment and node identity
//! DIR/node-K/pid, node.log    written by `quire up`
//! ```
//!
//! Every path inside the configs is relative, so the directory can move.

use crate::certs::{fresh_node_id, operator, CertError, ClusterCa, LEAF_DAYS_DEFAULT};
use quire_client::config::TlsFiles as ClientTls;
use quire_node::config::{Limits, RuntimeSettings, StorageSettings};
use quire_shared::ClusterId;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Why a cluster directory could not be created or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what `quire up` wrote.
    #[error("{path} is not a valid cluster file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Certificates could not be generated.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The request does not fit the existing cluster.
    #[error("{0}")]
    Mismatch(String),
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` and its missing parents with mode 0700: the cluster
/// directory holds the CA key and the client key, a node's directory its
/// key and data.
pub(super) fn private_dir(dir: &Path) -> Result<(), LayoutError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// `DIR/cluster.toml`: what stays fixed across runs of `quire up`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The cluster id, hex.
    pub cluster_id: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Node K listens on `base_port + K - 1`; 0 means any free port.
    pub base_port: u16,
}

impl ClusterFile {
    /// The cluster id as a number.
    pub fn id(&self) -> Result<ClusterId, LayoutError> {
        self.cluster_id.parse().map_err(|e| LayoutError::Parse {
            path: "cluster.toml".into(),
            message: format!("cluster_id: {e}"),
        })
    }
}

/// What every node of a new cluster gets in its config beyond addresses
/// and certificates.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Size and connection limits.
    pub limits: Limits,
    /// LMDB settings (tests shrink the map so many environments fit).
    pub storage: StorageSettings,
    /// The nodes' runtime threads.
    pub runtime: RuntimeSettings,
}

impl Default for NodeSettings {
    /// Default limits and storage, and one runtime thread per node: the
    /// nodes of a local cluster share this machine.
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            storage: StorageSettings::default(),
            runtime: RuntimeSettings { worker_threads: 1 },
        }
    }
}

/// A local cluster directory.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The directory.
    pub dir: PathBuf,
}

impl Layout {
    /// The layout rooted at `dir` (nothing is touched yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `DIR/cluster.toml`.
    pub fn cluster_file(&self) -> PathBuf {
        self.dir.join("cluster.toml")
    }

    /// `DIR/client.toml`.
    pub fn client_config(&self) -> PathBuf {
        self.dir.join("client.toml")
    }

    /// `DIR/node-K` for K = 1..=N.
    pub fn node_dir(&self, k: usize) -> PathBuf {
        self.dir.join(format!("node-{k}"))
    }

    /// `DIR/node-K/node.toml`.
    pub fn node_config(&self, k: usize) -> PathBuf {
        self.node_dir(k).join("node.toml")
    }

    /// `DIR/node-K/pid`.
    pub fn pid_file(&self, k: usize) -> PathBuf {
        self.node_dir(k).join("pid")
    }

    /// `DIR/node-K/node.log`.
    pub fn log_file(&self, k: usize) -> PathBuf {
        self.node_dir(k).join("node.log")
    }

    /// The address node K's process bound (it writes it on start).
    pub fn bound_addr_file(&self, k: usize) -> PathBuf {
        self.node_dir(k)
            .join("data")
            .join(quire_node::LISTEN_ADDR_FILE)
    }

    /// The client certificate, key and CA of this directory, as absolute
    /// paths (what `client.toml` names relative to the directory).
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            cert: self.dir.join("client.pem"),
            key: self.dir.join("client-key.pem"),
            ca: self.dir.join("ca.pem"),
        }
    }

    /// Reads `cluster.toml`, or `None` if this directory holds no cluster.
    pub fn read(&self) -> Result<Option<ClusterFile>, LayoutError> {
        let path = self.cluster_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let file: ClusterFile = toml::from_str(&text).map_err(|e| LayoutError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        file.id()?;
        Ok(Some(file))
    }

    /// Creates a new cluster directory: CA, certificates, node configs.
    pub fn create(&self, nodes: usize, base_port: u16) -> Result<ClusterFile, LayoutError> {
        self.create_with(nodes, base_port, &NodeSettings::default())
    }

    /// Like [`Layout::create`], with `settings` in every node's config.
    pub fn create_with(
        &self,
        nodes: usize,
        base_port: u16,
        settings: &NodeSettings,
    ) -> Result<ClusterFile, LayoutError> {
        if nodes == 0 {
            return Err(LayoutError::Mismatch(
                "a cluster needs at least one node".into(),
            ));
        }
        if base_port != 0 && usize::from(base_port) + nodes - 1 > usize::from(u16::MAX) {
            return Err(LayoutError::Mismatch(format!(
                "ports {base_port}..{} do not fit below 65536",
                usize::from(base_port) + nodes - 1
            )));
        }
        private_dir(&self.dir)?;
        let cluster_id = ClusterId(rand::random());
        let file = ClusterFile {
            cluster_id: cluster_id.to_string(),
            nodes,
            base_port,
        };
        let ca = self.create_trust(&file)?;
        for k in 1..=nodes {
            let dir = self.node_dir(k);
            private_dir(&dir.join("data"))?;
            ca.node(fresh_node_id(), LEAF_DAYS_DEFAULT)?
                .write(&dir.join("node.pem"), &dir.join("node-key.pem"))?;
            let listen = Self::listen_addr(k, base_port);
            self.write_node_config_with(k, (listen, Some(listen)), settings, Some(cluster_id))?;
        }
        // Written last: a directory with cluster.toml is complete.
        self.write_toml(&self.cluster_file(), &file)?;
        Ok(file)
    }

    /// Writes a new cluster's trust into the directory: its CA
    /// (`ca.pem`, `ca-key.pem`) and the operator's admin identity
    /// (`client.pem`, `client-key.pem`). Returns the CA, to issue more.
    pub(super) fn create_trust(&self, file: &ClusterFile) -> Result<ClusterCa, LayoutError> {
        let ca = ClusterCa::generate(&file.cluster_id)?;
        ca.pem()
            .write(&self.dir.join("ca.pem"), &self.dir.join("ca-key.pem"))?;
        ca.client(&operator(), LEAF_DAYS_DEFAULT)?.write(
            &self.dir.join("client.pem"),
            &self.dir.join("client-key.pem"),
        )?;
        Ok(ca)
    }

    /// Adds the next node to an existing cluster directory: `node-K`
    /// with a certificate from the cluster CA and a `node.toml` (listening
    /// on the cluster's base port + K - 1, or a port free now when the
    /// base port is 0), and counts it in `cluster.toml`. The node is neither
    /// started nor joined: `quire cluster join` does that.
    pub fn add_node(&self) -> Result<(usize, SocketAddr), LayoutError> {
        let mut file = self.read()?.ok_or_else(|| {
            LayoutError::Mismatch(format!(
                "{} holds no cluster (no cluster.toml): create one with `quire up`",
                self.dir.display()
            ))
        })?;
        let k = file.nodes + 1;
        if file.base_port != 0 && usize::from(file.base_port) + k - 1 > usize::from(u16::MAX) {
            return Err(LayoutError::Mismatch(format!(
                "node {k} would listen above port 65535"
            )));
        }
        let key_path = self.dir.join("ca-key.pem");
        let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let ca = ClusterCa::load(&file.cluster_id, &key)?;
        let dir = self.node_dir(k);
        private_dir(&dir.join("data"))?;
        ca.node(fresh_node_id(), LEAF_DAYS_DEFAULT)?
            .write(&dir.join("node.pem"), &dir.join("node-key.pem"))?;
        // The settings of node 1, so a node added later is configured as
        // the ones before it.
        let settings = self
            .read_node_config(1)
            .map(|c| NodeSettings {
                limits: c.limits,
                storage: c.storage,
                runtime: c.runtime,
            })
            .unwrap_or_default();
        let mut listen = Self::listen_addr(k, file.base_port);
        if listen.port() == 0 {
            // A cluster on free ports: give the node one now, so its
            // address is known (and can be joined) before it starts.
            let probe = std::net::UdpSocket::bind(listen).map_err(io_err(&dir))?;
            listen = probe.local_addr().map_err(io_err(&dir))?;
        }
        self.write_node_config_with(k, (listen, Some(listen)), &settings, Some(file.id()?))?;
        file.nodes = k;
        self.write_toml(&self.cluster_file(), &file)?;
        Ok((k, listen))
    }

    /// The address node K is configured to listen on.
    pub fn listen_addr(k: usize, base_port: u16) -> SocketAddr {
        let port = if base_port == 0 {
            0
        } else {
            base_port + (k as u16 - 1)
        };
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// Records a new base port in `cluster.toml` and the node configs.
    pub fn change_base_port(
        &self,
        file: &mut ClusterFile,
        base_port: u16,
    ) -> Result<(), LayoutError> {
        for k in 1..=file.nodes {
            self.write_node_config(k, base_port)?;
        }
        file.base_port = base_port;
        self.write_toml(&self.cluster_file(), file)
    }

    pub(super) fn write_toml(
        &self,
        path: &Path,
        value: &impl Serialize,
    ) -> Result<(), LayoutError> {
        let text = toml::to_string_pretty(value).map_err(|e| LayoutError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // Write then rename, so a crash never leaves half a config.
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    }
}
