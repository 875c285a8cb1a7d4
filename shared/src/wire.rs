//! The request set between clients and nodes, and its framing.
//!
//! One request per QUIC bidirectional stream: the client writes one frame
//! and finishes its side; the node answers with one frame. A frame is a
//! 4-byte big-endian payload length and a postcard payload. postcard is not
//! self-describing, so the ALPN string ([`ALPN`]) versions the whole wire.
//! Lengths are checked against the receiver's limit before any allocation.

use crate::dvvset::{Malformed, VersionVector};
use crate::ids::{ActorId, ClusterId};
use crate::membership::{Membership, MembershipVersion};
use crate::object::{Object, Value};
use crate::ring::NodeId;
use serde::{Deserialize, Serialize};

/// ALPN protocol id; a peer speaking another version fails the handshake.
pub const ALPN: &[u8] = b"quire/10";
/// Protocol version carried in `Hello`, equal to the ALPN's. 2: stores
/// carry object limits, `DropHints` carries clocks instead of objects. 3:
/// anti-entropy (Merkle digests, segment scans), `Stats`, `DeleteIfEqual`.
/// 4: store limits carry the tombstone grace period. 5: `MerkleRoot`
/// answers carry the partition's tombstone count; a `ScanSegment` may list
/// key digests instead of objects. 6: membership change (pending owners in
/// the document, `TransferState`, `TransferMark`, `DropPartition`). 7:
/// grants in the document, `Forbidden`. 8: `Hello` answers carry the
/// node's metrics address and clock; `TransferPage` (entries and the
/// mark in one write) replaces `TransferMark`. 9: a stream may carry
/// several request frames, answered in order (a client batches requests
/// to one node). 10: a `ScanSegment` names the most bytes its page may
/// hold (paced transfers).
pub const PROTOCOL_VERSION: u32 = 10;
/// Bytes of the length prefix.
pub const FRAME_HEADER_BYTES: usize = 4;

