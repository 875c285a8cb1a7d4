//! The membership document: who is in the cluster, which stores exist, who
//! owns which partition, at which epoch.
//!
//! Nodes keep the newest document they are given; clients pull it from any
//! seed and compute preference lists from it. The epoch only grows, so the
//! newest document wins wherever two meet.

use crate::access::{Grant, GrantError, Serial, GRANTS_MAX, REVOKED_MAX};
use crate::claim::{claim, Claimant};
use crate::ids::ClusterId;
use crate::limits::{StoreLimits, MEMBERS_MAX, PARTITIONS_MAX, STORES_MAX};
use crate::ring::{self, NodeId, PreferenceList};
use serde::{Deserialize, Serialize};

/// One storage node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id (from its `Hello`).
    pub id: NodeId,
    /// Where clients reach it, `host:port`.
    pub addr: String,
    /// Failure domain (rack, data center); distinct zones come first in
    /// preference lists once the claim uses them.
    pub zone: String,
    /// Relative capacity; partitions will be claimed in proportion.
    pub weight: u32,
}

/// When a node acknowledges a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durability {
    /// fsync before acknowledging: an acknowledged write survives a crash.
    Sync,
    /// Flushed on an interval: faster; a crash may lose the last interval.
    Buffered,
}

/// How a store's concurrent writes are resolved by default.
///
/// The policy lives in the membership document so that every client of a
/// store agrees on it; an application may still override it per handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictPolicy {
    /// Concurrent values are all kept and returned as siblings for the
    /// application to reconcile (Dynamo's default: no write is lost).
    #[default]
    Siblings,
    /// The value with the newest timestamp wins; the others are discarded
    /// when read and when stored. Simple, but a concurrent write can vanish.
    Lww,
}

impl ConflictPolicy {
    /// The policy's name on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            ConflictPolicy::Siblings => "siblings",
            ConflictPolicy::Lww => "lww",
        }
    }
}

impl Durability {
    /// The mode's name on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        }
    }
}

/// A named keyspace with its own replication settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Store name (see [`crate::limits::valid_store_name`]).
    pub name: String,
    /// Replicas per key.
    pub n: u8,
    /// Answers a get waits for.
    pub r: u8,
    /// Stored copies a put waits for, coordinator included.
    pub w: u8,
    /// When nodes acknowledge writes to this store.
    pub durability: Durability,
    /// How concurrent writes are resolved unless a client says otherwise.
    pub policy: ConflictPolicy,
    /// Bounds on each key's object (siblings, bytes) that nodes enforce.
    /// Added in protocol 2; documents stored before it decode with the
    /// defaults (see the node's storage).
    #[serde(default)]
    pub limits: StoreLimits,
}

/// The cluster's shape at one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Random id fixed when the cluster is created; nodes refuse documents
    /// and clients of another cluster.
    pub cluster_id: ClusterId,
    /// Version of this document; higher wins.
    pub epoch: u64,
    /// Number of ring partitions `Q` (a power of two).
    pub partitions: u32,
    /// Storage nodes, sorted by id (at most [`MEMBERS_MAX`]).
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, MEMBERS_MAX>")]
    pub members: Vec<Member>,
    /// Stores, sorted by name (at most [`STORES_MAX`]).
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, STORES_MAX>")]
    pub stores: Vec<StoreConfig>,
    /// Owner of each partition, `partitions` entries: who serves reads
    /// and counts towards `W`.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, PARTITIONS_MAX>")]
    pub owners: Vec<NodeId>,
    /// While a committed change moves data: the owners it moves to.
    /// Writes also go to the home replicas these owners give; reads keep
    /// to `owners` until the change flips them in a later epoch
    /// ([`Membership::flip`]). `None` when nothing moves.
    pub pending: Option<Pending>,
    /// Which client may read or write which store, sorted by name and
    /// store (see [`crate::access`]); admins need none. Added in
    /// protocol 7.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, GRANTS_MAX>")]
    pub grants: Vec<Grant>,
    /// Serial numbers of certificates the cluster no longer accepts,
    /// sorted: a revoked identity is refused at its next request.
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, REVOKED_MAX>")]
    pub revoked: Vec<Serial>,
    /// Who made this document ([`Seal`]); nodes and clients take only
    /// documents whose seal verifies. Not part of what is signed.
    pub seal: Option<Seal>,
}

/// The owners a committed change moves the ring to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The epoch the change was committed in: names the change, so that
    /// transfer progress recorded for one change is never taken for
    /// another's.
    pub since: u64,
    /// The owner of each partition after the change (`partitions`
    /// entries).
    #[serde(deserialize_with = "crate::bounded::vec::<_, _, PARTITIONS_MAX>")]
    pub owners: Vec<NodeId>,
}

