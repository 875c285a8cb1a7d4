//! DVVSet targets: `sync` and `update` on sets that share one history (the
//! sets replicas really hold), and on ill-formed sets decoded from bytes.
//!
//! Well-formed sets come from a small simulated cluster: replicas that
//! write at their own actor with the context of some replica's read, and
//! sync with each other. Every dot is then made once and carries one value
//! wherever it is copied, which is what the laws assume. Each law is
//! checked against an oracle over dots: a value is its dot `(actor, n)`;
//! a set holds some dots and knows every dot up to its counter per actor.
//!
//! Ill-formed sets (unsorted actors, an actor twice, more values than the
//! counter, zero counters, too many entries) must be refused by
//! `validate`, exactly as a node refuses them; whatever passes must go
//! through every operation without a panic and stay well formed.

use crate::gen;
use crate::rng::{mutate, Rng};
use crate::{allocated_by, assert_alloc_bounded};
use quire_shared::dvvset::Entry;
use quire_shared::limits::VERSION_VECTOR_ENTRIES_MAX;
use quire_shared::{last_write_wins, replica, ActorId, Object, Value, VersionVector};
use std::collections::BTreeMap;

/// A set's live values keyed by their dots.
fn dots(o: &Object) -> BTreeMap<(ActorId, u64), Value> {
    let mut out = BTreeMap::new();
    for e in o.entries() {
        for (i, v) in e.values.iter().enumerate() {
            out.insert((e.actor, e.counter - i as u64), v.clone());
        }
    }
    out
}

/// The pointwise maximum of two clocks.
fn max_clock(a: &VersionVector, b: &VersionVector) -> VersionVector {
    VersionVector::from_pairs(a.pairs().iter().chain(b.pairs()).copied())
}

/// Objects a few replicas of one key held over a short history.
fn history(rng: &mut Rng) -> Vec<Object> {
    let replicas = rng.len(2, 4);
    let base = *rng.pick(&[0, 1, 1 << 32, u64::MAX - 4]);
    let actors: Vec<ActorId> = (0..replicas).map(|i| ActorId(base + i as u64)).collect();
    let mut held = vec![Object::new(); replicas];
    let mut seen = vec![Object::new()];
    for _ in 0..rng.len(1, 12) {
        let (i, j) = (rng.index(replicas), rng.index(replicas));
        if rng.below(3) < 2 {
            let context = match rng.below(3) {
                0 => VersionVector::new(),
                1 => held[j].join(),
                _ => rng.pick(&seen).join(),
            };
            held[i] = held[i].update(&context, actors[i], gen::value(rng));
        } else {
            held[i] = held[i].sync(&held[j]);
        }
        seen.push(held[i].clone());
    }
    seen
}

/// The laws of `sync` on three sets of one history.
fn sync_laws(a: &Object, b: &Object, c: &Object) {
    let ab = a.sync(b);
    assert_eq!(ab.validate(), Ok(()), "sync broke the invariants");
    assert_eq!(ab, b.sync(a), "sync is not commutative");
    assert_eq!(ab.sync(c), a.sync(&b.sync(c)), "sync is not associative");
    assert_eq!(a.sync(a), *a, "sync is not idempotent");
    assert_eq!(a.sync(&Object::new()), *a, "the empty set is not neutral");
    assert_eq!(ab.join(), max_clock(&a.join(), &b.join()));
    // A dot survives unless the other side knows it and has dropped it.
    let (da, db) = (dots(a), dots(b));
    let survives = |(actor, n): &(ActorId, u64), other: &Object, theirs: &BTreeMap<_, _>| {
        other.counter(*actor) < *n || theirs.contains_key(&(*actor, *n))
    };
    let mut expected = BTreeMap::new();
    for (dot, v) in &da {
        if survives(dot, b, &db) {
            expected.insert(*dot, v.clone());
        }
    }
    for (dot, v) in &db {
        if survives(dot, a, &da) {
            expected.insert(*dot, v.clone());
        }
    }
    assert_eq!(dots(&ab), expected, "sync kept the wrong values");
}

/// The laws of a coordinated write of `value` at `actor` over `stored`
/// with `context`.
fn update_laws(stored: &Object, context: &VersionVector, actor: ActorId, value: Value) {
    let next = stored.update(context, actor, value.clone());
    assert_eq!(next.validate(), Ok(()), "update broke the invariants");
    let dot = (actor, stored.counter(actor).max(context.get(actor)) + 1);
    let mut expected: BTreeMap<_, _> = dots(stored)
        .into_iter()
        .filter(|((a, n), _)| *n > context.get(*a))
        .collect();
    expected.insert(dot, value);
    assert_eq!(dots(&next), expected, "update kept the wrong values");
    let known = max_clock(
        &max_clock(&stored.join(), context),
        &VersionVector::from_pairs([dot]),
    );
    assert_eq!(next.join(), known, "update lost track of a dot");
    let lww = last_write_wins(&next);
    assert_eq!(lww.join(), next.join(), "last-write-wins forgot history");
    assert!(lww.value_count() <= 1);
}