/// What a client asks of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Who are you, and do we speak the same protocol in the same cluster?
    Hello {
        /// The client's protocol version.
        protocol_version: u32,
        /// The cluster the client believes it talks to, if it knows.
        cluster_id: Option<ClusterId>,
    },
    /// The node's local object for a key.
    Get {
        /// Store name.
        store: String,
        /// User key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// `Some(home)` when asking a stand-in: answer from the hints it
        /// holds for the key (for `home` or any other home replica), so an
        /// acknowledged hinted write is visible to reads.
        hint: Option<NodeId>,
    },
    /// A coordinated write: the node records `value` as a new event at its
    /// own actor, discarding the versions `context` has seen.
    Put {
        /// Store name.
        store: String,
        /// User key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The value or tombstone.
        value: Value,
        /// What the writer had read.
        context: VersionVector,
        /// `Some(home)` when every home replica is unreachable and this
        /// node coordinates as a stand-in: the result is kept as a hint.
        hint: Option<NodeId>,
    },
    /// Merge a coordinator's result into the local object.
    Replicate {
        /// Store name.
        store: String,
        /// User key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The object to sync in.
        object: Object,
        /// `Some(home)` when this node stands in for an unreachable home
        /// replica (sloppy quorum); the object is kept as a hint.
        hint: Option<NodeId>,
    },
    /// A page of the hints this node holds for `target`, starting after
    /// `after` (the previous page's opaque cursor). Pages are bounded by
    /// count and by bytes (the node's frame limit), and hold at least one
    /// hint while any is left.
    Hints {
        /// The home node the hints are for.
        target: NodeId,
        /// Resume after this cursor; `None` for the first page.
        #[serde(with = "serde_bytes")]
        after: Option<Vec<u8>>,
        /// Most hints in the page.
        limit: u32,
    },
    /// Forget hints for `target` that were delivered: each is dropped only
    /// if the held object's clock is covered by the delivered one (a hint
    /// updated since it was read is kept for the next delivery). Clocks,
    /// not objects, so the request stays small however large the hints.
    DropHints {
        /// The home node the hints were for.
        target: NodeId,
        /// The delivered hints (at most [`crate::limits::DROP_HINTS_MAX`]).
        #[serde(
            deserialize_with = "crate::bounded::vec::<_, _, { crate::limits::DROP_HINTS_MAX }>"
        )]
        hints: Vec<DeliveredHint>,
    },
    /// The node's newest membership document.
    GetMembership,
    /// The Merkle root of the node's copy of a partition (anti-entropy).
    /// Refused with `NotOwner` unless the node is a home replica of it.
    MerkleRoot {
        /// Store name.
        store: String,
        /// Partition, below the membership's partition count.
        partition: u32,
    },
    /// Digests of `count` segments from `first`, one per `group`
    /// consecutive segments: the segment hashes themselves when `group` is
    /// 1, else the root (MD5) of each group. Coarse groups first, then the
    /// segments of the groups that differ, keep an exchange's bytes close
    /// to the number of differences.
    MerkleSegments {
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
        /// First segment.
        first: u16,
        /// Segments covered (`first + count` at most [`crate::merkle::SEGMENTS`]).
        count: u16,
        /// Segments per digest (1 or more).
        group: u16,
    },
    /// A page of the keys of a partition in the given Merkle segments,
    /// with their objects or only their digests (`listing`), in key order,
    /// after cursor `after`. Bounded by bytes (the frame limit) and by
    /// keys examined, so a page may be empty with a cursor to go on from.
    ScanSegment {
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
        /// Segments to return keys of; empty for every segment.
        #[serde(
            deserialize_with = "crate::bounded::vec::<_, _, { crate::merkle::SEGMENTS as usize }>"
        )]
        segments: Vec<u16>,
        /// Only keys whose values are all tombstones (reaping).
        tombstones_only: bool,
        /// Objects, or key digests only (answered with `SegmentDigests`).
        listing: Listing,
        /// Resume after this cursor (the previous page's `next`).
        #[serde(with = "serde_bytes")]
        after: Option<Vec<u8>>,
        /// Most bytes of records the asker wants in the page, below the
        /// frame limit that bounds every page: a transfer paced by bytes
        /// asks for small pages, so that no single reply holds the
        /// source's runtime (and the reads behind it) for long. `None`:
        /// the frame limit alone.
        bytes_max: Option<u32>,
    },
    /// The node's totals: objects, bytes and tombstones per store, hints
    /// held per home node, anti-entropy exchanges served.
    Stats,
    /// Remove a key if its object is still exactly `object` (tombstone
    /// reaping, phase two); a write since leaves the key as it is.
    DeleteIfEqual {
        /// Store name.
        store: String,
        /// User key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The object every home replica was seen to hold.
        object: Object,
    },
    /// Where the transfer of a partition to this node stands (membership
    /// change): what the receiving node recorded with `TransferPage`.
    TransferState {
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
    },
    /// Stores part of a transfer on its incoming replica in one write:
    /// every entry synced into the node's copy, as `Replicate` does, then
    /// `progress` recorded if given (the last part of a page), so a page
    /// costs a request per part instead of one per key. Refused
    /// (`NotOwner`) unless the node is an incoming replica of the
    /// partition in change `change`; an entry whose key is not in the
    /// partition is refused (`Malformed`) before anything is written.
    /// The partition must hold one of the node's transfer slots
    /// (`limits.transfers_in_max`), taken by its first page and freed once
    /// its mark is done: a page of another partition while every slot is
    /// held is refused `Unavailable`, and a page with no entries and no
    /// progress only claims the slot. A done mark stays done for its
    /// change ([`crate::wire::moves_mark`]).
    TransferPage {
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
        /// The change the transfer is for (the epoch it was committed in).
        change: u64,
        /// The keys and objects, at most
        /// [`crate::limits::TRANSFER_PAGE_ENTRIES_MAX`].
        #[serde(
            deserialize_with = "crate::bounded::vec::<_, _, { crate::limits::TRANSFER_PAGE_ENTRIES_MAX }>"
        )]
        entries: Vec<Entry>,
        /// The progress to record once they are stored.
        progress: Option<TransferProgress>,
    },
    /// Removes up to a batch of the node's keys of a partition it is no
    /// longer a home (or incoming) replica of: an old owner's copy, once a
    /// membership change has flipped and the copy was handed off. Refused
    /// with `StillReplica` otherwise.
    DropPartition {
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
        /// The Merkle root of the copy as it was handed off (then as the
        /// previous batch left it): a copy that changed since is refused
        /// with `CopyChanged`, never dropped.
        root: [u8; 16],
    },
    /// Offer a membership document. Without `base` (a client spreading a
    /// document it saw) it is kept if it supersedes the held one; with
    /// `base` (an admin's change) only if the node holds exactly that
    /// document, else the node refuses with `EpochConflict`.
    PutMembership {
        /// The document (boxed: it is by far the largest request, and
        /// every other request would otherwise be as large in memory).
        membership: Box<Membership>,
        /// The document the change was built on, for compare-and-set.
        base: Option<MembershipVersion>,
    },
}

impl Request {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Get { .. } => "get",
            Request::Put { .. } => "put",
            Request::Replicate { .. } => "replicate",
            Request::Hints { .. } => "hints",
            Request::DropHints { .. } => "drop-hints",
            Request::GetMembership => "get-membership",
            Request::PutMembership { .. } => "put-membership",
            Request::MerkleRoot { .. } => "merkle-root",
            Request::MerkleSegments { .. } => "merkle-segments",
            Request::ScanSegment { .. } => "scan-segment",
            Request::Stats => "stats",
            Request::DeleteIfEqual { .. } => "delete-if-equal",
            Request::TransferState { .. } => "transfer-state",
            Request::TransferPage { .. } => "transfer-page",
            Request::DropPartition { .. } => "drop-partition",
        }
    }
}

