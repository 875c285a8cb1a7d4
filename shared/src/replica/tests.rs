//! Laws of the replica rules, checked on objects built by running the rules
//! themselves: three home replicas take coordinated puts with stale
//! contexts and replicate to each other in any order, as a cluster would.

use super::*;
use crate::ids::{ClusterId, NodeId};
use crate::membership::Member;
use proptest::prelude::*;

/// One event of a history over three replicas (actors 1, 2, 3).
#[derive(Clone, Debug)]
enum Step {
    /// A client reads replica `from` and keeps the context in slot `slot`.
    Read { from: usize, slot: usize },
    /// Replica `at` coordinates a put with the context in slot `slot`.
    Put { at: usize, slot: usize },
    /// Replica `to` takes replica `from`'s object.
    Replicate { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 0..3usize).prop_map(|(from, slot)| Step::Read { from, slot }),
        (0..3usize, 0..3usize).prop_map(|(at, slot)| Step::Put { at, slot }),
        (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Replicate { from, to }),
    ]
}

fn policy() -> impl Strategy<Value = ConflictPolicy> {
    prop_oneof![Just(ConflictPolicy::Siblings), Just(ConflictPolicy::Lww)]
}

/// The `i`th value written: distinct bytes, timestamps that grow.
fn value(i: u64) -> Value {
    Value::bytes(i.to_be_bytes().to_vec(), i)
}

/// The cluster after `steps`, with the context slots and the number of
/// values written so far.
struct History {
    replicas: [Object; 3],
    contexts: [VersionVector; 3],
    written: u64,
}

fn run(steps: &[Step], policy: ConflictPolicy) -> History {
    let mut h = History {
        replicas: Default::default(),
        contexts: Default::default(),
        written: 0,
    };
    for s in steps {
        match *s {
            Step::Read { from, slot } => h.contexts[slot] = h.replicas[from].join(),
            Step::Put { at, slot } => {
                h.written += 1;
                let actor = ActorId(at as u64 + 1);
                let v = value(h.written);
                h.replicas[at] =
                    coordinate_put(&h.replicas[at], &h.contexts[slot], actor, v, policy);
            }
            Step::Replicate { from, to } => {
                if let Some(next) = replicate(&h.replicas[to], &h.replicas[from], policy) {
                    h.replicas[to] = next;
                }
            }
        }
    }
    h
}

/// The live values of `object` whose dots `context` has not seen.
fn unseen(object: &Object, context: &VersionVector) -> Vec<Value> {
    object
        .entries()
        .iter()
        .flat_map(|e| {
            e.values
                .iter()
                .enumerate()
                .filter(move |(i, _)| e.counter - *i as u64 > context.get(e.actor))
                .map(|(_, v)| v.clone())
        })
        .collect()
}

