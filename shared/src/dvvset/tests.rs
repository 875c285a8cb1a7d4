//! Laws of the DVVSet, checked on sets built by random but realistic
//! histories: replicas that take coordinated writes with stale contexts and
//! sync with each other in any order.

use super::*;
use proptest::prelude::*;

type Set = Dvvset<u32>;

/// One step of a history over three replicas (each its own actor).
#[derive(Clone, Debug)]
enum Step {
    /// A client reads replica `from` and remembers the context in slot `slot`.
    Read { from: usize, slot: usize },
    /// A client writes a fresh value at replica `at` with context slot `slot`.
    Write { at: usize, slot: usize },
    /// Replica `to` syncs replica `from`'s set into its own.
    Replicate { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 0..3usize).prop_map(|(from, slot)| Step::Read { from, slot }),
        (0..3usize, 0..3usize).prop_map(|(at, slot)| Step::Write { at, slot }),
        (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Replicate { from, to }),
    ]
}

/// Runs a history and returns the three replicas' sets.
fn run(steps: &[Step]) -> [Set; 3] {
    let mut replicas: [Set; 3] = Default::default();
    let mut contexts: [VersionVector; 3] = Default::default();
    let mut next_value = 0u32;
    for s in steps {
        match *s {
            Step::Read { from, slot } => contexts[slot] = replicas[from].join(),
            Step::Write { at, slot } => {
                next_value += 1;
                replicas[at] =
                    replicas[at].update(&contexts[slot], ActorId(at as u64 + 1), next_value);
            }
            Step::Replicate { from, to } => replicas[to] = replicas[to].sync(&replicas[from]),
        }
    }
    replicas
}

/// The dots of the live values of a set, with their values.
fn dots(set: &Set) -> Vec<((ActorId, u64), u32)> {
    set.entries()
        .iter()
        .flat_map(|e| {
            e.values
                .iter()
                .enumerate()
                .map(move |(i, v)| ((e.actor, e.counter - i as u64), *v))
        })
        .collect()
}

proptest! {
    #[test]
    fn sync_is_commutative(steps in prop::collection::vec(step(), 0..60)) {
        let [a, b, _] = run(&steps);
        prop_assert_eq!(a.sync(&b), b.sync(&a));
    }

    #[test]
    fn sync_is_associative(steps in prop::collection::vec(step(), 0..60)) {
        let [a, b, c] = run(&steps);
        prop_assert_eq!(a.sync(&b).sync(&c), a.sync(&b.sync(&c)));
    }

    #[test]
    fn sync_is_idempotent(steps in prop::collection::vec(step(), 0..60)) {
        let [a, b, _] = run(&steps);
        prop_assert_eq!(a.sync(&a), a.clone());
        let ab = a.sync(&b);
        prop_assert_eq!(ab.sync(&b), ab.clone());
    }

    #[test]
    fn update_keeps_every_value_its_context_has_not_seen(
        steps in prop::collection::vec(step(), 0..60),
        at in 0..3usize,
        from in 0..3usize,
    ) {
        let replicas = run(&steps);
        let context = replicas[from].join();
        let stored = &replicas[at];
        let updated = stored.update(&context, ActorId(at as u64 + 1), u32::MAX);
        let after = dots(&updated);
        for (dot, value) in dots(stored) {
            if dot.1 > context.get(dot.0) {
                prop_assert!(after.contains(&(dot, value)), "lost unseen {:?}", (dot, value));
            }
        }
        prop_assert!(updated.values().any(|v| *v == u32::MAX));
    }

    #[test]
    fn entries_are_bounded_by_coordinating_actors(steps in prop::collection::vec(step(), 0..80)) {
        for set in run(&steps) {
            prop_assert!(set.entries().len() <= 3);
            prop_assert!(set.is_well_formed());
            prop_assert_eq!(set.join().validate(), Ok(()), "a read's context is well formed");
        }
    }

    /// The validator accepts exactly the vectors the algorithms assume:
    /// actors strictly ascending (sorted, each once), counters above zero.
    #[test]
    fn the_context_validator_accepts_exactly_sorted_unique_positive_vectors(
        raw in prop::collection::vec((0u64..6, 0u64..4), 0..8)
    ) {
        let vv = VersionVector {
            entries: raw.iter().map(|&(a, c)| (ActorId(a), c)).collect(),
        };
        let spec = raw.windows(2).all(|w| w[0].0 < w[1].0) && raw.iter().all(|p| p.1 > 0);
        prop_assert_eq!(vv.validate().is_ok(), spec, "{:?}", raw);
        let canonical = VersionVector::from_pairs(vv.pairs().iter().copied());
        prop_assert_eq!(canonical.validate(), Ok(()));
    }

    /// The same for sets, which also must not hold more values than dots.
    #[test]
    fn the_object_validator_accepts_exactly_well_formed_sets(
        raw in prop::collection::vec((0u64..6, 0u64..4, 0u32..4), 0..6)
    ) {
        let set = Set {
            entries: raw
                .iter()
                .map(|&(a, counter, n)| Entry { actor: ActorId(a), counter, values: (0..n).collect() })
                .collect(),
        };
        let spec = raw.windows(2).all(|w| w[0].0 < w[1].0)
            && raw.iter().all(|&(_, c, n)| u64::from(n) <= c);
        prop_assert_eq!(set.validate().is_ok(), spec, "{:?}", raw);
        prop_assert_eq!(Set::from_entries(set.entries().to_vec()).is_some(), spec);
    }

    #[test]
    fn synced_set_dominates_both_sides(steps in prop::collection::vec(step(), 0..60)) {
        let [a, b, _] = run(&steps);
        let ab = a.sync(&b);
        prop_assert!(a.join().covered_by(&ab.join()));
        prop_assert!(b.join().covered_by(&ab.join()));
    }
}

