//! Independent test vectors for the DVVSet, written from the documented
//! cases of the reference implementation (`dvvset.erl` of
//! github.com/ricardobcl/Dotted-Version-Vectors, its eunit tests `join`,
//! `update`, `sync`, `syn_update`, `event`, `lww`, `less`, `equal`,
//! `values`, `size`, `ids`) and the paper (Almeida, Gonçalves, Preguiça et
//! al., "Dotted Version Vectors: Efficient Causality Tracking for
//! Distributed Key-Value Stores", DAIS 2014).
//!
//! Translation to Quire's model: the reference lets a client add an
//! *anonymous* value (no actor) that a later `sync` keeps; Quire has none —
//! every value gets its dot from a coordinating node through `update` — so
//! the anonymous parts of those cases are left out and said so. The
//! reference's `create(new(VV, V), I)` (an event on a bare context) is
//! `Dvvset::from_context(VV)` then `event(I, V)` here; `update(new(VV, V),
//! S, I)` is `S.update(VV, I, V)`. Actors are numbers: a = 1, b = 2, c = 3,
//! d = 4, x = 24, z = 26.

use super::*;

type Set = Dvvset<&'static str>;

const A: ActorId = ActorId(1);
const B: ActorId = ActorId(2);
const C: ActorId = ActorId(3);
const D: ActorId = ActorId(4);
const X: ActorId = ActorId(24);
const Z: ActorId = ActorId(26);