/// A node's answer. Every answer carries the node's membership epoch so
/// clients notice a newer document without asking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The node's membership epoch (0 before it has one).
    pub epoch: u64,
    /// The outcome.
    pub result: Result<Reply, ErrorReply>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to `Hello`.
    Hello {
        /// The node's id.
        node_id: NodeId,
        /// The actor id in the dots this node makes (new per data directory).
        actor_id: ActorId,
        /// The cluster the node belongs to, once it has a membership document.
        cluster_id: Option<ClusterId>,
        /// The node's protocol version.
        protocol_version: u32,
        /// Where the node serves Prometheus metrics (`GET /metrics`), if it
        /// does: what `quire status` shows an operator to scrape.
        metrics: Option<std::net::SocketAddr>,
        /// The node's wall clock when it answered (ms since the Unix
        /// epoch): node clocks order last-write-wins races, so `quire
        /// status` compares each with its own and warns of skew.
        clock_ms: u64,
    },
    /// Answer to `Get`: the local object, if any.
    Object(Option<Object>),
    /// Answer to `Put` and `Replicate`: the object now stored.
    Stored(Object),
    /// Answer to `Hints`.
    Hints {
        /// The page.
        hints: Vec<Hint>,
        /// Cursor for the next page; `None` when this was the last.
        #[serde(with = "serde_bytes")]
        next: Option<Vec<u8>>,
    },
    /// Answer to `DropHints`: how many were dropped.
    Dropped(u32),
    /// Answer to `GetMembership`.
    Membership(Option<Membership>),
    /// Answer to `PutMembership`: the epoch the node now holds.
    MembershipEpoch(u64),
    /// Answer to `MerkleRoot`.
    MerkleRoot(PartitionDigest),
    /// Answer to `MerkleSegments`: one digest per group, in order.
    MerkleSegments(Vec<[u8; 16]>),
    /// Answer to `ScanSegment`.
    Segment {
        /// The keys found, with their objects.
        entries: Vec<Entry>,
        /// Cursor for the next page; `None` when the partition is done.
        #[serde(with = "serde_bytes")]
        next: Option<Vec<u8>>,
    },
    /// Answer to a `ScanSegment` asking for digests.
    SegmentDigests {
        /// The keys found, with their entry digests.
        keys: Vec<KeyDigest>,
        /// Cursor for the next page; `None` when the partition is done.
        #[serde(with = "serde_bytes")]
        next: Option<Vec<u8>>,
    },
    /// Answer to `Stats`.
    Stats(NodeStats),
    /// Answer to `DeleteIfEqual`: whether the key was removed.
    Deleted(bool),
    /// Answer to `TransferState` and `TransferPage`: the progress held.
    Transfer(TransferProgress),
    /// Answer to `DropPartition`: keys removed, and whether any are left
    /// (ask again).
    PartitionDropped {
        /// Keys removed by this request.
        keys: u64,
        /// Keys of the partition left on the node.
        more: bool,
        /// The copy's Merkle root after this batch: the next request's.
        root: [u8; 16],
    },
}

impl Reply {
    /// The reply, if every object it carries is well formed (see
    /// [`crate::Dvvset::validate`]). A node's bytes are not trusted: a
    /// client checks every reply before merging what it holds, and treats
    /// a malformed one as that node's failure.
    pub fn validated(self) -> Result<Self, Malformed> {
        match &self {
            Reply::Object(Some(o)) | Reply::Stored(o) => o.validate()?,
            Reply::Hints { hints, .. } => hints.iter().try_for_each(|h| h.object.validate())?,
            Reply::Segment { entries, .. } => {
                entries.iter().try_for_each(|e| e.object.validate())?
            }
            _ => {}
        }
        Ok(self)
    }
}

/// An object a stand-in holds for an unreachable home replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// Store name.
    pub store: String,
    /// User key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The object to deliver home.
    pub object: Object,
}

/// A hint that reached its home node: what the stand-in may now forget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredHint {
    /// Store name.
    pub store: String,
    /// User key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The clock (the join) of the object delivered.
    pub clock: VersionVector,
}

mod errors;
mod frame;
mod repair;
mod scope;
#[cfg(test)]
mod tests;

pub use errors::{ErrorCode, ErrorReply};
pub use frame::{
    decode_frame, decode_payload, encode_frame, payload_len, request_payload_max, FrameError,
    PUT_MEMBERSHIP_TAG,
};
pub use repair::{
    moves_mark, Entry, KeyDigest, Listing, NodeStats, PartitionDigest, StoreTotals,
    TransferProgress,
};
