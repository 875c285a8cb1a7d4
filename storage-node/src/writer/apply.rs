//! One write applied inside the writer's transaction.
//!
//! The writer thread owns the batching; this file reads what each kind of
//! write needs from the transaction, applies the shared replica rule
//! ([`quire_shared::replica`]) and stores the result. It also owns the
//! stand-in actor that hinted writes are made with, which must change
//! whenever delivered hints are forgotten: choosing and recording actors is
//! the node's business, not the rule's.

use super::guard::{exhausted, over_limits, unissued_dot, unissued_refusal, Origin};
use super::{WriteOp, WriteOutcome};
use crate::storage::{fresh_id, StorageError, WriteTxn};
use quire_shared::reap;
use quire_shared::replica::{self, MembershipOffer};
use quire_shared::wire::ErrorCode;
use quire_shared::{ActorId, NodeId};

/// The writer's identity for the dots it makes.
///
/// Both actors are new at every start, for the reason the node's own actor
/// is (see [`crate::storage::Storage::open`]): data that went back in time
/// must not make the node re-issue a dot. The stand-in actor also changes
/// whenever delivered hints are dropped: a stand-in forgets a hinted object
/// once it is delivered home, and with it the dots it made for that key;
/// reusing one of those dots for another value would make the home replica
/// treat two values as one and drop one. Dots of a new actor cannot collide
/// with forgotten ones. Stand-ins only coordinate when every home replica
/// is down, so this adds few actors.
pub(super) struct Actors {
    /// The node's own actor (home replica coordination).
    pub(super) node: ActorId,
    /// The stand-in actor.
    pub(super) hint: ActorId,
}

