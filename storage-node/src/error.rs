//! The node's one error type: why it could not start, or stopped.

use crate::{config, storage};
use std::net::SocketAddr;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Storage failed to open.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// TLS material is missing or invalid.
    #[error(transparent)]
    Tls(#[from] quire_net::tls::TlsError),
    /// The metrics address could not be bound (taken, or not local).
    #[error("cannot serve metrics on {addr} (metrics_listen): {source}")]
    MetricsBind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// An fsync failed: acknowledged writes may not be on disk, so the node
    /// stopped rather than acknowledge more.
    #[error("stopped after an fsync failure ({0}); restart to recover from what is on disk")]
    FailStop(String),
    /// The node's certificate names no node identity
    /// (`quire://node/ID`): a client's or admin's certificate, or one made
    /// before identities existed.
    #[error("{path}: not a node certificate: {reason}")]
    NotANodeCertificate {
        /// The certificate file.
        path: String,
        /// What it names instead.
        reason: String,
    },
    /// The bound address could not be recorded in the data directory.
    #[error("cannot write {path}: {source}")]
    AddrFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}
