//! Tombstone reaping: which deleted keys may be removed for good, and the
//! rule a replica applies when asked to remove one.
//!
//! A delete is a put of a tombstone, so a deleted key costs disk until it
//! is reaped. Reaping forgets the key's history (its DVVSet), which is
//! safe only where no copy of that history can turn up again and be
//! mistaken for news. Two phases keep it so:
//!
//! 1. [`decide`]: an anti-entropy exchange has the copy of the key from
//!    *every* home replica, and all of them are the identical DVVSet of
//!    tombstones only, the newest older than the store's grace period. A
//!    home replica that did not answer, or answered with anything else,
//!    keeps the key: nothing is reaped on a guess.
//! 2. [`still_equal`]: each home replica removes the key only if it still
//!    holds exactly that DVVSet. A write that lands between the phases
//!    changes the object, so that replica keeps it; the replicas that did
//!    remove the key get it back from the next exchange (a sync into
//!    nothing), and the write survives.
//!
//! What the grace period is for: a copy older than the delete that reaches
//! a replica after the reaping (a hint still on its way home, a replica
//! back from a long absence outside the home set) would bring the deleted
//! value back, as it would in any Dynamo-style store (Cassandra's
//! `gc_grace_seconds`). The grace gives such copies the time to meet the
//! tombstone first. Time is passed in: nothing here reads a clock.

use crate::object::Object;

/// True when `object` holds at least one value and every value is a
/// tombstone: the key reads as "not found" on this replica.
pub fn only_tombstones(object: &Object) -> bool {
    let mut values = object.values().peekable();
    values.peek().is_some() && values.all(|v| v.is_tombstone())
}

/// Why phase one keeps a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Fewer home replicas answered than the store has: one that was not
    /// heard from may hold a newer write.
    HomeNotHeard,
    /// A home replica that answered holds no tombstone-only copy of the
    /// key (a newer write, or nothing yet).
    NotEverywhere,
    /// The home replicas' copies differ: anti-entropy has to converge
    /// them first.
    CopiesDiffer,
    /// A value of the copy is not a tombstone.
    NotOnlyTombstones,
    /// The newest tombstone is younger than the grace period.
    WithinGrace,
}

/// Phase one for one key: the object to ask each home replica to remove,
/// or why the key stays.
///
/// `copies` holds one entry per home replica that answered: its
/// tombstone-only copy of the key, or `None`. `homes` is the number of
/// home replicas the store has (its N); `now_ms` and the tombstones'
/// `timestamp_ms` are wall-clock milliseconds.
pub fn decide<'a>(
    copies: &[Option<&'a Object>],
    homes: usize,
    grace_ms: u64,
    now_ms: u64,
) -> Result<&'a Object, Keep> {
    if homes == 0 || copies.len() < homes {
        return Err(Keep::HomeNotHeard);
    }
    let mut held = copies.iter().copied();
    let Some(Some(first)) = held.next() else {
        return Err(Keep::NotEverywhere);
    };
    for copy in held {
        match copy {
            None => return Err(Keep::NotEverywhere),
            Some(c) if c != first => return Err(Keep::CopiesDiffer),
            Some(_) => {}
        }
    }
    if !only_tombstones(first) {
        return Err(Keep::NotOnlyTombstones);
    }
    let newest_ms = first.values().map(|v| v.timestamp_ms).max().unwrap_or(0);
    if newest_ms.saturating_add(grace_ms) > now_ms {
        return Err(Keep::WithinGrace);
    }
    Ok(first)
}

