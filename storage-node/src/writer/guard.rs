//! What the writer refuses to store, decided inside its transaction where
//! the key's objects are known, before anything of the write is stored.
//!
//! Two kinds of refusal live here. Object limits: a write may not grow a
//! key past its store's bounds. Unissued dots: a context or a replicated
//! object may not claim a dot of this node's current actors that the node
//! never issued for the key. Such a claim is either corrupt or hostile;
//! taken in, it would push the actor's counter for the key to wherever the
//! peer chose (at `u64::MAX` the next write's counter could not grow), and
//! the node's own later dots for the key would be ones the claim already
//! covered. The actors are new at every start (see
//! [`crate::storage::Storage::open`]), so every dot of theirs that the node
//! issued is still in one of its local copies of the key: its data copy,
//! or a hint copy for a stand-in dot.
//!
//! A refusal is an outcome, not an error: the batch it is part of commits
//! the other writes as usual.

use super::apply::Actors;
use super::WriteOutcome;
use crate::storage::{split_data_key, StorageError, WriteTxn};
use quire_shared::limits::LimitExceeded;
use quire_shared::wire::ErrorCode;
use quire_shared::{ActorId, NodeId, Object, StoreLimits};

/// The key of `data_key`, printable, and its store, for messages and logs.
fn names(data_key: &[u8]) -> (String, String) {
    let (store, _, key) = split_data_key(data_key).unwrap_or_default();
    (store, key.escape_ascii().to_string())
}

/// The first dot of this node's current actors that `claimed` (a
/// context's or an incoming object's counter per actor) holds beyond
/// what the node issued for the key: `(actor, claimed, issued)`.
///
/// `held` is the local copy the write starts from; only when the claim
/// goes past it are the other local copies read (the data copy and the
/// hint copies for `homes`), which a well-behaved peer never causes
/// except for stand-in dots kept in another hint copy.
pub(super) fn unissued_dot(
    txn: &WriteTxn<'_>,
    actors: &Actors,
    data_key: &[u8],
    homes: &[NodeId],
    held: &Object,
    claimed: impl Fn(ActorId) -> u64,
) -> Result<Option<(ActorId, u64, u64)>, StorageError> {
    for actor in [actors.node, actors.hint] {
        let claim = claimed(actor);
        if claim <= held.counter(actor) {
            continue;
        }
        let mut issued = held.counter(actor);
        if let Some(data) = txn.get_object(data_key)? {
            issued = issued.max(data.counter(actor));
        }
        for &home in homes {
            if let Some(hint) = txn.get_hint(home, data_key)? {
                issued = issued.max(hint.counter(actor));
            }
        }
        if claim > issued {
            return Ok(Some((actor, claim, issued)));
        }
    }
    Ok(None)
}

/// The refusal of a write claiming `(actor, claim)` when the node issued
/// no more than `issued` for the key; `code` says whether a context or an
/// object made the claim.
pub(super) fn unissued_refusal(
    data_key: &[u8],
    code: ErrorCode,
    (actor, claim, issued): (ActorId, u64, u64),
) -> WriteOutcome {
    let (store, key) = names(data_key);
    let what = if code == ErrorCode::InvalidContext {
        "context"
    } else {
        "object"
    };
    WriteOutcome::Refused {
        code,
        message: format!(
            "the {what} for key \"{key}\" of store {store:?} claims dot {claim} of this \
             node's actor {actor}, which issued at most {issued} for the key; nothing was \
             stored (was the {what} made for another key, or by another node run?)"
        ),
    }
}

/// Refuses an event at `actor`, whose counter for the key is `counter` in
/// the write's base, when that counter cannot grow: unreachable after [`unissued_dot`] (the node would
/// have to issue 2^64 dots), and refused rather than trusted, so that no
/// write can make the node reuse a dot.
pub(super) fn exhausted(data_key: &[u8], counter: u64, actor: ActorId) -> Option<WriteOutcome> {
    (counter == u64::MAX).then(|| {
        let (store, key) = names(data_key);
        WriteOutcome::Refused {
            code: ErrorCode::Storage,
            message: format!(
                "actor {actor} has no dot left for key \"{key}\" of store {store:?}; \
                 restart the node (it then writes with a new actor)"
            ),
        }
    })
}

/// The refusal of a write that would turn `stored` into `next` against
/// `limits`, or `None` when it may be stored (with a warning past the
/// store's `siblings_warn`). Checked before anything is written, so a
/// refused write leaves the key as it was.
/// Whose write a store's limits are checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A put this node coordinates: every bound holds.
    Coordinated,
    /// A merge this node takes as a replica: only the byte bound (see
    /// [`StoreLimits::check_merge`]).
    Merged,
}

pub(super) fn over_limits(
    data_key: &[u8],
    stored: &Object,
    next: &Object,
    limits: &StoreLimits,
    origin: Origin,
) -> Option<WriteOutcome> {
    let verdict = match origin {
        Origin::Coordinated => limits.check(stored, next),
        Origin::Merged => limits.check_merge(stored, next),
    };
    match verdict {
        Ok(false) => None,
        Ok(true) => {
            let (store, key) = names(data_key);
            tracing::warn!(
                %store,
                %key,
                siblings = next.value_count(),
                warn_at = limits.siblings_warn,
                "key has many siblings: its writers write without the context of a read"
            );
            None
        }
        Err(exceeded) => {
            let (store, key) = names(data_key);
            let fix = match exceeded {
                LimitExceeded::TooManySiblings { .. } => {
                    "read the key and write with a context that merges them \
                     (the read's context)"
                }
                LimitExceeded::ObjectTooLarge { .. } => {
                    "read the key and write with a context that merges its \
                     siblings, or store less under it"
                }
            };
            Some(WriteOutcome::Refused {
                code: exceeded.code(),
                message: format!(
                    "key \"{key}\" of store {store:?}: {exceeded}; nothing was stored: {fix}"
                ),
            })
        }
    }
}
