//! The quorum machines driven by hand: replies, failures and timeouts in
//! chosen orders, no sockets. (The seeded simulation, `sim/`, drives
//! them through random ones.)

use super::get::GetMachine;
use super::put::{PutMachine, PutRequest};
use super::targets::Target;
use super::{Machine, MachineError, NodeFailure, Outbound};
use quire_shared::dvvset::VersionVector;
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, Request};
use quire_shared::{ActorId, Dvvset, NodeId, Object, Value};
use std::time::{Duration, Instant};

pub(super) const TIMEOUT: Duration = Duration::from_secs(3);
pub(super) const ATTEMPT: Duration = Duration::from_secs(1);

pub(super) fn drain<M: Machine>(m: &mut M) -> Vec<Outbound> {
    std::iter::from_fn(|| m.poll_send()).collect()
}

pub(super) fn object(actor: u64, data: &[u8]) -> Object {
    let mut o = Dvvset::new();
    o.event(ActorId(actor), Value::bytes(data.to_vec(), 1));
    o
}

pub(super) fn down(why: &str) -> Result<Reply, NodeFailure> {
    Err(NodeFailure::Unreachable(why.into()))
}

/// A refusal of the request itself, which every replica would give.
fn refused(code: ErrorCode, why: &str) -> Result<Reply, NodeFailure> {
    Err(NodeFailure::Refused(ErrorReply {
        code,
        message: why.into(),
    }))
}

pub(super) fn home3() -> Vec<Target> {
    [1, 2, 3]
        .iter()
        .map(|&node| Target {
            node: NodeId(node),
            hint: None,
        })
        .collect()
}

fn put_machine(now: Instant) -> PutMachine {
    put_machine_with(now, ATTEMPT)
}

fn put_machine_with(now: Instant, attempt: Duration) -> PutMachine {
    let request = PutRequest {
        store: "s".into(),
        key: b"k".to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context: VersionVector::new(),
    };
    PutMachine::new(
        now,
        request,
        &home3(),
        &[NodeId(4), NodeId(5)],
        2,
        TIMEOUT,
        attempt,
    )
    .expect("valid W")
}

fn get_machine(now: Instant) -> GetMachine {
    get_machine_with(now, 2)
}

fn get_machine_with(now: Instant, r: usize) -> GetMachine {
    GetMachine::new(
        now,
        "s",
        b"k",
        &home3(),
        &[NodeId(4), NodeId(5)],
        r,
        TIMEOUT,
    )
    .expect("valid R")
}

/// The nodes of `sent` with the hint each was asked with.
fn asked(sent: &[Outbound]) -> Vec<(u64, Option<u64>)> {
    sent.iter()
        .map(|o| match o.request {
            Request::Get { hint, .. } | Request::Replicate { hint, .. } => {
                (o.node.get(), hint.map(|h| h.get()))
            }
            ref other => panic!("a get sends no {other:?}"),
        })
        .collect()
}

#[test]
fn get_succeeds_at_r_and_syncs_the_answers() {
    let now = Instant::now();
    let mut m = get_machine(now);
    let sent = drain(&mut m);
    assert_eq!(
        sent.iter().map(|o| o.node.get()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(Some(object(1, b"a")))));
    assert!(m.poll_outcome().is_none(), "one answer is not R=2");
    m.handle_reply(now, NodeId(2), Ok(Reply::Object(Some(object(2, b"b")))));
    let out = m.poll_outcome().expect("decided").expect("success");
    assert_eq!(
        out.object.value_count(),
        2,
        "concurrent values are siblings"
    );
    assert_eq!(out.replies.len(), 2);
}

#[test]
fn get_fails_once_r_is_out_of_reach_with_the_spares() {
    let now = Instant::now();
    let mut m = get_machine(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), down("x"));
    m.handle_reply(now, NodeId(2), down("y"));
    assert!(m.poll_outcome().is_none(), "spares may still answer");
    assert_eq!(asked(&drain(&mut m)), [(4, Some(1)), (5, Some(2))]);
    m.handle_reply(now, NodeId(4), down("z"));
    assert!(m.poll_outcome().is_none(), "3 and 5 may still make R");
    m.handle_reply(now, NodeId(5), down("w"));
    match m.poll_outcome() {
        Some(Err(MachineError::Quorum(q))) => {
            assert_eq!((q.needed, q.succeeded, q.failures.len()), (2, 0, 4));
            assert!(!q.timed_out);
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
}

#[test]
fn a_failed_get_target_is_replaced_by_a_spare_reading_its_hints() {
    let now = Instant::now();
    let mut m = get_machine(now);
    drain(&mut m);
    // Two home replicas are gone; the put that met the same failures left
    // its copies as hints on the spares.
    m.handle_reply(now, NodeId(2), down("gone"));
    m.handle_reply(now, NodeId(3), down("gone"));
    assert_eq!(asked(&drain(&mut m)), [(4, Some(2)), (5, Some(3))]);
    let written = object(1, b"v");
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(Some(written.clone()))));
    m.handle_reply(now, NodeId(4), Ok(Reply::Object(Some(written.clone()))));
    let out = m
        .poll_outcome()
        .expect("decided")
        .expect("R from a stand-in");
    assert_eq!(out.object, written);
    // The other stand-in holds nothing; stand-ins are not repaired, and
    // the home replica was up to date.
    m.handle_reply(now, NodeId(5), Ok(Reply::Object(None)));
    assert!(drain(&mut m).is_empty());
    assert!(m.poll_finished());
    assert_eq!(m.repairs(), 0);
}

