//! What anti-entropy, transfers and `Stats` carry: a partition's root,
//! keys with their objects or digests from segment scans, transfer
//! progress, and a node's totals.

use crate::object::Object;
use crate::ring::NodeId;
use serde::{Deserialize, Serialize};

/// What a node's copy of a partition looks like from outside: enough to
/// tell whether two copies differ, and whether reaping has anything to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDigest {
    /// The Merkle root over the partition's segments.
    pub root: [u8; 16],
    /// Keys of the partition whose values are all tombstones: when every
    /// home replica has none, an exchange skips the reaping scan.
    pub tombstones: u64,
}

/// What a segment scan returns for each key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Listing {
    /// The key's object (`Reply::Segment`).
    #[default]
    Objects,
    /// Only the key's entry digest (`Reply::SegmentDigests`): an exchange
    /// lists a differing segment's keys this way and fetches only the
    /// objects that differ, so its bytes follow the differences.
    Digests,
}

/// A key and the digest of its stored object, from a digest scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDigest {
    /// User key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// [`crate::merkle::entry_hash`] of the key and its object: equal on
    /// two replicas exactly when they hold the same object.
    pub digest: [u8; 16],
}

/// A key and its object, from a segment scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// User key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The node's object for it.
    pub object: Object,
}

/// What one store holds on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreTotals {
    /// Store name.
    pub store: String,
    /// Keys held (tombstoned ones included).
    pub objects: u64,
    /// Bytes of their stored records.
    pub bytes: u64,
    /// Keys whose only values are tombstones.
    pub tombstones: u64,
}

/// A node's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Per store holding data.
    pub stores: Vec<StoreTotals>,
    /// Hints held, per home node.
    pub hints: Vec<(NodeId, u64)>,
    /// Merkle roots served since the node started (one per exchange).
    pub merkle_exchanges: u64,
}

/// How far the transfer of a partition to its receiving node has come,
/// as the receiver recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferProgress {
    /// The change the transfer is for (the epoch it was committed in); 0
    /// when nothing was recorded.
    pub change: u64,
    /// Every key up to this one (in scan order) is stored.
    #[serde(with = "serde_bytes")]
    pub after: Option<Vec<u8>>,
    /// Every key is stored.
    pub done: bool,
    /// Keys stored so far (for progress reports).
    pub keys: u64,
    /// Bytes of objects stored so far (for progress reports).
    pub bytes: u64,
    /// When the transfer's first page was marked (ms since the epoch, the
    /// transferring client's clock): with `updated_ms`, its rate.
    pub started_ms: u64,
    /// When the latest page was marked.
    pub updated_ms: u64,
}

/// Whether a receiver holding mark `held` records `next`: a mark of a
/// newer change replaces an older one, and within one change the mark
/// moves (even back: a slower client's page) until the transfer is done.
/// A done mark stays done for its change, so a client still copying
/// pages another client has finished cannot make the transfer look
/// unfinished and copy it all again.
pub fn moves_mark(held: &TransferProgress, next: &TransferProgress) -> bool {
    held.change < next.change || (held.change == next.change && !held.done)
}
