//! One write applied inside the writer's transaction.
//!
//! The writer thread owns the batching; this file owns what each kind of
//! write does to the stored object, and the stand-in actor that hinted
//! writes are made with, which must change whenever delivered hints are
//! forgotten.

use super::{WriteOp, WriteOutcome};
use crate::storage::{Storage, StorageError, WriteTxn};
use quire_shared::Object;

/// Meta record of the actor a stand-in uses for the dots it makes.
///
/// A stand-in forgets a hinted object once it is delivered home, and with
/// it the dots it made for that key; reusing one of those dots for another
/// value would make the home replica treat two values as one and drop one.
/// So the stand-in actor is replaced whenever delivered hints are dropped:
/// dots of a new actor cannot collide with forgotten ones. Stand-ins only
/// coordinate when every home replica is down, so this adds few actors.
const META_HINT_ACTOR: &[u8] = b"hint_actor";

/// The writer's identity for the dots it makes.
pub(super) struct Actors {
    /// The node's own actor (home replica coordination).
    pub(super) node: u64,
    /// The stand-in actor (see [`META_HINT_ACTOR`]); 0 until loaded.
    pub(super) hint: u64,
}

/// A random non-zero actor id (zero means "not loaded").
fn fresh_actor() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// The stand-in actor on record, or a fresh one recorded now.
pub(super) fn load_hint_actor(storage: &Storage) -> Result<u64, StorageError> {
    let mut txn = storage.begin_write()?;
    let actor = match txn.get_meta_u64(META_HINT_ACTOR)? {
        Some(a) => a,
        None => {
            let a = fresh_actor();
            txn.put_meta_u64(META_HINT_ACTOR, a)?;
            a
        }
    };
    txn.commit()?;
    Ok(actor)
}

/// In a last-write-wins store only the newest value is kept on disk.
fn collapse(object: Object, lww: bool) -> Object {
    if lww {
        quire_shared::last_write_wins(&object)
    } else {
        object
    }
}

/// Applies `op` inside `txn`; the caller commits.
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
            lww,
            ..
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let next = collapse(stored.update(context, actors.node, value.clone()), *lww);
            txn.put_object(data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Put {
            data_key,
            value,
            context,
            hint: Some(home),
            members,
            lww,
        } => {
            // Every local copy of the key, so the new dot is above any
            // dot this stand-in actor made for it and still remembers.
            let mut base = txn.get_object(data_key)?.unwrap_or_default();
            for m in members.iter().chain(std::iter::once(home)) {
                if let Some(held) = txn.get_hint(*m, data_key)? {
                    base = base.sync(&held);
                }
            }
            let next = collapse(base.update(context, actors.hint, value.clone()), *lww);
            txn.put_hint(*home, data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::DropHints { target, items } => {
            let mut dropped = 0;
            for (data_key, delivered) in items {
                let Some(held) = txn.get_hint(*target, data_key)? else {
                    continue;
                };
                // Drop only what was delivered: a hint written to since
                // the read has news for the home node.
                if held.less(delivered) || held.equal_history(delivered) {
                    txn.del_hint(*target, data_key)?;
                    dropped += 1;
                }
            }
            if dropped > 0 {
                actors.hint = fresh_actor();
                txn.put_meta_u64(META_HINT_ACTOR, actors.hint)?;
            }
            Ok(WriteOutcome::Dropped(dropped))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: None,
            lww,
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let next = collapse(stored.sync(object), *lww);
            if next != stored {
                txn.put_object(data_key, &next)?;
            }
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: Some(home),
            lww,
        } => {
            let stored = txn.get_hint(*home, data_key)?.unwrap_or_default();
            let next = collapse(stored.sync(object), *lww);
            if next != stored {
                txn.put_hint(*home, data_key, &next)?;
            }
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Membership(doc) => match txn.get_membership()? {
            Some(current) if current.epoch >= doc.epoch => Ok(WriteOutcome::Membership(current)),
            _ => {
                txn.put_membership(doc)?;
                Ok(WriteOutcome::Membership(doc.clone()))
            }
        },
    }
}
