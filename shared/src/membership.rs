//! The membership document: who is in the cluster, which stores exist, who
//! owns which partition, at which epoch.
//!
//! Nodes keep the newest document they are given; clients pull it from any
//! seed and compute preference lists from it. The epoch only grows, so the
//! newest document wins wherever two meet.

use crate::ids::ClusterId;
use crate::limits::{valid_store_name, StoreLimits};
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
    /// Storage nodes, sorted by id.
    pub members: Vec<Member>,
    /// Stores, sorted by name.
    pub stores: Vec<StoreConfig>,
    /// Owner of each partition, `partitions` entries.
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
    #[error("store {name}: need 1 <= r, w <= n <= {members} (got n={n}, r={r}, w={w})")]
    BadQuorum {
        /// Store name.
        name: String,
        /// Replicas.
        n: u8,
        /// Read quorum.
        r: u8,
        /// Write quorum.
        w: u8,
        /// Members in the cluster.
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
    /// The epoch cannot grow any more: a document at `u64::MAX` could never
    /// be replaced and would freeze the cluster.
    #[error("epoch {0} is the last one; no later document could replace it")]
    EpochExhausted(u64),
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
        let ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
        let doc = Self {
            cluster_id,
            epoch: 1,
            partitions,
            owners: ring::claim(&ids, partitions),
            members,
            stores,
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

    /// Checks every invariant; nodes call it before accepting a document.
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.epoch == u64::MAX {
            return Err(MembershipError::EpochExhausted(self.epoch));
        }
        if !ring::valid_partition_count(self.partitions) {
            return Err(MembershipError::BadPartitionCount(self.partitions));
        }
        if self.members.is_empty() {
            return Err(MembershipError::NoMembers);
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i]
                .iter()
                .any(|o| o.id == m.id || o.addr == m.addr)
            {
                return Err(MembershipError::DuplicateMember(format!(
                    "{} ({})",
                    m.id, m.addr
                )));
            }
        }
        if self.owners.len() != self.partitions as usize
            || !self.owners.iter().all(|o| self.member(*o).is_some())
        {
            return Err(MembershipError::BadOwners);
        }
        for (i, s) in self.stores.iter().enumerate() {
            if !valid_store_name(&s.name) {
                return Err(MembershipError::BadStoreName(s.name.clone()));
            }
            if self.stores[..i].iter().any(|o| o.name == s.name) {
                return Err(MembershipError::DuplicateStore(s.name.clone()));
            }
            let fits = s.r >= 1 && s.w >= 1 && s.r <= s.n && s.w <= s.n;
            if !fits || s.n as usize > self.members.len() {
                return Err(MembershipError::BadQuorum {
                    name: s.name.clone(),
                    n: s.n,
                    r: s.r,
                    w: s.w,
                    members: self.members.len(),
                });
            }
            s.limits
                .validate()
                .map_err(|problem| MembershipError::BadStoreLimits {
                    name: s.name.clone(),
                    problem,
                })?;
        }
        Ok(())
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
        PreferenceList::walk(&self.owners, self.partition_of(store, key), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(k: u64) -> Vec<Member> {
        (1..=k)
            .map(|id| Member {
                id: NodeId(id * 1000),
                addr: format!("127.0.0.1:{}", 7000 + id),
                zone: "z".into(),
                weight: 1,
            })
            .collect()
    }

    fn store(n: u8, r: u8, w: u8) -> StoreConfig {
        StoreConfig {
            name: "default".into(),
            n,
            r,
            w,
            durability: Durability::Sync,
            policy: ConflictPolicy::Siblings,
            limits: StoreLimits::default(),
        }
    }

    #[test]
    fn a_valid_document_is_accepted() {
        let doc = Membership::new(ClusterId(9), 64, members(3), vec![store(3, 2, 2)]).unwrap();
        assert_eq!(doc.owners.len(), 64);
        let list = doc.preference_list("default", b"k", 3);
        assert_eq!(list.home().len(), 3);
    }

    #[test]
    fn invalid_documents_are_refused() {
        assert_eq!(
            Membership::new(ClusterId(9), 63, members(3), vec![]).unwrap_err(),
            MembershipError::BadPartitionCount(63)
        );
        assert!(matches!(
            Membership::new(ClusterId(9), 64, members(2), vec![store(3, 2, 2)]).unwrap_err(),
            MembershipError::BadQuorum { .. }
        ));
        assert!(matches!(
            Membership::new(ClusterId(9), 64, members(3), vec![store(3, 0, 2)]).unwrap_err(),
            MembershipError::BadQuorum { .. }
        ));
        let mut dup = members(2);
        dup[1].addr = dup[0].addr.clone();
        assert!(matches!(
            Membership::new(ClusterId(9), 64, dup, vec![]).unwrap_err(),
            MembershipError::DuplicateMember(_)
        ));
        assert_eq!(
            Membership::new(ClusterId(9), 64, vec![], vec![]).unwrap_err(),
            MembershipError::NoMembers
        );
        let mut loose = store(3, 2, 2);
        loose.limits.siblings_warn = loose.limits.siblings_max + 1;
        assert!(matches!(
            Membership::new(ClusterId(9), 64, members(3), vec![loose]).unwrap_err(),
            MembershipError::BadStoreLimits { .. }
        ));
    }
}
