//! Refusals: the typed code a client branches on, and the message for
//! people. Nothing stored is touched when a node refuses a request.

use serde::{Deserialize, Serialize};

/// A refused request: a code to branch on and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ErrorReply {
    /// What went wrong.
    pub code: ErrorCode,
    /// Details, naming the offending value and the limit.
    pub message: String,
}

/// Typed reasons a node refuses a request. Nothing stored is touched when a
/// request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame did not decode as a request (random bytes, unknown tag,
    /// truncated payload).
    Malformed,
    /// The frame's length exceeds the node's limit; it was not read.
    FrameTooLarge,
    /// The key is empty.
    EmptyKey,
    /// The key exceeds 480 bytes.
    KeyTooLarge,
    /// The value exceeds the node's limit.
    ValueTooLarge,
    /// The store does not exist in the node's membership document.
    UnknownStore,
    /// The request names another cluster.
    WrongCluster,
    /// The client speaks another protocol version.
    ProtocolMismatch,
    /// The node has not been given a membership document yet.
    NoMembership,
    /// A membership document failed validation.
    InvalidMembership,
    /// A replicated object violates the DVVSet invariants.
    InvalidObject,
    /// The node's storage failed; the request had no effect.
    Storage,
    /// The node is shutting down or overloaded; retry elsewhere.
    Unavailable,
    /// A compare-and-set membership change was built on a document the node
    /// no longer holds (another change came first): re-read and re-apply.
    EpochConflict,
    /// The node is not a home replica of the key in its membership (the
    /// response's epoch says which document): the client's membership is
    /// stale, so it refreshes it and retries.
    NotOwner,
    /// The write would leave the key with more siblings than its store
    /// allows; nothing was stored. Read the key and write with the read's
    /// context, which merges the siblings.
    TooManySiblings,
    /// The write would make the key's object larger than its store (or
    /// the node's frame limit) allows; nothing was stored.
    ObjectTooLarge,
    /// A context (version vector) is malformed (unsorted, an actor twice,
    /// a zero counter, too many entries) or claims a dot of this node's
    /// actor that it never issued for the key.
    InvalidContext,
    /// The partition is not below the membership's partition count.
    PartitionOutOfRange,
    /// A Merkle segment (or range of them) is not below
    /// [`crate::merkle::SEGMENTS`], or a digest group is zero.
    SegmentOutOfRange,
    /// A scan cursor is not one a scan of this partition could return.
    BadCursor,
    /// `DropPartition` of a partition the node is still a home (or
    /// incoming) replica of: its copy is needed.
    StillReplica,
    /// `DropPartition` of a copy that changed since it was handed off: it
    /// is handed off again before it may go.
    CopyChanged,
    /// The peer's certificate names an identity that may not make this
    /// request (the message names the identity, its role and the store).
    Forbidden,
}