#[test]
fn read_repair_reaches_home_replicas_only() {
    let now = Instant::now();
    let targets = [
        Target {
            node: NodeId(1),
            hint: None,
        },
        Target {
            node: NodeId(4),
            hint: Some(NodeId(2)),
        },
        Target {
            node: NodeId(3),
            hint: None,
        },
    ];
    let mut m = GetMachine::new(now, "s", b"k", &targets, &[NodeId(5)], 2, TIMEOUT).unwrap();
    assert_eq!(asked(&drain(&mut m)), [(1, None), (4, Some(2)), (3, None)]);
    m.handle_reply(now, NodeId(3), down("gone"));
    assert_eq!(asked(&drain(&mut m)), [(5, Some(3))]);
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(None)));
    m.handle_reply(now, NodeId(4), Ok(Reply::Object(Some(object(4, b"a")))));
    assert!(m.poll_outcome().expect("decided").is_ok());
    m.handle_reply(now, NodeId(5), Ok(Reply::Object(None)));
    assert_eq!(
        asked(&drain(&mut m)),
        [(1, None)],
        "the home replica missing the key is repaired, not the stand-ins"
    );
    assert_eq!(m.repairs(), 1);
}

#[test]
fn read_repair_gets_its_own_time_budget() {
    let now = Instant::now();
    let mut m = get_machine(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(Some(object(1, b"a")))));
    m.handle_reply(now, NodeId(2), Ok(Reply::Object(None)));
    assert!(m.poll_outcome().expect("decided").is_ok());
    // Node 3 stays silent; at the get's deadline node 2 is repaired. The
    // repair starts then: what is left of the get's time is nothing.
    let late = now + TIMEOUT;
    m.handle_timeout(late);
    let repairs = drain(&mut m);
    assert_eq!(asked(&repairs), [(2, None)]);
    assert_eq!(repairs[0].deadline, late + TIMEOUT);

    // Same when the last answer comes just before the deadline.
    let mut m = get_machine(now);
    drain(&mut m);
    let last = now + TIMEOUT - Duration::from_millis(1);
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(Some(object(1, b"a")))));
    m.handle_reply(now, NodeId(2), Ok(Reply::Object(Some(object(1, b"a")))));
    m.handle_reply(last, NodeId(3), Ok(Reply::Object(None)));
    let repairs = drain(&mut m);
    assert_eq!(asked(&repairs), [(3, None)]);
    assert_eq!(repairs[0].deadline, last + TIMEOUT);
}

#[test]
fn after_its_outcome_a_get_calls_in_no_spare() {
    let now = Instant::now();
    let mut m = get_machine_with(now, 1);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(Some(object(1, b"a")))));
    assert!(m.poll_outcome().expect("decided").is_ok());
    m.handle_reply(now, NodeId(2), down("gone"));
    assert!(drain(&mut m).is_empty(), "the caller has its answer");
}

#[test]
fn a_get_gives_exactly_one_outcome() {
    let now = Instant::now();
    let mut m = get_machine(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(Some(object(1, b"a")))));
    m.handle_reply(now, NodeId(2), Ok(Reply::Object(None)));
    assert!(m.poll_outcome().expect("decided").is_ok());
    // A refusal every replica would give, after the success: no second
    // outcome, and no spare.
    m.handle_reply(
        now,
        NodeId(3),
        refused(ErrorCode::KeyTooLarge, "a lower limit"),
    );
    assert_eq!(m.poll_outcome(), None);
    m.handle_timeout(now + TIMEOUT);
    assert_eq!(m.poll_outcome(), None);
    assert_eq!(asked(&drain(&mut m)), [(2, None)], "the repair");
    assert!(m.poll_finished());
}

