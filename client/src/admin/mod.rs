//! Admin work on the membership document: forming a cluster and changing
//! it (creating stores), outside the quorum machines, by requests to single
//! nodes.
//!
//! Used by `quire up`, `quire store create` and the local-cluster launcher;
//! an operator's own tooling can call it too.
//!
//! # Layout
//!
//! - `calls`: reading a node's document and offering one to every member.
//! - `form`: ask each node who it is and hand every node the first
//!   document (or the same one with new addresses).
//! - `change`: compare-and-set changes: read the newest document, apply
//!   the change, offer it on top of exactly that document, retry on
//!   conflict.

mod calls;
mod change;
mod form;
mod grants;

pub use form::{form_cluster, NewCluster};

use crate::transport::SetupError;
use quire_shared::{ClusterId, ConflictPolicy, Durability, MembershipError, StoreConfig};

/// Partitions of a new cluster (the design's default `Q`).
pub const PARTITIONS_DEFAULT: u32 = 256;

/// The store every new cluster starts with.
pub const DEFAULT_STORE: &str = "default";

/// Why a cluster could not be formed or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The admin client's TLS identity or socket could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A node never answered `Hello`.
    #[error("node at {addr} did not answer within {waited_ms} ms: {last_error}")]
    NoAnswer {
        /// The node's address.
        addr: String,
        /// How long we tried.
        waited_ms: u128,
        /// The last failure seen.
        last_error: String,
    },
    /// A node holds a document of another cluster.
    #[error("node at {addr} belongs to cluster {theirs}, not {ours}; wrong data directory?")]
    WrongCluster {
        /// The node's address.
        addr: String,
        /// Its cluster.
        theirs: ClusterId,
        /// Ours.
        ours: ClusterId,
    },
    /// The nodes are not the ones the stored document names.
    #[error("members {members} of the cluster are not among the running nodes ({running}): start them, or move their data off with `quire cluster leave` / `quire cluster replace`")]
    MembersChanged {
        /// Ids answering now.
        running: String,
        /// Members of the stored document that are not running.
        members: String,
    },
    /// The document is invalid.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The nodes refused this identity the change: changing the cluster
    /// (membership, stores, grants) needs an admin certificate.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A document could not be sealed (this identity may not sign) or a
    /// seal did not verify.
    #[error(transparent)]
    Seal(quire_net::seal::SealError),
    /// A grant names an invalid identity or store.
    #[error("{0}")]
    BadGrant(String),
    /// Too few nodes took the changed document.
    #[error("the new membership document was not taken by a majority of the members: {0}")]
    NotAccepted(String),
    /// Staged changes cannot be applied to the cluster as it is.
    #[error(transparent)]
    Change(#[from] quire_shared::ChangeError),
    /// The cluster changed since the plan was made: what was shown is not
    /// what a commit would do.
    #[error("the cluster changed since the plan (planned on epoch {planned}, now epoch {now}); run `quire cluster plan` again and check what moves")]
    Replan {
        /// The epoch the plan was made on.
        planned: u64,
        /// The epoch the members hold now.
        now: u64,
    },
    /// Other changes kept winning the compare-and-set.
    #[error(
        "gave up after {attempts} attempts: other membership changes kept coming first; retry"
    )]
    Contended {
        /// Attempts made.
        attempts: u32,
    },
    /// A node refused the document.
    #[error("node at {addr} refused the membership document: {message}")]
    Refused {
        /// The node's address.
        addr: String,
        /// Its answer.
        message: String,
    },
}

/// The `default` store for a cluster of `nodes`: (N, R, W) = (3, 2, 2),
/// reduced to fit a smaller cluster, synced writes.
pub fn default_store(nodes: usize) -> StoreConfig {
    let n = nodes.clamp(1, 3) as u8;
    StoreConfig {
        name: DEFAULT_STORE.to_string(),
        n,
        r: n.min(2),
        w: n.min(2),
        durability: Durability::Sync,
        policy: ConflictPolicy::Siblings,
        limits: quire_shared::StoreLimits::default(),
    }
}

impl From<quire_net::seal::SealError> for AdminError {
    /// A side that may not sign is refused the change, as a node would
    /// refuse it.
    fn from(e: quire_net::seal::SealError) -> Self {
        match e {
            quire_net::seal::SealError::CannotSign(why) => AdminError::Forbidden(why),
            other => AdminError::Seal(other),
        }
    }
}
