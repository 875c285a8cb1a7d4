//! Merkle digests of a partition's keys, for anti-entropy: two replicas of
//! a partition compare a root, then segments, then only the keys of the
//! segments that differ.
//!
//! The shape is a "tictac" tree (as in Riak's `kv_index_tictactree`): a
//! partition's keys fall into [`SEGMENTS`] segments by their ring position;
//! a segment's hash is the XOR of one hash per key, of the key and the
//! canonical bytes of its stored object. XOR makes the structure cheap to
//! keep current inside the write transaction that changes a key (XOR the
//! old entry out, the new one in: no rebuild, no ordering), and the result
//! is independent of the order keys were written in, so a rebuild from the
//! data gives the same bytes as the incremental path. The root hashes the
//! segments in order.
//!
//! Canonical encoding matters: two replicas holding the same DVVSet must
//! hash it equally. A DVVSet keeps its entries sorted by actor and postcard
//! encodes a value one way, so equal objects give equal bytes.

use crate::object::Object;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// Segments per (store, partition). Fixed: both sides of an exchange must
/// cut a partition the same way. 1024 keeps a root exchange cheap (16 KiB
/// of segment hashes) while a partition of a million keys still has only
/// about a thousand keys per segment to compare when one differs.
pub const SEGMENTS: u16 = 1024;

/// A segment's hash: the XOR of its keys' entry hashes (all zero when the
/// segment holds no key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentHash(pub [u8; 16]);

impl SegmentHash {
    /// XORs `other` in (or out: XOR is its own inverse).
    pub fn toggle(&mut self, other: SegmentHash) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a ^= b;
        }
    }

    /// True for the hash of an empty segment.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 16]
    }
}

/// The segment of a key, from its ring position (see
/// [`crate::ring::key_position`]). The low bits are used: the high ones
/// chose the partition, so every segment of a partition gets keys.
pub fn segment_of(position: &[u8; 16]) -> u16 {
    u16::from_be_bytes([position[14], position[15]]) % SEGMENTS
}

/// One key's contribution to its segment: MD5 of the key's length, the
/// key and the object's canonical encoding. The length prefix keeps
/// `("ab", o)` and `("a", "b"‖o)` apart.
pub fn entry_hash(key: &[u8], object: &Object) -> SegmentHash {
    let mut h = Md5::new();
    h.update((key.len() as u32).to_be_bytes());
    h.update(key);
    h.update(postcard::to_allocvec(object).expect("an object always encodes"));
    SegmentHash(h.finalize().into())
}

/// The change to a segment when `key`'s stored object goes from `before`
/// to `after` (`None`: absent): XOR this into the segment's hash.
pub fn entry_change(key: &[u8], before: Option<&Object>, after: Option<&Object>) -> SegmentHash {
    let mut change = SegmentHash::default();
    if before == after {
        return change;
    }
    for object in [before, after].into_iter().flatten() {
        change.toggle(entry_hash(key, object));
    }
    change
}

/// The root of a partition's segments, in segment order.
pub fn root(segments: &[SegmentHash]) -> [u8; 16] {
    let mut h = Md5::new();
    for s in segments {
        h.update(s.0);
    }
    h.finalize().into()
}

/// The segments of one partition, computed in memory: what a node keeps in
/// LMDB, for rebuilds and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segments(pub Vec<SegmentHash>);

impl Default for Segments {
    fn default() -> Self {
        Self(vec![SegmentHash::default(); SEGMENTS as usize])
    }
}

impl Segments {
    /// From scratch, over every key of a partition and its object.
    pub fn rebuild<'a>(
        store: &str,
        keys: impl IntoIterator<Item = (&'a [u8], &'a Object)>,
    ) -> Self {
        let mut s = Self::default();
        for (key, object) in keys {
            s.apply(store, key, None, Some(object));
        }
        s
    }

    /// Records that `key` went from `before` to `after`.
    pub fn apply(
        &mut self,
        store: &str,
        key: &[u8],
        before: Option<&Object>,
        after: Option<&Object>,
    ) {
        let segment = segment_of(&crate::ring::key_position(store, key));
        self.0[segment as usize].toggle(entry_change(key, before, after));
    }

    /// The root over all segments.
    pub fn root(&self) -> [u8; 16] {
        root(&self.0)
    }

    /// The segments whose hashes differ from `other`'s.
    pub fn differing(&self, other: &Segments) -> Vec<u16> {
        (0..SEGMENTS)
            .filter(|&i| self.0[i as usize] != other.0[i as usize])
            .collect()
    }
}

#[cfg(test)]
mod tests;