proptest! {
    #[test]
    fn replicate_is_idempotent(
        steps in prop::collection::vec(step(), 0..40),
        policy in policy(),
        (to, from) in (0..3usize, 0..3usize),
    ) {
        let h = run(&steps, policy);
        let (stored, incoming) = (&h.replicas[to], &h.replicas[from]);
        let once = replicate(stored, incoming, policy).unwrap_or_else(|| stored.clone());
        prop_assert_eq!(replicate(&once, incoming, policy), None);
    }

    #[test]
    fn replicating_an_object_already_merged_in_changes_nothing(
        steps in prop::collection::vec(step(), 0..40),
        policy in policy(),
        (a, b) in (0..3usize, 0..3usize),
    ) {
        let h = run(&steps, policy);
        let (a, b) = (&h.replicas[a], &h.replicas[b]);
        let merged = replicate(a, b, policy).unwrap_or_else(|| a.clone());
        prop_assert_eq!(replicate(&merged, a, policy), None);
        prop_assert_eq!(replicate(&merged, b, policy), None);
        prop_assert_eq!(replicate(&merged, &Object::new(), policy), None);
    }

    #[test]
    fn a_coordinated_put_keeps_every_value_its_context_has_not_seen(
        steps in prop::collection::vec(step(), 0..40),
        (at, slot) in (0..3usize, 0..3usize),
    ) {
        let h = run(&steps, ConflictPolicy::Siblings);
        let (stored, context) = (&h.replicas[at], &h.contexts[slot]);
        let new = value(h.written + 1);
        let next = coordinate_put(stored, context, ActorId(at as u64 + 1), new.clone(), ConflictPolicy::Siblings);
        let mut expected = unseen(stored, context);
        expected.push(new);
        let mut kept: Vec<Value> = next.values().cloned().collect();
        expected.sort_by_key(|v| v.timestamp_ms);
        kept.sort_by_key(|v| v.timestamp_ms);
        // Exactly those: the values the context covers are replaced.
        prop_assert_eq!(kept, expected);
    }

    #[test]
    fn an_lww_put_leaves_only_its_value_and_replicas_keep_one_per_writer(
        steps in prop::collection::vec(step(), 0..40),
        (at, slot) in (0..3usize, 0..3usize),
    ) {
        let h = run(&steps, ConflictPolicy::Lww);
        // Replication does not collapse (see `replicate`): at most the
        // newest value of each of the three coordinators.
        for r in &h.replicas {
            prop_assert!(r.entries().iter().all(|e| e.values.len() <= 1));
        }
        let new = value(h.written + 1);
        let next = coordinate_put(&h.replicas[at], &h.contexts[slot], ActorId(9), new.clone(), ConflictPolicy::Lww);
        prop_assert_eq!(next.values().cloned().collect::<Vec<_>>(), vec![new]);
    }

    #[test]
    fn a_stand_in_put_is_a_put_on_the_sync_of_its_copies_with_a_fresh_dot(
        steps in prop::collection::vec(step(), 0..40),
        policy in policy(),
        slot in 0..3usize,
        actor in (1..4u64).prop_map(ActorId),
    ) {
        let h = run(&steps, policy);
        let context = &h.contexts[slot];
        let new = value(h.written + 1);
        let next = coordinate_put_as_stand_in(h.replicas.clone(), context, actor, new.clone(), policy);
        let synced = h.replicas.iter().fold(Object::new(), |acc, r| acc.sync(r));
        prop_assert_eq!(&next, &coordinate_put(&synced, context, actor, new, policy));
        // The new dot is above every dot of `actor` in any copy: no reuse.
        let counter = |o: &Object| o.join().get(actor);
        prop_assert!(h.replicas.iter().all(|r| counter(r) < counter(&next)));
    }
}

proptest! {
    /// Dropping on the delivered clock decides as comparing the objects
    /// did: the held history is covered by the delivered one.
    #[test]
    fn a_hint_is_dropped_on_a_clock_exactly_when_the_delivered_object_covers_it(
        steps in prop::collection::vec(step(), 0..40),
        policy in policy(),
    ) {
        let h = run(&steps, policy);
        for held in &h.replicas {
            for delivered in &h.replicas {
                let by_object = held.less(delivered) || held.equal_history(delivered);
                prop_assert_eq!(hint_delivered(held, &delivered.join()), by_object);
            }
        }
    }
}

fn written(actor: ActorId, i: u64) -> Object {
    coordinate_put(
        &Object::new(),
        &VersionVector::new(),
        actor,
        value(i),
        ConflictPolicy::Siblings,
    )
}

