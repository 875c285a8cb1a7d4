//! A simulated node's anti-entropy answers: Merkle roots and segment
//! digests of a partition, and paged scans of its segments.
//!
//! The digests are [`quire_shared::merkle`]'s, computed from the node's
//! data on each request (a real node keeps them current in its write
//! transactions; the two agree by that module's own tests). Scan pages are
//! one key long, so every scan past its first key follows a cursor.

use super::config::Knobs;
use super::node::{Env, Handled, Key, SimNode};
use super::STORE;
use quire_shared::merkle::{entry_hash, root, segment_of, SegmentHash, Segments, SEGMENTS};
use quire_shared::reap::only_tombstones;
use quire_shared::ring::{key_position, partition_of};
use quire_shared::wire::{
    Entry, ErrorCode, ErrorReply, KeyDigest, Listing, PartitionDigest, Reply,
};
use quire_shared::Object;
use std::sync::OnceLock;

/// Keys per scan page.
const SCAN_PAGE: usize = 1;

/// What a scan asks for (the fields of `Request::ScanSegment` but its
/// byte bound: the simulation's pages are bounded by keys alone).
pub struct ScanAsk<'a> {
    /// Partition.
    pub partition: u32,
    /// Segments to list; empty for all.
    pub segments: &'a [u16],
    /// Only keys whose values are all tombstones.
    pub tombstones_only: bool,
    /// Objects or digests.
    pub listing: Listing,
    /// Resume after this key.
    pub after: Option<&'a [u8]>,
}

/// A key's contribution to its segment, as this node computes it: a node
/// with the [`Knobs::digest_ignores_object`] bug hashes the key alone, so
/// two different versions of a key look the same.
fn entry(key: &[u8], object: &Object, knobs: Knobs) -> SegmentHash {
    if knobs.digest_ignores_object {
        entry_hash(key, &Object::default())
    } else {
        entry_hash(key, object)
    }
}

impl SimNode {
    /// The node's keys of `partition`, in key order.
    fn partition_keys<'a>(
        &'a self,
        env: &Env<'_>,
        partition: u32,
    ) -> impl Iterator<Item = (&'a Key, &'a Object)> + 'a {
        let partitions = env.partitions;
        self.disk
            .data
            .iter()
            .filter(move |(k, _)| partition_of(&key_position(STORE, k), partitions) == partition)
    }

    /// The segments of `partition` as held now.
    fn segments(&self, env: &Env<'_>, partition: u32) -> Segments {
        let mut s = Segments::default();
        for (key, object) in self.partition_keys(env, partition) {
            let at = segment_of(&key_position(STORE, key));
            s.0[usize::from(at)].toggle(entry(key, object, env.knobs));
        }
        s
    }

    /// Refuses a store or partition the world does not have.
    fn known(env: &Env<'_>, store: &str, partition: u32) -> Result<(), ErrorReply> {
        if store != STORE || partition >= env.partitions {
            return Err(ErrorReply {
                code: ErrorCode::PartitionOutOfRange,
                message: format!("no partition {partition} of store {store:?}"),
            });
        }
        Ok(())
    }

    /// The root of the node's copy of `partition`. Most partitions of a
    /// world hold no key: their root is computed once.
    pub fn partition_root(&self, env: &Env<'_>, partition: u32) -> [u8; 16] {
        static EMPTY: OnceLock<[u8; 16]> = OnceLock::new();
        match self.partition_keys(env, partition).next() {
            None => *EMPTY.get_or_init(|| Segments::default().root()),
            Some(_) => self.segments(env, partition).root(),
        }
    }

    /// `MerkleRoot`: the root of a partition and its tombstone-only keys.
    pub fn merkle_root(&self, env: &Env<'_>, store: &str, partition: u32) -> Handled {
        let digest = Self::known(env, store, partition).map(|()| {
            let tombstones = self
                .partition_keys(env, partition)
                .filter(|(_, o)| only_tombstones(o))
                .count() as u64;
            let root = self.partition_root(env, partition);
            Reply::MerkleRoot(PartitionDigest { root, tombstones })
        });
        Handled::answer(digest)
    }

    /// `MerkleSegments`: `count` segments from `first`, a digest per
    /// `group` of them.
    pub fn merkle_segments(
        &self,
        env: &Env<'_>,
        (store, partition): (&str, u32),
        (first, count, group): (u16, u16, u16),
    ) -> Handled {
        let end = usize::from(first) + usize::from(count);
        if end > usize::from(SEGMENTS) || group == 0 {
            return Handled::answer(Err(ErrorReply {
                code: ErrorCode::SegmentOutOfRange,
                message: format!("segments {first}..{end} in groups of {group}"),
            }));
        }
        let digests = Self::known(env, store, partition).map(|()| {
            let segments = self.segments(env, partition);
            let range = &segments.0[usize::from(first)..end];
            Reply::MerkleSegments(match group {
                1 => range.iter().map(|s| s.0).collect(),
                g => range.chunks(usize::from(g)).map(root).collect(),
            })
        });
        Handled::answer(digests)
    }

    /// `ScanSegment`: the next page of the partition's keys in the
    /// segments asked for, after the cursor.
    pub fn scan_segment(&self, env: &Env<'_>, store: &str, ask: &ScanAsk<'_>) -> Handled {
        if let Err(e) = Self::known(env, store, ask.partition) {
            return Handled::answer(Err(e));
        }
        let mut matching = self
            .partition_keys(env, ask.partition)
            .filter(|(k, _)| ask.after.is_none_or(|a| k.as_slice() > a))
            .filter(|(k, _)| {
                ask.segments.is_empty()
                    || ask.segments.contains(&segment_of(&key_position(STORE, k)))
            })
            .filter(|(_, o)| !ask.tombstones_only || only_tombstones(o));
        let page: Vec<(&Key, &Object)> = matching.by_ref().take(SCAN_PAGE).collect();
        let next = match (page.last(), matching.next()) {
            (Some((last, _)), Some(_)) => Some(last.to_vec()),
            _ => None,
        };
        let reply = match ask.listing {
            Listing::Objects => Reply::Segment {
                entries: page
                    .into_iter()
                    .map(|(k, o)| Entry {
                        key: k.clone(),
                        object: o.clone(),
                    })
                    .collect(),
                next,
            },
            Listing::Digests => Reply::SegmentDigests {
                keys: page
                    .into_iter()
                    .map(|(k, o)| KeyDigest {
                        key: k.clone(),
                        digest: entry(k, o, env.knobs).0,
                    })
                    .collect(),
                next,
            },
        };
        Handled::answer(Ok(reply))
    }
}