/// A replica (home or incoming) takes `object` for `data_key` into its
/// own copy: the shared replica rule, after the guard against dots of
/// this node it never issued, within the store's bounds.
fn replicate_home(
    txn: &mut WriteTxn<'_>,
    actors: &Actors,
    (data_key, object): (&[u8], &quire_shared::Object),
    members: &[NodeId],
    (policy, limits): (quire_shared::ConflictPolicy, &quire_shared::StoreLimits),
) -> Result<WriteOutcome, StorageError> {
    let stored = txn.get_object(data_key)?.unwrap_or_default();
    let claimed = |a| object.counter(a);
    if let Some(dot) = unissued_dot(txn, actors, data_key, members, &stored, claimed)? {
        return Ok(unissued_refusal(data_key, ErrorCode::InvalidObject, dot));
    }
    match replica::replicate(&stored, object, policy) {
        Some(next) => {
            if let Some(refused) = over_limits(data_key, &stored, &next, limits, Origin::Merged) {
                return Ok(refused);
            }
            txn.put_object(data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        None => Ok(WriteOutcome::Stored(stored)),
    }
}

/// Applies `op` inside `txn`; the caller commits. What each operation does
/// to the stored object is a rule of [`quire_shared::replica`]; this
/// function only reads its inputs and stores its result.
pub(super) fn apply(
    txn: &mut WriteTxn<'_>,
    actors: &mut Actors,
    op: &WriteOp,
) -> Result<WriteOutcome, StorageError> {
    match op {
        WriteOp::Put {
            data_key,
            value,
            context,
            hint: None,
            members,
            policy,
            limits,
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let claimed = |a| context.get(a);
            if let Some(dot) = unissued_dot(txn, actors, data_key, members, &stored, claimed)? {
                return Ok(unissued_refusal(data_key, ErrorCode::InvalidContext, dot));
            }
            let counter = stored.counter(actors.node).max(claimed(actors.node));
            if let Some(refused) = exhausted(data_key, counter, actors.node) {
                return Ok(refused);
            }
            let next =
                replica::coordinate_put(&stored, context, actors.node, value.clone(), *policy);
            if let Some(refused) =
                over_limits(data_key, &stored, &next, limits, Origin::Coordinated)
            {
                return Ok(refused);
            }
            txn.put_object(data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Put {
            data_key,
            value,
            context,
            hint: Some(home),
            members,
            policy,
            limits,
        } => {
            // Every local copy of the key, so the new dot is above any
            // dot this stand-in actor made for it and still remembers.
            let homes = with_home(members, *home);
            let mut copies = Vec::with_capacity(homes.len() + 1);
            copies.extend(txn.get_object(data_key)?);
            for &m in &homes {
                copies.extend(txn.get_hint(m, data_key)?);
            }
            // `coordinate_put_as_stand_in`, with its base kept: the checks
            // compare the context and the result with what the stand-in held.
            let base = replica::stand_in_base(copies);
            let claimed = |a| context.get(a);
            if let Some(dot) = unissued_dot(txn, actors, data_key, &homes, &base, claimed)? {
                return Ok(unissued_refusal(data_key, ErrorCode::InvalidContext, dot));
            }
            let counter = base.counter(actors.hint).max(claimed(actors.hint));
            if let Some(refused) = exhausted(data_key, counter, actors.hint) {
                return Ok(refused);
            }
            let next = replica::coordinate_put(&base, context, actors.hint, value.clone(), *policy);
            if let Some(refused) = over_limits(data_key, &base, &next, limits, Origin::Coordinated)
            {
                return Ok(refused);
            }
            txn.put_hint(*home, data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::DropHints { target, items } => {
            let mut dropped = 0;
            for (data_key, delivered) in items {
                let Some(held) = txn.get_hint(*target, data_key)? else {
                    continue;
                };
                if replica::hint_delivered(&held, delivered) {
                    txn.del_hint(*target, data_key)?;
                    dropped += 1;
                }
            }
            if dropped > 0 {
                // See META_HINT_ACTOR: forgotten dots must not be reused.
                actors.hint = ActorId(fresh_id());
            }
            Ok(WriteOutcome::Dropped(dropped))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: None,
            members,
            policy,
            limits,
        } => replicate_home(txn, actors, (data_key, object), members, (*policy, limits)),
        WriteOp::TransferPage {
            items,
            members,
            policy,
            limits,
            store,
            partition,
            progress,
        } => {
            for (data_key, object) in items {
                let outcome =
                    replicate_home(txn, actors, (data_key, object), members, (*policy, limits))?;
                if let WriteOutcome::Refused { .. } = outcome {
                    // The mark waits: the page is sent again.
                    return Ok(outcome);
                }
            }
            let held = txn.get_transfer(store, *partition)?;
            match progress {
                Some(progress) if quire_shared::wire::moves_mark(&held, progress) => {
                    txn.put_transfer(store, *partition, progress)?;
                    Ok(WriteOutcome::Transfer(progress.clone()))
                }
                _ => Ok(WriteOutcome::Transfer(held)),
            }
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: Some(home),
            members,
            policy,
            limits,
        } => {
            let stored = txn.get_hint(*home, data_key)?.unwrap_or_default();
            let homes = with_home(members, *home);
            let claimed = |a| object.counter(a);
            if let Some(dot) = unissued_dot(txn, actors, data_key, &homes, &stored, claimed)? {
                return Ok(unissued_refusal(data_key, ErrorCode::InvalidObject, dot));
            }
            match replica::replicate(&stored, object, *policy) {
                Some(next) => {
                    if let Some(refused) =
                        over_limits(data_key, &stored, &next, limits, Origin::Merged)
                    {
                        return Ok(refused);
                    }
                    txn.put_hint(*home, data_key, &next)?;
                    Ok(WriteOutcome::Stored(next))
                }
                None => Ok(WriteOutcome::Stored(stored)),
            }
        }
        WriteOp::DeleteIfEqual { data_key, object } => {
            let held = txn.get_object(data_key)?;
            if !reap::still_equal(held.as_ref(), object) {
                return Ok(WriteOutcome::Deleted(false));
            }
            txn.del_object(data_key)?;
            // The key's counters go with it: the next write of the key
            // starts from nothing, and a current actor would issue again
            // the dots the removed object held. A copy of those (a late
            // hint, a replica outside the home set) would then meet another
            // value under the same dot and one of the two would be lost
            // (the "kv679" family). New actors cannot collide; the cost is
            // one more DVVSet entry in keys written later, as after a
            // restart.
            if object.counter(actors.node) > 0 {
                actors.node = ActorId(fresh_id());
            }
            if object.counter(actors.hint) > 0 {
                actors.hint = ActorId(fresh_id());
            }
            Ok(WriteOutcome::Deleted(true))
        }
        WriteOp::DropPartition {
            store,
            partition,
            root,
            limit,
        } => Ok(WriteOutcome::PartitionDropped(txn.drop_partition(
            store,
            *partition,
            (*root, *limit),
        )?)),
        WriteOp::Membership { doc, base, signer } => {
            let current = txn.get_membership()?;
            // The clock the seal was checked by before the write.
            let now = quire_net::seal::now_unix();
            let verdict =
                replica::accept_membership(current.as_ref(), doc, *base, (signer.as_ref(), now));
            let held = match (verdict, current) {
                (MembershipOffer::Accept, _) => {
                    txn.put_membership(doc)?;
                    doc.clone()
                }
                (_, current) => current.unwrap_or_else(|| doc.clone()),
            };
            Ok(WriteOutcome::Membership {
                held: Box::new(held),
                verdict,
            })
        }
    }
}

/// Every member whose hint copies a stand-in consults, and `home` (which a
/// hint may name before the membership does).
fn with_home(members: &[NodeId], home: NodeId) -> Vec<NodeId> {
    let mut homes = members.to_vec();
    if !homes.contains(&home) {
        homes.push(home);
    }
    homes
}