#[test]
fn a_hint_is_dropped_only_when_the_delivered_copy_covers_it() {
    let held = written(ActorId(7), 1);
    assert!(hint_delivered(&held, &held.join()), "delivered as held");
    let newer_at_home = coordinate_put(
        &held,
        &held.join(),
        ActorId(1),
        value(2),
        ConflictPolicy::Siblings,
    );
    assert!(
        hint_delivered(&held, &newer_at_home.join()),
        "home moved on since"
    );
    let written_since = coordinate_put(
        &held,
        &held.join(),
        ActorId(7),
        value(3),
        ConflictPolicy::Siblings,
    );
    assert!(
        !hint_delivered(&written_since, &held.join()),
        "news for home"
    );
    assert!(
        !hint_delivered(&written(ActorId(7), 4), &written(ActorId(8), 5).join()),
        "concurrent"
    );
}

#[test]
fn a_stand_in_without_copies_coordinates_on_an_empty_object() {
    let context = VersionVector::from_pairs([(ActorId(1), 2)]);
    let lone =
        coordinate_put_as_stand_in([], &context, ActorId(5), value(1), ConflictPolicy::Siblings);
    let put = coordinate_put(
        &Object::new(),
        &context,
        ActorId(5),
        value(1),
        ConflictPolicy::Siblings,
    );
    assert_eq!(lone, put);
}

fn membership(epoch: u64, store: Option<&str>) -> Membership {
    let member = Member {
        id: NodeId(1),
        addr: "127.0.0.1:1".into(),
        zone: "z".into(),
        weight: 1,
    };
    let stores = store
        .map(|name| crate::membership::StoreConfig {
            name: name.into(),
            n: 1,
            r: 1,
            w: 1,
            durability: crate::membership::Durability::Sync,
            policy: ConflictPolicy::Siblings,
            limits: Default::default(),
        })
        .into_iter()
        .collect();
    let mut d = Membership::new(ClusterId(1), 16, vec![member], stores).expect("valid");
    d.epoch = epoch;
    d
}

#[test]
fn gossip_keeps_the_document_that_supersedes() {
    use MembershipOffer::{Accept, Keep};
    let doc = |e| membership(e, None);
    assert_eq!(
        accept_membership(None, &doc(1), None, (None, 0)),
        Accept,
        "a new node takes any"
    );
    assert_eq!(
        accept_membership(Some(&doc(4)), &doc(5), None, (None, 0)),
        Accept
    );
    assert_eq!(
        accept_membership(Some(&doc(5)), &doc(5), None, (None, 0)),
        Keep,
        "same: keep"
    );
    assert_eq!(
        accept_membership(Some(&doc(5)), &doc(4), None, (None, 0)),
        Keep
    );
}

/// Two admins both made epoch 2: whichever a node sees first, every node
/// ends up with the same one.
#[test]
fn equal_epochs_settle_on_one_document_in_any_order() {
    let (a, b) = (membership(2, Some("a")), membership(2, Some("b")));
    assert_ne!(a.digest(), b.digest());
    let settle = |first: &Membership, second: &Membership| match accept_membership(
        Some(first),
        second,
        None,
        (None, 0),
    ) {
        MembershipOffer::Accept => second.clone(),
        _ => first.clone(),
    };
    assert_eq!(settle(&a, &b), settle(&b, &a));
    assert!(a.supersedes(&b) != b.supersedes(&a));
}

#[test]
fn a_compare_and_set_change_needs_the_exact_base() {
    use MembershipOffer::{Accept, Conflict, Keep};
    let base = membership(1, None);
    let mine = membership(2, Some("a"));
    let theirs = membership(2, Some("b"));
    let v = Some(base.version());
    assert_eq!(accept_membership(Some(&base), &mine, v, (None, 0)), Accept);
    // Another change took epoch 2 first: ours was built on what it replaced.
    assert_eq!(
        accept_membership(Some(&theirs), &mine, v, (None, 0)),
        Conflict
    );
    // A retry of an accepted change is a no-op.
    assert_eq!(accept_membership(Some(&mine), &mine, v, (None, 0)), Keep);
    // A change must move the epoch forward.
    assert_eq!(
        accept_membership(Some(&base), &membership(1, Some("a")), v, (None, 0)),
        Conflict
    );
}