/// Why a membership document or a change to it is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    /// `Q` is not a power of two in range.
    #[error("partition count {0} is not a power of two between 1 and 65536")]
    BadPartitionCount(u32),
    /// No members.
    #[error("a cluster needs at least one member")]
    NoMembers,
    /// Two members share an id or address.
    #[error("member {0} appears twice")]
    DuplicateMember(String),
    /// The owner table is the wrong size or names a non-member.
    #[error("partition owners do not match the members")]
    BadOwners,
    /// A store's name is invalid.
    #[error("store name {0:?} is invalid: use 1 to 24 bytes of a-z, 0-9, '_' or '-'")]
    BadStoreName(String),
    /// A store's N, R, W do not fit each other or the cluster.
    #[error("store {name}: need 1 <= r, w <= n <= {members} (the nodes owning partitions; got n={n}, r={r}, w={w})")]
    BadQuorum {
        /// Store name.
        name: String,
        /// Replicas.
        n: u8,
        /// Read quorum.
        r: u8,
        /// Write quorum.
        w: u8,
        /// Members owning partitions (now and, while a change moves
        /// data, after it).
        members: usize,
    },
    /// Two stores share a name.
    #[error("store {0} exists already")]
    DuplicateStore(String),
    /// A store's object limits are out of range or inconsistent.
    #[error("store {name}: {problem}")]
    BadStoreLimits {
        /// Store name.
        name: String,
        /// Which bound is wrong and its range.
        problem: String,
    },
    /// The document is larger than nodes and clients hold and resend.
    #[error("the document has {what}; at most {max} are accepted")]
    TooLarge {
        /// What is over its bound ("5000 members", "5000000 bytes").
        what: String,
        /// The bound.
        max: usize,
    },
    /// The epoch cannot grow any more: a document at `u64::MAX` could never
    /// be replaced and would freeze the cluster.
    #[error("epoch {0} is the last one; no later document could replace it")]
    EpochExhausted(u64),
    /// The revoked serials are not sorted, or one is there twice.
    #[error("revoked certificate serials are not sorted, or one is there twice")]
    UnsortedRevocations,
    /// The grants are malformed.
    #[error("grants: {0}")]
    BadGrants(#[from] GrantError),
}

/// Which document a compare-and-set change was built on: its epoch and its
/// digest, since two documents made at once can share an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipVersion {
    /// The document's epoch.
    pub epoch: u64,
    /// [`Membership::digest`] of the document.
    pub digest: [u8; 16],
}

impl Membership {
    /// A first document (epoch 1) for `members`, with partitions claimed.
    pub fn new(
        cluster_id: ClusterId,
        partitions: u32,
        mut members: Vec<Member>,
        mut stores: Vec<StoreConfig>,
    ) -> Result<Self, MembershipError> {
        members.sort_by_key(|m| m.id);
        stores.sort_by(|a, b| a.name.cmp(&b.name));
        if !ring::valid_partition_count(partitions) {
            return Err(MembershipError::BadPartitionCount(partitions));
        }
        let owners = claim(&claimants(&members), partitions, target_n(&stores), None);
        let doc = Self {
            cluster_id,
            epoch: 1,
            partitions,
            owners,
            members,
            stores,
            pending: None,
            grants: Vec::new(),
            revoked: Vec::new(),
            seal: None,
        };
        doc.validate()?;
        Ok(doc)
    }

    /// MD5 of the document's canonical encoding: equal documents have equal
    /// digests, and two different documents of one epoch are ordered by
    /// theirs.
    pub fn digest(&self) -> [u8; 16] {
        use md5::{Digest, Md5};
        let bytes = postcard::to_allocvec(self).expect("a membership document always encodes");
        Md5::digest(&bytes).into()
    }

    /// Epoch and digest: what a compare-and-set change names as its base.
    pub fn version(&self) -> MembershipVersion {
        MembershipVersion {
            epoch: self.epoch,
            digest: self.digest(),
        }
    }

    /// True when this document replaces `other` wherever the two meet: a
    /// higher epoch, or the same epoch and a greater digest. Two admins
    /// changing the cluster at once can both make epoch `e + 1`; ordering
    /// equal epochs by digest makes every node and client settle on the
    /// same one, whatever order the documents arrive in, instead of keeping
    /// whichever came first (a split that would never heal).
    pub fn supersedes(&self, other: &Membership) -> bool {
        (self.epoch, self.digest()) > (other.epoch, other.digest())
    }

    /// The store named `name`.
    pub fn store(&self, name: &str) -> Option<&StoreConfig> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// The member with id `id`.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The partition of `key` in `store`.
    pub fn partition_of(&self, store: &str, key: &[u8]) -> u32 {
        ring::partition_of(&ring::key_position(store, key), self.partitions)
    }

    /// The preference list of `key` in `store` with `n` home replicas.
    pub fn preference_list(&self, store: &str, key: &[u8], n: usize) -> PreferenceList {
        // Every owner is a member, so the walk stops at the member count.
        PreferenceList::walk_among(
            &self.owners,
            self.partition_of(store, key),
            n,
            self.members.len(),
        )
    }
}

/// What the claim knows of each member.
fn claimants(members: &[Member]) -> Vec<Claimant> {
    members
        .iter()
        .map(|m| Claimant {
            id: m.id,
            zone: m.zone.clone(),
            weight: m.weight,
        })
        .collect()
}

/// The replica count a layout is built for: the largest `N` of the
/// stores (3 before any store exists, as most stores will use it).
fn target_n(stores: &[StoreConfig]) -> usize {
    stores
        .iter()
        .map(|s| usize::from(s.n))
        .max()
        .unwrap_or(3)
        .max(1)
}

mod change;
mod seal;
#[cfg(test)]
mod tests;
mod validate;

pub use change::{Change, ChangeError, MemberState, Transfer};
pub use seal::{AdminSeal, Seal, SealShapeError, SuccessorError, SIGNED_AT_SKEW_SECS};

/// A member's partition counts in output: owned now, and after the
/// pending change (equal when nothing moves).
pub type OwnedCounts = (usize, usize);