#[test]
fn get_times_out_with_what_it_had() {
    let now = Instant::now();
    let mut m = get_machine(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), Ok(Reply::Object(None)));
    m.handle_timeout(m.poll_timeout());
    match m.poll_outcome() {
        Some(Err(MachineError::Quorum(q))) => assert!(q.timed_out && q.succeeded == 1),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn put_coordinates_then_replicates_and_succeeds_at_w() {
    let now = Instant::now();
    let mut m = put_machine(now);
    let sent = drain(&mut m);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].node, NodeId(1));
    assert!(matches!(sent[0].request, Request::Put { .. }));
    let stored = object(11, b"v");
    m.handle_reply(now, NodeId(1), Ok(Reply::Stored(stored.clone())));
    let replicas = drain(&mut m);
    assert_eq!(
        replicas.iter().map(|o| o.node.get()).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(replicas
        .iter()
        .all(|o| matches!(&o.request, Request::Replicate { object, .. } if *object == stored)));
    assert!(m.poll_outcome().is_none());
    m.handle_reply(now, NodeId(3), Ok(Reply::Stored(stored.clone())));
    let out = m.poll_outcome().expect("decided").expect("success");
    assert_eq!(out.stored_on, vec![NodeId(1), NodeId(3)]);
    assert_eq!(out.object, stored);
}

#[test]
fn a_failed_coordinator_is_replaced_by_the_next_home_replica() {
    let now = Instant::now();
    let mut m = put_machine(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), down("refused"));
    let sent = drain(&mut m);
    assert_eq!(sent.iter().map(|o| o.node.get()).collect::<Vec<_>>(), [2]);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(object(12, b"v"))));
    let replicas = drain(&mut m);
    let nodes: Vec<NodeId> = replicas.iter().map(|o| o.node).collect();
    assert_eq!(
        nodes,
        [NodeId(3), NodeId(4)],
        "a spare takes the failed node's place"
    );
    assert!(
        matches!(
            replicas[1].request,
            Request::Replicate {
                hint: Some(NodeId(1)),
                ..
            }
        ),
        "the spare holds the copy as a hint for node 1"
    );
    m.handle_reply(now, NodeId(4), Ok(Reply::Stored(object(12, b"v"))));
    let out = m.poll_outcome().expect("decided").expect("success");
    assert_eq!(out.stored_on, vec![NodeId(2), NodeId(4)]);
}

#[test]
fn a_silent_coordinator_is_replaced_after_the_attempt_timeout() {
    let now = Instant::now();
    let mut m = put_machine(now);
    drain(&mut m);
    assert_eq!(m.poll_timeout(), now + ATTEMPT);
    m.handle_timeout(now + ATTEMPT);
    let sent = drain(&mut m);
    assert_eq!(sent.iter().map(|o| o.node.get()).collect::<Vec<_>>(), [2]);
    assert_eq!(
        sent[0].deadline,
        now + TIMEOUT,
        "calls live to the deadline"
    );
    // The replaced coordinator answers late: its object is used.
    let late = object(11, b"v");
    m.handle_reply(now + ATTEMPT, NodeId(1), Ok(Reply::Stored(late.clone())));
    let replicas: Vec<NodeId> = drain(&mut m).iter().map(|o| o.node).collect();
    assert_eq!(replicas, [NodeId(2), NodeId(3)]);
    m.handle_reply(now + ATTEMPT, NodeId(3), Ok(Reply::Stored(late.clone())));
    let out = m.poll_outcome().expect("decided").expect("success");
    assert_eq!(out.object, late);
}