/// Phase two on one replica: it removes the key only if what it holds is
/// still exactly the object phase one saw everywhere.
pub fn still_equal(held: Option<&Object>, seen: &Object) -> bool {
    held == Some(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvvset::VersionVector;
    use crate::membership::ConflictPolicy;
    use crate::object::Value;
    use crate::replica;
    use crate::ActorId;

    const GRACE_MS: u64 = 1000;

    /// A key written at `a` (t = 10) then deleted at `a` (t = 20).
    fn deleted() -> Object {
        let a = ActorId(1);
        let put = replica::coordinate_put(
            &Object::new(),
            &VersionVector::default(),
            a,
            Value::bytes(b"v".to_vec(), 10),
            ConflictPolicy::Siblings,
        );
        replica::coordinate_put(
            &put,
            &put.join(),
            a,
            Value::tombstone(20),
            ConflictPolicy::Siblings,
        )
    }

    #[test]
    fn a_tombstone_held_identically_by_every_home_past_its_grace_is_reaped() {
        let t = deleted();
        let copies = [Some(&t), Some(&t), Some(&t)];
        assert_eq!(decide(&copies, 3, GRACE_MS, 20 + GRACE_MS), Ok(&t));
        assert_eq!(
            decide(&copies, 3, GRACE_MS, 19 + GRACE_MS),
            Err(Keep::WithinGrace)
        );
        // A grace that would overflow never passes.
        assert_eq!(
            decide(&copies, 3, u64::MAX, u64::MAX - 1),
            Err(Keep::WithinGrace)
        );
    }

    #[test]
    fn nothing_is_reaped_on_a_guess() {
        let t = deleted();
        let now = 1_000_000;
        // A home replica not heard from blocks the key.
        assert_eq!(
            decide(&[Some(&t), Some(&t)], 3, GRACE_MS, now),
            Err(Keep::HomeNotHeard)
        );
        assert_eq!(decide(&[], 0, GRACE_MS, now), Err(Keep::HomeNotHeard));
        // One that answered without the tombstone blocks it too.
        assert_eq!(
            decide(&[Some(&t), None, Some(&t)], 3, GRACE_MS, now),
            Err(Keep::NotEverywhere)
        );
        assert_eq!(
            decide(&[None, Some(&t), Some(&t)], 3, GRACE_MS, now),
            Err(Keep::NotEverywhere)
        );
        // Copies not yet converged (another delete at another actor).
        let other = replica::coordinate_put(
            &t,
            &VersionVector::default(),
            ActorId(2),
            Value::tombstone(30),
            ConflictPolicy::Siblings,
        );
        assert_eq!(
            decide(&[Some(&t), Some(&other), Some(&t)], 3, GRACE_MS, now),
            Err(Keep::CopiesDiffer)
        );
        // A live sibling beside the tombstone: the key is not deleted.
        let live = replica::coordinate_put(
            &t,
            &VersionVector::default(),
            ActorId(2),
            Value::bytes(b"w".to_vec(), 30),
            ConflictPolicy::Siblings,
        );
        let copies = [Some(&live), Some(&live), Some(&live)];
        assert_eq!(
            decide(&copies, 3, GRACE_MS, now),
            Err(Keep::NotOnlyTombstones)
        );
    }

    /// The race the two phases exist for: phase one sees the tombstone
    /// everywhere, then a put lands on one replica before phase two. That
    /// replica keeps its object; the others remove the key; the next
    /// exchange syncs the survivor back to them, and the put is read.
    #[test]
    fn a_write_between_the_phases_survives_the_reaping() {
        let t = deleted();
        let now = 1_000_000;
        let seen = decide(&[Some(&t), Some(&t), Some(&t)], 3, GRACE_MS, now)
            .expect("reapable")
            .clone();
        // A blind put coordinated by replica 0 after phase one.
        let written = replica::coordinate_put(
            &t,
            &VersionVector::default(),
            ActorId(9),
            Value::bytes(b"new".to_vec(), now),
            ConflictPolicy::Siblings,
        );
        let mut held = [Some(written.clone()), Some(t.clone()), Some(t.clone())];
        for copy in held.iter_mut() {
            if still_equal(copy.as_ref(), &seen) {
                *copy = None;
            }
        }
        assert_eq!(
            held[0].as_ref(),
            Some(&written),
            "the written replica kept it"
        );
        assert!(held[1].is_none() && held[2].is_none());
        // Anti-entropy: the merge of what is left goes to every replica.
        let merged = held
            .iter()
            .flatten()
            .fold(Object::new(), |acc, o| acc.sync(o));
        let values: Vec<_> = merged.values().filter(|v| !v.is_tombstone()).collect();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].data.as_deref(), Some(&b"new"[..]));
        assert!(!only_tombstones(&merged), "not reapable any more");
        // A replica that already removed the key is not asked twice.
        assert!(!still_equal(None, &seen));
    }
}