#[test]
fn the_last_epoch_is_refused() {
    let mut doc = membership(1, None);
    doc.epoch = u64::MAX;
    assert!(doc.validate().is_err(), "it could never be replaced");
}

/// The cost of a new actor at every node start (the kv679 rule): a key
/// written after R restarts of its coordinator carries R more entries, each
/// a dozen bytes or so when encoded (a random 64-bit actor, a counter, an
/// empty value list), and the values stay one.
#[test]
fn each_restart_of_a_coordinator_costs_one_small_entry_per_key_written() {
    let restarts = 20u64;
    let mut object = Object::new();
    let mut sizes = Vec::new();
    for start in 0..=restarts {
        // A random-looking 64-bit actor per start, as nodes draw them.
        let actor = ActorId(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(start + 1));
        object = coordinate_put(
            &object,
            &object.join(),
            actor,
            Value::bytes(vec![b'v'; 100], start),
            ConflictPolicy::Siblings,
        );
        sizes.push(postcard::to_allocvec(&object).expect("encodes").len());
    }
    assert_eq!(object.entries().len() as u64, restarts + 1);
    assert_eq!(object.value_count(), 1, "a write with its context replaces");
    let per_restart = (sizes[sizes.len() - 1] - sizes[0]) as f64 / restarts as f64;
    eprintln!("a new coordinator actor adds {per_restart:.1} encoded bytes per key");
    assert!(
        per_restart <= 14.0,
        "each restart adds {per_restart:.1} bytes per key written after it"
    );
}

/// The coordinator's timestamp never falls below what the key holds: a
/// coordinated write is newer than every value it finds stored.
#[test]
fn a_coordinated_put_is_stamped_above_every_stored_timestamp() {
    let mut stored = Object::new();
    stored.event(ActorId(3), Value::bytes(b"ahead".to_vec(), 5_000));
    stored.event(ActorId(4), Value::bytes(b"max".to_vec(), u64::MAX));
    let next = coordinate_put(
        &Object::new().sync(&stored),
        &VersionVector::new(),
        ActorId(1),
        Value::bytes(b"late".to_vec(), 10),
        ConflictPolicy::Siblings,
    );
    let late = next
        .values()
        .find(|v| v.data.as_deref() == Some(&b"late"[..]))
        .expect("kept");
    assert_eq!(late.timestamp_ms, u64::MAX, "raised, saturating");
    let mut one = Object::new();
    one.event(ActorId(3), Value::bytes(b"ahead".to_vec(), 5_000));
    let next = coordinate_put(
        &one,
        &VersionVector::new(),
        ActorId(1),
        Value::bytes(b"late".to_vec(), 10),
        ConflictPolicy::Lww,
    );
    let winner: Vec<&Value> = next.values().collect();
    assert_eq!(winner.len(), 1);
    assert_eq!(winner[0].data.as_deref(), Some(&b"late"[..]));
    assert_eq!(winner[0].timestamp_ms, 5_001);
}

/// Found by the client's simulation (a last-write-wins world whose nodes'
/// clocks differ): replicas that each dropped the older of two values on
/// their own synced into an object with no value at all. `b` replaced `a`
/// (its writer had read `a`) but was stamped before `a` by a node whose
/// clock runs behind; `c` is concurrent with both. A replica that saw `b`
/// then `c` kept `c`; one that saw `a` then `c` kept `a`; each had recorded
/// the other's survivor as gone.
#[test]
fn lww_replicas_that_saw_different_writes_still_agree_on_the_newest() {
    let lww = ConflictPolicy::Lww;
    let none = VersionVector::new();
    let put = |context: &VersionVector, actor: u64, data: &[u8], stamp: u64| {
        let value = Value::bytes(data.to_vec(), stamp);
        coordinate_put(&Object::new(), context, ActorId(actor), value, lww)
    };
    let a = put(&none, 1, b"a", 300);
    let b = put(&a.join(), 2, b"b", 100);
    let c = put(&none, 3, b"c", 200);
    let take = |stored: &Object, incoming: &Object| {
        replicate(stored, incoming, lww).unwrap_or_else(|| stored.clone())
    };
    let (saw_b, saw_a) = (take(&b, &c), take(&a, &c));
    for merged in [take(&saw_b, &saw_a), take(&saw_a, &saw_b)] {
        // `b` replaced `a`, and `c` is newer than `b`: `c` was written last.
        let newest: Vec<_> = last_write_wins(&merged)
            .values()
            .map(|v| v.data.clone())
            .collect();
        assert_eq!(newest, vec![Some(b"c".to_vec())]);
    }
}

