//! What can go wrong in the transport: a request to one node, or setting
//! the transport up.

use quire_net::tls::TlsError;
use quire_shared::NodeId;
use std::net::SocketAddr;

/// Why a request to one node failed before it produced an answer.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The address is not a valid socket address.
    #[error("bad node address {0:?}")]
    BadAddress(String),
    /// No connection could be made (refused, unreachable, handshake failed).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The request did not complete in time, and the node sent nothing
    /// meanwhile: it may be gone.
    #[error("no answer from {0} in time")]
    Timeout(SocketAddr),
    /// The request did not complete in time, but the node was heard from
    /// meanwhile: it is alive and slow (a long fsync), not down.
    #[error("{0} answered too slowly")]
    Slow(SocketAddr),
    /// The stream or connection broke mid-request.
    #[error("request to {addr} failed: {reason}")]
    Stream {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The node's answer did not decode.
    #[error("bad answer from {addr}: {reason}")]
    BadResponse {
        /// The node.
        addr: SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The peer at `addr` is not a node: its certificate names no node
    /// identity. Nothing is sent to it.
    #[error("{addr} is not a Quire node: {reason}")]
    NotANode {
        /// The address.
        addr: SocketAddr,
        /// What its certificate names instead.
        reason: String,
    },
    /// The node answering at `addr` is not the member the membership puts
    /// there: another node's key, or a node moved without a membership
    /// change. Nothing is sent to it.
    #[error("{addr} should be node {expected}, but its certificate names node {found}")]
    WrongNode {
        /// The address.
        addr: SocketAddr,
        /// The member the membership puts at `addr`.
        expected: NodeId,
        /// The node the certificate names.
        found: NodeId,
    },
}

/// Why the transport could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// TLS files missing or invalid, or rustls refused them.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The local UDP socket could not be bound.
    #[error("cannot bind a local UDP socket: {0}")]
    Bind(std::io::Error),
}
