//! The writes the writer thread applies, each fully validated by the
//! caller, and what each produced.

use quire_shared::dvvset::VersionVector;
use quire_shared::wire::{ErrorCode, TransferProgress};
use quire_shared::{
    ConflictPolicy, Membership, MembershipVersion, NodeId, Object, StoreLimits, Value,
};

/// One write, fully validated by the caller.
#[derive(Debug)]
pub enum WriteOp {
    /// A coordinated write: a new dot at this node's actor.
    Put {
        /// LMDB key.
        data_key: Vec<u8>,
        /// The new value or tombstone.
        value: Value,
        /// What the writer had seen.
        context: VersionVector,
        /// `Some(home)`: coordinate as a stand-in and keep the result as a
        /// hint for `home`.
        hint: Option<NodeId>,
        /// Every member: a stand-in's base object merges its hint copies
        /// of the key for all of them.
        members: Vec<NodeId>,
        /// The store's conflict policy: last-write-wins keeps only the
        /// newest value.
        policy: ConflictPolicy,
        /// Bounds the resulting object must keep (the store's, held under
        /// the node's frame limit).
        limits: StoreLimits,
    },
    /// Forget delivered hints for `target` unless they changed since.
    DropHints {
        /// The home node.
        target: NodeId,
        /// `(data key, clock of the object delivered)`.
        items: Vec<(Vec<u8>, VersionVector)>,
    },
    /// Sync a replicated object into the local one (or into the hint area
    /// for `hint`).
    Replicate {
        /// LMDB key.
        data_key: Vec<u8>,
        /// The object to merge.
        object: Object,
        /// Home node when stored as a hint.
        hint: Option<NodeId>,
        /// Every member: where the stand-in dots the object may carry can
        /// be held (see the writer's `guard`).
        members: Vec<NodeId>,
        /// The store's conflict policy: last-write-wins keeps only the
        /// newest value.
        policy: ConflictPolicy,
        /// Bounds the resulting object must keep (the store's, held under
        /// the node's frame limit).
        limits: StoreLimits,
    },
    /// Remove a key's object if it is still exactly `object` (tombstone
    /// reaping: a write since the reaper read it keeps the key).
    DeleteIfEqual {
        /// LMDB key.
        data_key: Vec<u8>,
        /// The object the reaper saw on every home replica.
        object: Object,
    },
    /// A part of a transfer page: every item taken as [`WriteOp::Replicate`]
    /// takes it into the node's own copy, then `progress` recorded (unless
    /// progress of a later change is held). An item refused stops the
    /// page before the mark, so the page is sent again.
    TransferPage {
        /// `(LMDB key, object)` of each key of the page.
        items: Vec<(Vec<u8>, Object)>,
        /// Every member (see [`WriteOp::Replicate`]).
        members: Vec<NodeId>,
        /// The store's conflict policy.
        policy: ConflictPolicy,
        /// Bounds each resulting object must keep.
        limits: StoreLimits,
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
        /// The progress to record after the items.
        progress: Option<TransferProgress>,
    },
    /// Remove up to `limit` keys of a partition this node no longer holds
    /// for anyone (checked by the handler against its membership).
    DropPartition {
        /// Store name.
        store: String,
        /// Partition.
        partition: u32,
        /// The copy's root as handed off: a copy that changed since stays.
        root: [u8; 16],
        /// Most keys removed in this write.
        limit: usize,
    },
    /// Keep an offered membership document if the rule
    /// ([`quire_shared::replica::accept_membership`]) takes it; decided in
    /// the write transaction, so two offers cannot both pass a
    /// compare-and-set.
    Membership {
        /// The offered document.
        doc: Membership,
        /// The document an admin's change was built on (compare-and-set).
        base: Option<MembershipVersion>,
        /// The serial of the certificate that signed it (checked against
        /// the held document's revocations in the write).
        signer: Option<quire_shared::access::Serial>,
    },
}

/// What a write produced.
#[derive(Debug)]
pub enum WriteOutcome {
    /// The object now stored under the key (or hint).
    Stored(Object),
    /// The membership document now held (the offered one or the one kept),
    /// and what became of the offer.
    Membership {
        /// The document held after the offer (boxed: it is most of the
        /// size of every outcome).
        held: Box<Membership>,
        /// Taken, kept out, a compare-and-set conflict, or refused (the
        /// held document revokes its signer, or it claims an earlier
        /// signing time).
        verdict: quire_shared::replica::MembershipOffer,
    },
    /// Hints dropped.
    Dropped(u32),
    /// Whether a conditional delete removed the key.
    Deleted(bool),
    /// The transfer progress held after a mark.
    Transfer(TransferProgress),
    /// Keys a partition drop removed, whether any are left, and the root
    /// after; `None` when the copy had changed and nothing was removed.
    PartitionDropped(Option<(u64, bool, [u8; 16])>),
    /// The write was refused for what it would have stored (a limit, a
    /// dot this node never issued); nothing of it was stored, and the rest
    /// of its batch is unaffected.
    Refused {
        /// The wire code to answer with.
        code: ErrorCode,
        /// Names the key, the bound and the way out.
        message: String,
    },
}