/// An offer signed by a certificate the held document revokes is refused,
/// whatever its epoch, gossip or an admin's change; a later epoch may not
/// claim a signing time well before the held one's, unless the held one
/// claims a time still to come. Documents that drop revocations are not
/// refused as such: a rival that lost to one without them must not wedge
/// its holders.
#[test]
fn an_offer_from_a_revoked_signer_or_backdated_is_refused() {
    use crate::access::Serial;
    use crate::membership::{AdminSeal, Seal, SIGNED_AT_SKEW_SECS};
    let now = 1_000_000;
    let mut held = membership(2, None);
    held.revoked = vec![Serial(vec![7]), Serial(vec![9])];
    let revoked = Serial(vec![7]);
    let other = Serial(vec![8]);
    let refused = MembershipOffer::Refused(SuccessorError::SignerRevoked { held_epoch: 2 });
    let later = membership(3, None);
    for base in [None, Some(held.version())] {
        assert_eq!(
            accept_membership(Some(&held), &later, base, (Some(&revoked), now)),
            refused,
            "base {base:?}"
        );
    }
    // A rival of the held document's epoch is never taken from the revoked
    // signer: refused where its digest would have won, kept out (or a
    // compare-and-set conflict) where it would not.
    let mut winners = 0;
    for name in ["a", "b", "c", "d"] {
        let rival = membership(2, Some(name));
        let gossip = accept_membership(Some(&held), &rival, None, (Some(&revoked), now));
        if rival.supersedes(&held) {
            winners += 1;
            assert_eq!(gossip, refused, "rival {name}");
        } else {
            assert_eq!(gossip, MembershipOffer::Keep, "rival {name}");
        }
        let change = accept_membership(
            Some(&held),
            &rival,
            Some(held.version()),
            (Some(&revoked), now),
        );
        assert_eq!(change, MembershipOffer::Conflict, "rival {name}");
    }
    assert!(winners > 0, "no rival's digest beat the held document's");
    assert_eq!(
        accept_membership(Some(&held), &membership(3, None), None, (Some(&other), now)),
        MembershipOffer::Accept,
        "another admin may drop revocations"
    );

    let signed = |epoch, at| {
        let mut d = membership(epoch, None);
        d.seal = Some(Seal::Admin(AdminSeal {
            cert: Vec::new(),
            signature: Vec::new(),
            signed_at: at,
        }));
        d
    };
    let held = signed(2, now - 1_000);
    let early = now - 1_000 - SIGNED_AT_SKEW_SECS - 1;
    assert_eq!(
        accept_membership(Some(&held), &signed(3, early), None, (None, now)),
        MembershipOffer::Refused(SuccessorError::SignedEarlier {
            signed_at: early,
            held_signed_at: now - 1_000
        })
    );
    assert_eq!(
        accept_membership(Some(&held), &signed(3, early + 1), None, (None, now)),
        MembershipOffer::Accept
    );
    // A held document from a clock running an hour fast holds back no
    // later one signed now.
    let fast = signed(2, now + 3_600);
    assert_eq!(
        accept_membership(Some(&fast), &signed(3, now), None, (None, now)),
        MembershipOffer::Accept
    );
}
