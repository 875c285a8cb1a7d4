//! The ring: where a key lives.
//!
//! Dynamo's partitioning strategy 3: the 128-bit MD5 ring is cut into `Q`
//! equal partitions (`Q` a power of two, fixed when a cluster is created),
//! each owned by one node. A key's position is the MD5 of
//! `store ‖ 0x00 ‖ key`; its partition is the top `log2 Q` bits. Walking the
//! partitions clockwise from there and collecting distinct nodes gives the
//! key's preference list: the first `N` are its home replicas, the rest is the
//! extended list a sloppy quorum falls back on.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

pub use crate::ids::NodeId;

/// The position of a key on the ring: MD5 of `store ‖ 0x00 ‖ key`. The store
/// name is part of the position so that the same key in two stores spreads
/// independently.
pub fn key_position(store: &str, key: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(store.as_bytes());
    h.update([0u8]);
    h.update(key);
    h.finalize().into()
}

/// True when `partitions` is a valid ring size: a power of two, at least 1,
/// at most 2^16 (more would make membership documents unwieldy).
pub fn valid_partition_count(partitions: u32) -> bool {
    partitions.is_power_of_two() && partitions <= 1 << 16
}

/// The partition a position falls in: its top `log2 partitions` bits.
pub fn partition_of(position: &[u8; 16], partitions: u32) -> u32 {
    debug_assert!(valid_partition_count(partitions));
    let bits = partitions.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    (u128::from_be_bytes(*position) >> (128 - bits)) as u32
}

/// Assigns every partition an owner. Partitions go round-robin over the
/// members in id order, so each node owns `Q / members` partitions (± 1) and
/// neighbouring partitions have different owners.
///
/// This is the one place ownership is decided; weights and zones will extend
/// it without changing its callers.
pub fn claim(members: &[NodeId], partitions: u32) -> Vec<NodeId> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        return Vec::new();
    }
    (0..partitions as usize)
        .map(|p| sorted[p % sorted.len()])
        .collect()
}

/// A key's preference list: every distinct node met walking the ring
/// clockwise from the key's partition. The first `n` are the home replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceList {
    /// The key's partition.
    pub partition: u32,
    /// Distinct nodes in walk order.
    pub nodes: Vec<NodeId>,
    /// How many of `nodes` are home replicas (the store's `N`, or fewer when
    /// the cluster has fewer nodes).
    pub n: usize,
}

impl PreferenceList {
    /// Walks `owners` (the partition owners) clockwise from `partition`.
    pub fn walk(owners: &[NodeId], partition: u32, n: usize) -> Self {
        Self::walk_among(owners, partition, n, owners.len())
    }

    /// [`PreferenceList::walk`] of a ring with at most `distinct` distinct
    /// owners (the members): the walk stops once it has met that many,
    /// instead of going round all `Q` partitions. Every get and put
    /// computes a preference list, on the client and again on each node,
    /// so this is on the data path. A `distinct` above the true count only
    /// costs the full walk.
    pub fn walk_among(owners: &[NodeId], partition: u32, n: usize, distinct: usize) -> Self {
        let mut nodes: Vec<NodeId> = Vec::with_capacity(distinct.min(owners.len()));
        let len = owners.len();
        let start = partition as usize;
        let ring = owners[start.min(len)..]
            .iter()
            .chain(&owners[..start.min(len)]);
        for &owner in ring {
            if !nodes.contains(&owner) {
                nodes.push(owner);
                if nodes.len() >= distinct {
                    break;
                }
            }
        }
        let n = n.min(nodes.len());
        Self {
            partition,
            nodes,
            n,
        }
    }

    /// [`PreferenceList::walk`] up to the home replicas only: the walk
    /// stops at the `n`-th distinct owner. For callers that read
    /// [`PreferenceList::home`] alone (while a change moves data, every
    /// get and put asks who is home now and who will be).
    pub fn walk_home(owners: &[NodeId], partition: u32, n: usize) -> Self {
        Self::walk_among(owners, partition, n, n)
    }

    /// The home replicas: the first `N` distinct nodes.
    pub fn home(&self) -> &[NodeId] {
        &self.nodes[..self.n]
    }

    /// The nodes after the home replicas, in walk order: stand-ins for the
    /// sloppy quorum.
    pub fn extended(&self) -> &[NodeId] {
        &self.nodes[self.n..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn position_is_md5_of_store_nul_key() {
        // md5("s\0k") computed independently (printf 's\0k' | md5sum).
        let expected = "4fd25f90c71f235c098acd3a82858231";
        let got: String = key_position("s", b"k")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn partition_uses_the_top_bits() {
        let mut pos = [0u8; 16];
        pos[0] = 0b1010_0000;
        assert_eq!(partition_of(&pos, 1), 0);
        assert_eq!(partition_of(&pos, 2), 1);
        assert_eq!(partition_of(&pos, 8), 0b101);
        assert_eq!(partition_of(&[0xff; 16], 256), 255);
    }

    proptest! {
        #[test]
        fn every_partition_is_owned_by_a_member(
            members in prop::collection::hash_set(any::<u64>(), 1..12),
            bits in 0u32..10,
        ) {
            let members: Vec<NodeId> = members.into_iter().map(NodeId).collect();
            let q = 1u32 << bits;
            let owners = claim(&members, q);
            prop_assert_eq!(owners.len(), q as usize);
            prop_assert!(owners.iter().all(|o| members.contains(o)));
            // Even: counts differ by at most one.
            let counts: Vec<usize> = members.iter().map(|m| owners.iter().filter(|o| *o == m).count()).collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            prop_assert!(hi - lo <= 1 || (q as usize) < members.len());
        }

        #[test]
        fn preference_lists_have_n_distinct_home_nodes(
            members in prop::collection::hash_set(any::<u64>(), 1..12),
            bits in 0u32..10,
            n in 1usize..6,
            key in prop::collection::vec(any::<u8>(), 0..32),
        ) {
            let members: Vec<NodeId> = members.into_iter().map(NodeId).collect();
            let q = 1u32 << bits;
            let owners = claim(&members, q);
            let p = partition_of(&key_position("store", &key), q);
            let list = PreferenceList::walk(&owners, p, n);
            let distinct_owners = { let mut o = owners.clone(); o.sort(); o.dedup(); o.len() };
            // Stopping at the member count gives the same list.
            prop_assert_eq!(&PreferenceList::walk_among(&owners, p, n, members.len()), &list);
            // Stopping at the home replicas gives the same home replicas.
            let home_only = PreferenceList::walk_home(&owners, p, n);
            prop_assert_eq!(home_only.home(), list.home());
            prop_assert_eq!(list.home().len(), n.min(distinct_owners));
            let mut home = list.home().to_vec();
            home.sort();
            home.dedup();
            prop_assert_eq!(home.len(), list.home().len());
            prop_assert_eq!(list.nodes.len(), distinct_owners);
            prop_assert_eq!(list.nodes[0], owners[p as usize]);
        }
    }
}