// Hand-written vectors, worked out from the DVVSet paper's definitions.

#[test]
fn two_writes_with_the_same_stale_context_become_siblings() {
    let stored = Set::new().update(&VersionVector::new(), ActorId(1), 10);
    let ctx = stored.join();
    let s1 = stored.update(&ctx, ActorId(1), 11);
    let s2 = s1.update(&ctx, ActorId(1), 12);
    let mut values: Vec<u32> = s2.values().copied().collect();
    values.sort();
    assert_eq!(
        values,
        vec![11, 12],
        "10 was seen by both writers, 11 and 12 are concurrent"
    );
    assert_eq!(s2.join().pairs(), &[(ActorId(1), 3)]);
}

#[test]
fn write_with_the_latest_context_collapses_siblings() {
    let a = Set::new().update(&VersionVector::new(), ActorId(1), 1);
    let b = Set::new().update(&VersionVector::new(), ActorId(2), 2);
    let both = a.sync(&b);
    assert_eq!(both.value_count(), 2);
    let next = both.update(&both.join(), ActorId(1), 3);
    assert_eq!(next.values().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(next.join().pairs(), &[(ActorId(1), 2), (ActorId(2), 1)]);
}

#[test]
fn sync_keeps_the_newer_replica_and_drops_superseded_values() {
    // Replica x: {a:1 [v1]}; replica y saw v1 and overwrote it: {a:2 [v2]}.
    let x = Set::new().update(&VersionVector::new(), ActorId(1), 1);
    let y = x.update(&x.join(), ActorId(1), 2);
    assert_eq!(x.sync(&y), y);
    assert!(x.less(&y));
    assert!(!y.less(&x));
}

#[test]
fn merge_truncates_values_the_other_side_discarded() {
    // hi = {a:3 [v3, v2]} (v2 concurrent with v3), lo = {a:2 []} where lo
    // had seen v2 superseded... a lower entry with a higher floor.
    let hi = Set::from_entries(vec![Entry {
        actor: ActorId(1),
        counter: 3,
        values: vec![3, 2],
    }])
    .unwrap();
    let lo = Set::from_entries(vec![Entry {
        actor: ActorId(1),
        counter: 2,
        values: vec![],
    }])
    .unwrap();
    let merged = hi.sync(&lo);
    assert_eq!(merged.entries()[0].values, vec![3]);
    assert_eq!(merged, lo.sync(&hi));
}

#[test]
fn from_entries_rejects_unsorted_or_overfull_sets() {
    let e = |actor, counter, values| Entry {
        actor,
        counter,
        values,
    };
    assert!(
        Set::from_entries(vec![e(ActorId(2), 1, vec![1]), e(ActorId(1), 1, vec![2])]).is_none()
    );
    assert!(Set::from_entries(vec![e(ActorId(1), 1, vec![1, 2])]).is_none());
    assert!(Set::from_entries(vec![e(ActorId(1), 2, vec![1]), e(ActorId(2), 1, vec![])]).is_some());
}

#[test]
fn vectors_longer_than_the_limit_are_refused() {
    let max = crate::limits::VERSION_VECTOR_ENTRIES_MAX as u64;
    let at_limit = VersionVector::from_pairs((1..=max).map(|a| (ActorId(a), 1)));
    assert_eq!(at_limit.validate(), Ok(()));
    let over = VersionVector::from_pairs((1..=max + 1).map(|a| (ActorId(a), 1)));
    assert_eq!(
        over.validate(),
        Err(Malformed::TooManyEntries(max as usize + 1))
    );
    assert!(!Set::from_context(&over).is_well_formed());
}

#[test]
fn an_event_at_the_counter_ceiling_saturates_instead_of_panicking() {
    let mut set = Set::from_context(&VersionVector::from_pairs([(ActorId(1), u64::MAX)]));
    set.event(ActorId(1), 7);
    assert_eq!(set.counter(ActorId(1)), u64::MAX);
    assert!(set.is_well_formed());
}

#[test]
fn version_vector_from_pairs_is_canonical() {
    let v = VersionVector::from_pairs([
        (ActorId(3), 1),
        (ActorId(1), 2),
        (ActorId(3), 5),
        (ActorId(2), 0),
    ]);
    assert_eq!(v.pairs(), &[(ActorId(1), 2), (ActorId(3), 5)]);
}

proptest! {
    #[test]
    fn lww_keeps_at_most_one_value_and_the_whole_clock(
        steps in prop::collection::vec(step(), 0..60)
    ) {
        for r in run(&steps) {
            let collapsed = r.lww(|a, b| a > b);
            prop_assert!(collapsed.value_count() <= 1);
            prop_assert_eq!(collapsed.value_count() == 1, r.value_count() > 0);
            prop_assert_eq!(collapsed.join(), r.join());
            prop_assert_eq!(collapsed.lww(|a, b| a > b), collapsed.clone());
            // The survivor is the newest value (values grow with time here).
            prop_assert_eq!(collapsed.values().max(), r.values().max());
        }
    }

    #[test]
    fn collapsing_early_does_not_change_the_winner(
        steps in prop::collection::vec(step(), 0..60)
    ) {
        let [a, b, _] = run(&steps);
        let newer = |x: &u32, y: &u32| x > y;
        let late = a.sync(&b).lww(newer);
        let early = a.lww(newer).sync(&b.lww(newer)).lww(newer);
        prop_assert_eq!(early.join(), late.join());
        // Collapsing first may drop a value the other replica had
        // superseded anyway, so the early winner is never newer than the
        // late one, and both are values of the synced set's history.
        prop_assert!(early.values().max() <= late.values().max());
    }
}
