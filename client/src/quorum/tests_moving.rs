//! The put machine while a change moves its key: the joint quorum of the
//! current and the future home replicas, driven by hand.
//!
//! Every test has home replicas 1, 2, 3 now and 2, 3, 4 after the change
//! (1 outgoing, 4 incoming), spares 5 and 6, and `W = 2`.

use super::put::{Moving, PutMachine, PutRequest};
use super::tests::{down, drain, home3, object, ATTEMPT, TIMEOUT};
use super::{Machine, Outbound};
use quire_shared::dvvset::VersionVector;
use quire_shared::wire::{Reply, Request};
use quire_shared::{NodeId, Object, Value};
use std::time::Instant;

fn moving(incoming_down: bool) -> Moving {
    let four = vec![NodeId(4)];
    Moving {
        outgoing: vec![NodeId(1)],
        incoming: if incoming_down { vec![] } else { four.clone() },
        incoming_down: if incoming_down { four } else { vec![] },
    }
}

/// A put during the change whose coordinator (node 1, outgoing) stored
/// `stored`; returns the machine and the replications it sent.
fn coordinated(now: Instant, incoming_down: bool, stored: &Object) -> (PutMachine, Vec<Outbound>) {
    let request = PutRequest {
        store: "s".into(),
        key: b"k".to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context: VersionVector::new(),
    };
    let spares = [NodeId(5), NodeId(6)];
    let mut m = PutMachine::new(now, request, &home3(), &spares, 2, TIMEOUT, ATTEMPT)
        .expect("valid W")
        .during_change(Some(moving(incoming_down)));
    drain(&mut m);
    m.handle_reply(now, NodeId(1), Ok(Reply::Stored(stored.clone())));
    let sent = drain(&mut m);
    (m, sent)
}

/// Who got a `Replicate`, with its hint.
fn replicated(sent: &[Outbound]) -> Vec<(u64, Option<u64>)> {
    sent.iter()
        .map(|o| match &o.request {
            Request::Replicate { hint, .. } => (o.node.get(), hint.map(|h| h.get())),
            other => panic!("expected a replicate, got {other:?}"),
        })
        .collect()
}

fn stored_on(m: &mut PutMachine) -> Vec<u64> {
    let out = m.poll_outcome().expect("decided").expect("success");
    out.stored_on.iter().map(|n| n.get()).collect()
}

#[test]
fn the_incoming_replica_gets_a_plain_copy() {
    let now = Instant::now();
    let (_, sent) = coordinated(now, false, &object(1, b"v"));
    assert_eq!(replicated(&sent), [(2, None), (3, None), (4, None)]);
}

#[test]
fn w_among_the_current_owners_alone_does_not_acknowledge() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, _) = coordinated(now, false, &stored);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored.clone())));
    assert!(
        m.poll_outcome().is_none(),
        "1 and 2 are W now, but only 2 of them stays a home replica"
    );
    m.handle_reply(now, NodeId(4), Ok(Reply::Stored(stored.clone())));
    assert_eq!(stored_on(&mut m), [1, 2, 4]);
    m.handle_reply(now, NodeId(3), Ok(Reply::Stored(stored)));
    assert!(m.poll_finished());
}

#[test]
fn a_staying_replica_completes_both_quorums() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, _) = coordinated(now, false, &stored);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored.clone())));
    m.handle_reply(now, NodeId(3), Ok(Reply::Stored(stored)));
    assert_eq!(stored_on(&mut m), [1, 2, 3]);
    assert!(!m.poll_finished(), "still placing the incoming copy");
    m.handle_reply(now, NodeId(4), down("gone"));
    assert!(m.poll_finished());
    assert!(
        drain(&mut m).is_empty(),
        "an incoming replica has no stand-in"
    );
}

#[test]
fn a_stand_in_for_a_staying_replica_counts_after_the_change() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, _) = coordinated(now, false, &stored);
    m.handle_reply(now, NodeId(3), down("gone"));
    assert_eq!(replicated(&drain(&mut m)), [(5, Some(3))]);
    m.handle_reply(now, NodeId(4), down("not told of the change yet"));
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored.clone())));
    assert!(
        m.poll_outcome().is_none(),
        "5's hint for 3 may still make W after"
    );
    m.handle_reply(now, NodeId(5), Ok(Reply::Stored(stored)));
    assert_eq!(stored_on(&mut m), [1, 2, 5]);
}

#[test]
fn a_future_quorum_out_of_reach_does_not_fail_the_put() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, _) = coordinated(now, false, &stored);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored.clone())));
    m.handle_reply(now, NodeId(4), down("refused"));
    m.handle_reply(now, NodeId(3), down("gone"));
    assert_eq!(replicated(&drain(&mut m)), [(5, Some(3))]);
    assert!(m.poll_outcome().is_none(), "the stand-in for 3 may answer");
    m.handle_reply(now, NodeId(5), down("gone too"));
    assert_eq!(replicated(&drain(&mut m)), [(6, Some(3))]);
    m.handle_reply(now, NodeId(6), down("and this one"));
    assert_eq!(
        stored_on(&mut m),
        [1, 2],
        "W of the current owners, as before changes counted"
    );
}

#[test]
fn an_incoming_replica_believed_down_is_sent_a_copy_but_not_awaited() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, sent) = coordinated(now, true, &stored);
    assert_eq!(replicated(&sent), [(2, None), (3, None), (4, None)]);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored.clone())));
    assert!(
        m.poll_outcome().is_none(),
        "3 stays a home replica: awaited"
    );
    m.handle_reply(now, NodeId(3), Ok(Reply::Stored(stored)));
    assert_eq!(stored_on(&mut m), [1, 2, 3]);
}

#[test]
fn at_the_deadline_the_current_quorum_is_enough() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, _) = coordinated(now, false, &stored);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored)));
    assert!(m.poll_outcome().is_none());
    m.handle_timeout(now + TIMEOUT);
    assert_eq!(stored_on(&mut m), [1, 2]);
    assert!(m.poll_finished());
}

#[test]
fn without_w_now_the_put_fails_whatever_the_future_holds() {
    let now = Instant::now();
    let stored = object(1, b"v");
    let (mut m, _) = coordinated(now, false, &stored);
    m.handle_reply(now, NodeId(4), Ok(Reply::Stored(stored)));
    for node in [2, 3, 5, 6] {
        m.handle_reply(now, NodeId(node), down("gone"));
        drain(&mut m);
    }
    assert!(
        matches!(m.poll_outcome(), Some(Err(_))),
        "the incoming copy is no current home replica"
    );
}