/// A set from `(actor, counter, values newest first)` triples.
fn set(entries: &[(ActorId, u64, &[&'static str])]) -> Set {
    Dvvset::from_entries(
        entries
            .iter()
            .map(|&(actor, counter, values)| Entry {
                actor,
                counter,
                values: values.to_vec(),
            })
            .collect(),
    )
    .expect("vector sets are well formed")
}

fn vv(pairs: &[(ActorId, u64)]) -> VersionVector {
    VersionVector::from_pairs(pairs.iter().copied())
}

/// `create(new(VV, V), I)`: an event on a bare context.
fn create(context: &VersionVector, actor: ActorId, value: &'static str) -> Set {
    let mut s = Dvvset::from_context(context);
    s.event(actor, value);
    s
}

// join_test
#[test]
fn join_is_the_clock_of_the_set() {
    let a1 = create(&VersionVector::new(), A, "v1");
    let b1 = a1.update(&a1.join(), B, "v2");
    assert_eq!(Set::new().join(), VersionVector::new());
    assert_eq!(a1.join(), vv(&[(A, 1)]));
    assert_eq!(b1.join(), vv(&[(A, 1), (B, 1)]));
}

// update_test
#[test]
fn update_discards_exactly_what_the_context_covers() {
    let a0 = Set::new().update(&VersionVector::new(), A, "v1");
    assert_eq!(a0, set(&[(A, 1, &["v1"])]));
    let a1 = a0.update(&a0.join(), A, "v2");
    assert_eq!(a1, set(&[(A, 2, &["v2"])]));
    let a2 = a1.update(&a1.join(), B, "v3");
    assert_eq!(a2, set(&[(A, 2, &[]), (B, 1, &["v3"])]));
    // Written with the older context of a0: v2 was not seen and stays.
    let a3 = a1.update(&a0.join(), B, "v4");
    assert_eq!(a3, set(&[(A, 2, &["v2"]), (B, 1, &["v4"])]));
    let a4 = a1.update(&a0.join(), A, "v5");
    assert_eq!(a4, set(&[(A, 3, &["v5", "v2"])]));
}

// syn_update_test: Mary writes blind twice, Peter writes after reading v1.
#[test]
fn a_write_replaces_only_the_value_its_writer_read() {
    let a0 = Set::new().update(&VersionVector::new(), A, "v1");
    let peter_read = a0.join();
    assert_eq!(peter_read, vv(&[(A, 1)]));
    let a1 = a0.update(&VersionVector::new(), A, "v2");
    assert_eq!(a1, set(&[(A, 2, &["v2", "v1"])]));
    let a2 = a1.update(&peter_read, A, "v3");
    assert_eq!(a2, set(&[(A, 3, &["v3", "v2"])]));
}

// sync_test
#[test]
fn sync_keeps_what_neither_side_knows_obsolete() {
    let x = set(&[(X, 1, &[])]);
    let a = create(&VersionVector::new(), A, "v1");
    let y = create(&VersionVector::new(), B, "v2");
    let a1 = create(&a.join(), A, "v2");
    let a3 = create(&a1.join(), B, "v3");
    let a4 = create(&a1.join(), C, "v3");
    let w = set(&[(A, 1, &[])]);
    let z = set(&[(A, 2, &["v2", "v1"])]);
    assert_eq!(w.sync(&z), set(&[(A, 2, &["v2"])]));
    assert_eq!(w.sync(&z), z.sync(&w));
    assert_eq!(a.sync(&a1), a1.sync(&a));
    assert_eq!(a4.sync(&a3), a3.sync(&a4));
    assert_eq!(
        a4.sync(&a3),
        set(&[(A, 2, &[]), (B, 1, &["v3"]), (C, 1, &["v3"])])
    );
    assert_eq!(x.sync(&a), set(&[(A, 1, &["v1"]), (X, 1, &[])]));
    assert_eq!(x.sync(&a), a.sync(&x));
    assert_eq!(a.sync(&y), set(&[(A, 1, &["v1"]), (B, 1, &["v2"])]));
    assert_eq!(y.sync(&a), a.sync(&y));
}

// event_test
#[test]
fn an_event_adds_a_dot_at_its_actor() {
    let a = create(&VersionVector::new(), A, "v1");
    let mut same = a.clone();
    same.event(A, "v2");
    assert_eq!(same, set(&[(A, 2, &["v2", "v1"])]));
    let mut other = a.clone();
    other.event(B, "v2");
    assert_eq!(other, set(&[(A, 1, &["v1"]), (B, 1, &["v2"])]));
}

// lww_test; the reference compares with F(L, R) = L > R as "L is older",
// so the smallest value wins. (Its case with an anonymous value is left
// out.)
#[test]
fn lww_keeps_one_value_and_the_whole_clock() {
    let older_is_greater = |l: &&str, r: &&str| l < r; // newer(l, r)
    let a = set(&[(A, 4, &["5", "2"]), (B, 1, &[]), (C, 1, &["3"])]);
    assert_eq!(
        a.lww(older_is_greater),
        set(&[(A, 4, &["2"]), (B, 1, &[]), (C, 1, &[])])
    );
    let c = set(&[(A, 4, &[]), (B, 1, &["2"]), (C, 1, &["3"])]);
    assert_eq!(
        c.lww(older_is_greater),
        set(&[(A, 4, &[]), (B, 1, &["2"]), (C, 1, &[])])
    );
    assert_eq!(a.lww(older_is_greater).join(), a.join());
}

// less_test
#[test]
fn less_is_strict_causal_precedence() {
    let a = create(&VersionVector::new(), A, "v1");
    let b = create(&a.join(), A, "v2");
    let b2 = create(&a.join(), B, "v2");
    let b3 = create(&a.join(), Z, "v2");
    let c = a.update(&b.join(), C, "v3");
    let d = b2.update(&c.join(), D, "v4");
    assert!(a.less(&b));
    assert!(a.less(&c));
    assert!(b.less(&c));
    assert!(b.less(&d));
    assert!(b2.less(&d));
    assert!(a.less(&d));
    assert!(!b2.less(&c));
    assert!(!b.less(&b2));
    assert!(!b2.less(&b));
    assert!(!a.less(&a));
    assert!(!c.less(&c));
    assert!(!d.less(&b2));
    assert!(!b3.less(&d));
}

// equal_test (without the anonymous values)
#[test]
fn equal_compares_clocks_not_values() {
    let a = set(&[(A, 4, &["v5", "v0"]), (B, 0, &[]), (C, 1, &["v3"])]);
    let b = set(&[(A, 4, &["v555", "v0"]), (B, 0, &[]), (C, 1, &["v3"])]);
    let c = set(&[(A, 4, &["v5", "v0"]), (B, 0, &[])]);
    assert!(a.equal_history(&b));
    assert!(b.equal_history(&a));
    assert!(!b.equal_history(&c));
}

// values_test, size_test, ids_test (without the anonymous value)
#[test]
fn values_size_and_actors() {
    let a = set(&[(A, 4, &["v5", "v0"]), (B, 0, &[]), (C, 1, &["v3"])]);
    assert_eq!(a.values().copied().collect::<Vec<_>>(), ["v5", "v0", "v3"]);
    assert_eq!(a.value_count(), 3);
    assert_eq!(
        a.entries().iter().map(|e| e.actor).collect::<Vec<_>>(),
        [A, B, C]
    );
    let empty_values = set(&[(A, 4, &[]), (B, 0, &[]), (C, 1, &[])]);
    assert_eq!(empty_values.value_count(), 0);
}

// The paper's running example (Fig. 1 style): two clients write through
// one server from the same read; a third write with the merged context
// replaces both.
#[test]
fn the_paper_example_of_concurrent_clients_at_one_server() {
    let s1 = Set::new().update(&VersionVector::new(), A, "v1");
    let read = s1.join();
    let s2 = s1.update(&read, A, "v2");
    let s3 = s2.update(&read, A, "v3");
    assert_eq!(s3, set(&[(A, 3, &["v3", "v2"])]), "v2 and v3 are siblings");
    let s4 = s3.update(&s3.join(), A, "v4");
    assert_eq!(s4, set(&[(A, 4, &["v4"])]));
    // Entries stay one per server, however many clients wrote.
    assert_eq!(s4.entries().len(), 1);
}
