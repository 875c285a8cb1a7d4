//! A get that asks `R` replicas first ([`Fanout::Quorum`]), driven by
//! hand: who is asked when, and that read repair still reaches every home
//! replica once the answers differ.

use super::get::{Fanout, GetMachine};
use super::tests::{down, home3, object};
use super::{Machine, Outbound};
use quire_shared::wire::{Reply, Request};
use quire_shared::{NodeId, Object};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(3);
const SPECULATE: Duration = Duration::from_millis(5);

fn drain(m: &mut GetMachine) -> Vec<(u64, Option<u64>, &'static str)> {
    std::iter::from_fn(|| m.poll_send())
        .map(|o: Outbound| match o.request {
            Request::Get { hint, .. } => (o.node.get(), hint.map(|h| h.get()), "get"),
            Request::Replicate { hint, .. } => (o.node.get(), hint.map(|h| h.get()), "repair"),
            other => panic!("a get sends no {other:?}"),
        })
        .collect()
}

fn found(o: &Object) -> Result<Reply, super::NodeFailure> {
    Ok(Reply::Object(Some(o.clone())))
}

/// Nodes 1, 2, 3 home, 4 spare; `R` = 2, the rest after [`SPECULATE`].
fn quorum_first(now: Instant) -> GetMachine {
    with_r(now, 2, &[NodeId(4)])
}

/// A get of home replicas 1, 2, 3 needing `r`, asking `r` first.
fn with_r(now: Instant, r: usize, spares: &[NodeId]) -> GetMachine {
    GetMachine::with_fanout(
        now,
        ("s", b"k"),
        (&home3(), spares),
        r,
        TIMEOUT,
        Fanout::Quorum {
            speculate_after: SPECULATE,
        },
    )
    .expect("valid R")
}

#[test]
fn agreeing_answers_from_the_first_r_end_the_get() {
    let now = Instant::now();
    let mut m = quorum_first(now);
    assert_eq!(drain(&mut m), [(1, None, "get"), (2, None, "get")]);
    assert_eq!(m.poll_timeout(), now + SPECULATE, "the speculation is due");
    let v = object(1, b"a");
    m.handle_reply(now, NodeId(1), found(&v));
    m.handle_reply(now, NodeId(2), found(&v));
    let out = m.poll_outcome().expect("decided").expect("success");
    assert_eq!(out.object, v);
    assert!(drain(&mut m).is_empty(), "node 3 is never asked");
    assert!(m.poll_finished());
    assert!(!m.speculated());
    assert_eq!(m.repairs(), 0);
}

#[test]
fn a_failed_first_replica_gives_its_place_to_the_held_home_replica() {
    let now = Instant::now();
    let mut m = quorum_first(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), down("gone"));
    assert_eq!(
        drain(&mut m),
        [(3, None, "get")],
        "the held home replica, not the spare"
    );
    // Node 3 failing too brings in the spare, standing in for it.
    m.handle_reply(now, NodeId(3), down("gone"));
    assert_eq!(drain(&mut m), [(4, Some(3), "get")]);
    let v = object(1, b"a");
    m.handle_reply(now, NodeId(2), found(&v));
    m.handle_reply(now, NodeId(4), Ok(Reply::Object(None)));
    assert!(m.poll_outcome().expect("decided").is_ok());
    assert!(m.poll_finished(), "stand-ins are not repaired");
}

#[test]
fn slow_answers_bring_in_the_held_replica_at_the_speculation_delay() {
    let now = Instant::now();
    let mut m = quorum_first(now);
    drain(&mut m);
    let v = object(1, b"a");
    m.handle_reply(now, NodeId(1), found(&v));
    // Before the delay nothing more is asked.
    m.handle_timeout(now + SPECULATE / 2);
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(now + SPECULATE);
    assert_eq!(drain(&mut m), [(3, None, "get")]);
    assert!(m.speculated());
    assert_eq!(m.poll_timeout(), now + TIMEOUT, "only the deadline is left");
    // Whichever answers second decides; node 2's late answer still counts
    // for the repair.
    m.handle_reply(now + SPECULATE, NodeId(3), found(&v));
    assert!(m.poll_outcome().expect("decided").is_ok());
    m.handle_reply(now + SPECULATE, NodeId(2), Ok(Reply::Object(None)));
    assert_eq!(drain(&mut m), [(2, None, "repair")]);
    assert!(m.poll_finished());
}

#[test]
fn differing_answers_read_and_repair_every_home_replica() {
    let now = Instant::now();
    let mut m = quorum_first(now);
    drain(&mut m);
    let v = object(1, b"a");
    m.handle_reply(now, NodeId(1), found(&v));
    m.handle_reply(now, NodeId(2), Ok(Reply::Object(None)));
    let out = m.poll_outcome().expect("decided at R").expect("success");
    assert_eq!(out.object, v, "the caller does not wait for node 3");
    assert_eq!(drain(&mut m), [(3, None, "get")], "node 3 is read too");
    assert!(!m.poll_finished());
    m.handle_reply(now, NodeId(3), Ok(Reply::Object(None)));
    assert_eq!(drain(&mut m), [(2, None, "repair"), (3, None, "repair")]);
    assert_eq!(m.repairs(), 2);
    assert!(!m.speculated(), "a difference is not a speculation");
}

#[test]
fn concurrent_siblings_count_as_a_difference() {
    let now = Instant::now();
    let mut m = quorum_first(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), found(&object(1, b"a")));
    m.handle_reply(now, NodeId(2), found(&object(2, b"b")));
    assert_eq!(
        m.poll_outcome()
            .expect("decided")
            .unwrap()
            .object
            .value_count(),
        2
    );
    assert_eq!(drain(&mut m), [(3, None, "get")]);
}

#[test]
fn r_equal_to_n_holds_nothing_back() {
    let now = Instant::now();
    let mut m = with_r(now, 3, &[]);
    assert_eq!(drain(&mut m).len(), 3);
    assert_eq!(m.poll_timeout(), now + TIMEOUT, "nothing to speculate on");
}

#[test]
fn a_deadline_before_r_answers_fails_the_get_without_asking_twice() {
    let now = Instant::now();
    let mut m = quorum_first(now);
    drain(&mut m);
    m.handle_timeout(now + SPECULATE);
    assert_eq!(drain(&mut m), [(3, None, "get")]);
    m.handle_timeout(now + TIMEOUT);
    assert!(m.poll_outcome().expect("decided").is_err());
    assert!(drain(&mut m).is_empty(), "no node is asked twice");
    assert!(m.poll_finished());
}