/// The target on well-formed sets.
pub fn dvvset_case(rng: &mut Rng) {
    let seen = history(rng);
    let (a, b, c) = (rng.pick(&seen), rng.pick(&seen), rng.pick(&seen));
    for o in [a, b, c] {
        assert_eq!(o.validate(), Ok(()), "a replica holds an ill-formed set");
    }
    sync_laws(a, b, c);
    // A write whose actor has made every dot it knows of: a fresh actor, or
    // one the context claims no more of than the stored set knows (a node
    // refuses a context claiming dots of its actor it never issued).
    let context = if rng.bool() {
        b.join()
    } else {
        gen::clock(rng)
    };
    let actor = match a.entries().get(rng.index(a.entries().len() + 1)) {
        Some(e) if context.get(e.actor) <= e.counter && e.counter < u64::MAX => e.actor,
        _ => ActorId(1 << 48),
    };
    if context.get(actor) < u64::MAX {
        update_laws(a, &context, actor, gen::value(rng));
    }
    assert_eq!(replica::replicate(a, a, Default::default()), None);
}

/// An entry list as a peer could send it: any order, any counters.
fn raw_entries(rng: &mut Rng) -> Vec<Entry<Value>> {
    let len = if rng.one_in(200) {
        VERSION_VECTOR_ENTRIES_MAX + rng.len(0, 2)
    } else {
        rng.len(0, 5)
    };
    let mut actor = rng.below(4);
    (0..len)
        .map(|_| {
            actor = match rng.below(6) {
                0 => rng.number(),
                1 => actor,
                _ => actor.saturating_add(1 + rng.below(3)),
            };
            let counter = rng.number();
            let values = (0..rng.len(0, 3)).map(|_| gen::value(rng)).collect();
            Entry {
                actor: ActorId(actor),
                counter,
                values,
            }
        })
        .collect()
}

/// What `validate` must say of `entries`, worked out independently.
fn oracle_valid(entries: &[Entry<Value>]) -> bool {
    entries.len() <= VERSION_VECTOR_ENTRIES_MAX
        && entries.windows(2).all(|w| w[0].actor < w[1].actor)
        && entries.iter().all(|e| e.values.len() as u64 <= e.counter)
}

/// The target on sets and clocks decoded from untrusted bytes.
pub fn ill_formed_case(rng: &mut Rng) {
    let entries = raw_entries(rng);
    let mut bytes = postcard::to_allocvec(&entries).expect("entries encode");
    let mutated = rng.bool();
    if mutated {
        let donor = postcard::to_allocvec(&gen::object(rng)).expect("objects encode");
        mutate(rng, &mut bytes, &donor);
    }
    let (decoded, allocated) = allocated_by(|| postcard::from_bytes::<Object>(&bytes));
    assert_alloc_bounded("object", bytes.len(), allocated);
    if let Ok(object) = decoded {
        let verdict = object.validate();
        if !mutated {
            assert_eq!(verdict.is_ok(), oracle_valid(&entries), "{entries:?}");
        }
        assert_eq!(verdict.is_ok(), oracle_valid(object.entries()));
        if verdict.is_ok() {
            well_formed_ops(rng, &object);
        }
    }
    // A context from the wire: refused unless canonical.
    let len = rng.len(0, 24);
    let raw = rng.bytes(len);
    if let Ok(clock) = postcard::from_bytes::<VersionVector>(&raw) {
        let canonical = VersionVector::from_pairs(clock.pairs().iter().copied());
        assert_eq!(clock.validate().is_ok(), canonical == clock, "{clock:?}");
    }
}

/// Every operation on a set that passed validation but need not share a
/// history with the others: no panic, and the result is well formed.
fn well_formed_ops(rng: &mut Rng, object: &Object) {
    let other = gen::object(rng);
    for merged in [object.sync(&other), other.sync(object), object.sync(object)] {
        assert_eq!(merged.validate(), Ok(()), "sync of valid sets is invalid");
    }
    assert_eq!(&object.sync(object), object, "sync is not idempotent");
    let context = gen::clock(rng);
    let actor = gen::actor(rng);
    if object.counter(actor).max(context.get(actor)) < u64::MAX {
        let next = object.update(&context, actor, gen::value(rng));
        assert_eq!(next.validate(), Ok(()), "update of a valid set is invalid");
    }
    let _ = (
        last_write_wins(object),
        object.size_bytes(),
        object.less(&other),
    );
    let _ = replica::replicate(&other, object, Default::default());
    let _ = replica::stand_in_base([object.clone(), other]);
}