#[test]
fn a_put_fails_when_every_coordinator_fails() {
    let now = Instant::now();
    let mut m = put_machine(now);
    // The home replicas, then the spares standing in for them.
    for node in [1, 2, 3, 4, 5].map(NodeId) {
        let sent = drain(&mut m);
        assert_eq!(sent[0].node, node);
        m.handle_reply(now, node, down("gone"));
    }
    match m.poll_outcome() {
        Some(Err(MachineError::Quorum(q))) => {
            assert_eq!((q.needed, q.succeeded, q.failures.len()), (2, 0, 5))
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
}

#[test]
fn a_put_waits_for_a_late_coordinator_until_the_deadline() {
    let now = Instant::now();
    let attempt = Duration::from_millis(500);
    let mut m = put_machine_with(now, attempt);
    let mut t = now;
    // Three home replicas and two spares, each silent for its attempt.
    for _ in 0..5 {
        drain(&mut m);
        t += attempt;
        m.handle_timeout(t);
    }
    assert_eq!(m.poll_timeout(), now + TIMEOUT);
    assert!(m.poll_outcome().is_none(), "slow nodes may still answer");
    m.handle_timeout(now + TIMEOUT);
    match m.poll_outcome() {
        Some(Err(MachineError::Quorum(q))) => assert!(q.timed_out),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_replica_that_fails_is_replaced_by_a_spare_with_a_hint() {
    let now = Instant::now();
    let mut m = put_machine(now);
    drain(&mut m);
    let stored = object(11, b"v");
    m.handle_reply(now, NodeId(1), Ok(Reply::Stored(stored.clone())));
    drain(&mut m);
    m.handle_reply(now, NodeId(2), down("gone"));
    m.handle_reply(now, NodeId(3), down("gone"));
    let sent = drain(&mut m);
    assert_eq!(sent.len(), 2);
    assert!(matches!(
        sent[0].request,
        Request::Replicate {
            hint: Some(NodeId(2)),
            ..
        }
    ));
    assert!(matches!(
        sent[1].request,
        Request::Replicate {
            hint: Some(NodeId(3)),
            ..
        }
    ));
    assert!(m.poll_outcome().is_none());
    m.handle_reply(now, NodeId(5), Ok(Reply::Stored(stored.clone())));
    let out = m
        .poll_outcome()
        .expect("decided")
        .expect("W reached with a stand-in");
    assert_eq!(out.stored_on, vec![NodeId(1), NodeId(5)]);
}

#[test]
fn a_request_error_is_not_retried_elsewhere() {
    let now = Instant::now();
    let mut m = put_machine(now);
    drain(&mut m);
    m.handle_reply(now, NodeId(1), refused(ErrorCode::ValueTooLarge, "too big"));
    assert!(drain(&mut m).is_empty());
    assert!(matches!(
        m.poll_outcome(),
        Some(Err(MachineError::Rejected(ErrorCode::ValueTooLarge, _)))
    ));
}

#[test]
fn a_refusal_after_success_gives_no_second_outcome() {
    let now = Instant::now();
    let mut m = put_machine(now);
    drain(&mut m);
    let stored = object(11, b"v");
    m.handle_reply(now, NodeId(1), Ok(Reply::Stored(stored.clone())));
    drain(&mut m);
    m.handle_reply(now, NodeId(2), Ok(Reply::Stored(stored)));
    assert!(m.poll_outcome().expect("decided").is_ok());
    // Node 3 has a lower value limit: the put stands, once.
    m.handle_reply(
        now,
        NodeId(3),
        refused(ErrorCode::ValueTooLarge, "too big here"),
    );
    assert_eq!(m.poll_outcome(), None);
    // Its refusal is that node's failure: a spare stands in for it.
    let spare = drain(&mut m);
    assert_eq!(spare.len(), 1);
    assert_eq!(spare[0].node, NodeId(4));
    assert!(matches!(
        spare[0].request,
        Request::Replicate {
            hint: Some(NodeId(3)),
            ..
        }
    ));
    assert!(
        !m.poll_finished(),
        "the spare may answer until the deadline"
    );
    m.handle_timeout(now + TIMEOUT);
    assert!(m.poll_finished());
    assert_eq!(m.poll_outcome(), None);
}

/// A replica that refuses what the coordinator already stored (its limits
/// differ, its membership is newer) does not make the put look refused: the
/// write is stored, so a spare is called in and the put succeeds.
#[test]
fn a_replica_refusing_a_stored_write_is_replaced_not_reported_as_a_refusal() {
    let now = Instant::now();
    let mut m = put_machine(now);
    drain(&mut m);
    let stored = object(11, b"v");
    m.handle_reply(now, NodeId(1), Ok(Reply::Stored(stored.clone())));
    drain(&mut m);
    m.handle_reply(now, NodeId(2), refused(ErrorCode::NotOwner, "newer doc"));
    assert_eq!(m.poll_outcome(), None, "not decided by a replica's refusal");
    let spare = drain(&mut m);
    assert_eq!(spare[0].node, NodeId(4));
    m.handle_reply(now, NodeId(4), Ok(Reply::Stored(stored)));
    let out = m.poll_outcome().expect("decided").expect("the put stands");
    assert_eq!(out.stored_on, vec![NodeId(1), NodeId(4)]);
}

#[test]
fn a_quorum_of_zero_or_above_the_targets_is_refused() {
    let now = Instant::now();
    for r in [0, 4] {
        let refused = GetMachine::new(now, "s", b"k", &home3(), &[], r, TIMEOUT).err();
        assert_eq!(
            refused,
            Some(MachineError::InvalidQuorum {
                operation: "get",
                needed: r,
                targets: 3
            })
        );
    }
    for w in [0, 4] {
        let request = PutRequest {
            store: "s".into(),
            key: b"k".to_vec(),
            value: Value::bytes(b"v".to_vec(), 1),
            context: VersionVector::new(),
        };
        let refused = PutMachine::new(
            now,
            request,
            &home3(),
            &[NodeId(4), NodeId(5)],
            w,
            TIMEOUT,
            ATTEMPT,
        )
        .err();
        assert!(matches!(
            refused,
            Some(MachineError::InvalidQuorum { operation: "put", needed, targets: 3 }) if needed == w
        ));
    }
    let none: &[Target] = &[];
    assert!(GetMachine::new(now, "s", b"k", none, &[NodeId(4)], 1, TIMEOUT).is_err());
}
