//! Seeded simulation of the quorum machines (TESTING.md, layer 2).
//!
//! Thousands of seeds, each a different world: replies dropped, delayed
//! and reordered, nodes refusing or failing, on a virtual clock. Whatever
//! happens, a machine must decide by its deadline without panicking, give
//! exactly one outcome, and a success must be true: a put reported stored
//! on `W` nodes was stored by each of them; a get's answer is the sync of
//! `R` real replies, home replicas' or stand-ins' (spares replace failed
//! nodes in gets as in puts), and its repairs reach home replicas only.
//!
//! Simulated nodes store what they are sent with the very rules a storage
//! node applies ([`quire_shared::replica`]), so a world differs from a real
//! cluster in its network, never in what a replica keeps.

use super::get::GetMachine;
use super::put::{PutMachine, PutRequest};
use super::targets::{choose, spares, Target};
use super::{Machine, NodeFailure};
use quire_shared::dvvset::ActorId;
use quire_shared::dvvset::VersionVector;
use quire_shared::replica;
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, Request};
use quire_shared::{ConflictPolicy, Dvvset, NodeId, Object, PreferenceList, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const SEEDS: u64 = 3_000;
const TIMEOUT: Duration = Duration::from_millis(3_000);
const ATTEMPT: Duration = Duration::from_millis(700);

/// How one simulated node behaves for the whole run.
#[derive(Clone, Copy, Debug)]
struct NodeBehaviour {
    /// Chance that a request gets no answer at all.
    drop_share: f64,
    /// Chance that it answers with a transport failure.
    fail_share: f64,
    /// Largest reply delay.
    delay_max_ms: u64,
    /// Chance that it refuses the request itself (as a node with a lower
    /// value limit would during a config roll-out): a refusal every
    /// replica would give, which must not retry elsewhere, nor undo a put
    /// that already succeeded.
    refuse_share: f64,
}

struct World {
    rng: StdRng,
    nodes: HashMap<NodeId, NodeBehaviour>,
    /// Replies in flight, by delivery time then sequence (reordering comes
    /// from the random delays).
    in_flight: BTreeMap<(Instant, u64), (NodeId, Result<Reply, NodeFailure>)>,
    seq: u64,
    /// Nodes that stored something, and what: one object per node, its
    /// data and hint copies of the key together (a put's check asks only
    /// whether the node holds the acknowledged object).
    stored: HashMap<NodeId, Object>,
    /// The store's conflict policy: even seeds keep siblings, odd ones are
    /// last-write-wins.
    policy: ConflictPolicy,
}

/// The actor a simulated node coordinates with as a stand-in: one of its
/// own, apart from the node's, as a storage node's is.
fn stand_in_actor(node: NodeId) -> ActorId {
    ActorId(node.get() | 1 << 63)
}

impl World {
    fn new(seed: u64, node_count: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let nodes = (1..=node_count)
            .map(|id| {
                let b = NodeBehaviour {
                    drop_share: if rng.gen_bool(0.3) {
                        rng.gen_range(0.0..1.0)
                    } else {
                        0.0
                    },
                    fail_share: if rng.gen_bool(0.3) {
                        rng.gen_range(0.0..1.0)
                    } else {
                        0.0
                    },
                    delay_max_ms: rng.gen_range(0..1_500),
                    refuse_share: if rng.gen_bool(0.1) {
                        rng.gen_range(0.0..0.3)
                    } else {
                        0.0
                    },
                };
                (NodeId(id), b)
            })
            .collect();
        Self {
            rng,
            nodes,
            in_flight: BTreeMap::new(),
            seq: 0,
            stored: HashMap::new(),
            policy: if seed % 2 == 0 {
                ConflictPolicy::Siblings
            } else {
                ConflictPolicy::Lww
            },
        }
    }

    /// A node receives a request: it may store it now and answer later.
    fn send(&mut self, now: Instant, node: NodeId, request: &Request) {
        let b = self.nodes[&node];
        if self.rng.gen_bool(b.drop_share) {
            return;
        }
        let delay = Duration::from_millis(self.rng.gen_range(0..=b.delay_max_ms));
        let reply = if self.rng.gen_bool(b.fail_share) {
            Err(NodeFailure::Unreachable("simulated".into()))
        } else if self.rng.gen_bool(b.refuse_share) {
            Err(NodeFailure::Refused(ErrorReply {
                code: ErrorCode::ValueTooLarge,
                message: "simulated: a lower value limit".into(),
            }))
        } else {
            Ok(match request {
                Request::Put {
                    value,
                    context,
                    hint,
                    ..
                } => {
                    let held = self.stored.get(&node).cloned().unwrap_or_default();
                    let (value, policy) = (value.clone(), self.policy);
                    let next = match hint {
                        // A simulated node's actor is its node number.
                        None => replica::coordinate_put(
                            &held,
                            context,
                            ActorId(node.get()),
                            value,
                            policy,
                        ),
                        Some(_) => replica::coordinate_put_as_stand_in(
                            [held],
                            context,
                            stand_in_actor(node),
                            value,
                            policy,
                        ),
                    };
                    self.stored.insert(node, next.clone());
                    Reply::Stored(next)
                }
                Request::Replicate { object, .. } => {
                    let held = self.stored.get(&node).cloned().unwrap_or_default();
                    match replica::replicate(&held, object, self.policy) {
                        Some(next) => {
                            self.stored.insert(node, next.clone());
                            Reply::Stored(next)
                        }
                        None => Reply::Stored(held),
                    }
                }
                Request::Get { .. } => Reply::Object(self.stored.get(&node).cloned()),
                other => panic!("the machines never send {other:?}"),
            })
        };
        self.seq += 1;
        self.in_flight
            .insert((now + delay, self.seq), (node, reply));
    }

    /// Runs `machine` to its outcome and until it is finished; returns the
    /// outcome and when it was decided.
    fn run<M: Machine>(
        &mut self,
        start: Instant,
        mut machine: M,
    ) -> (Option<M::Outcome>, Instant, M)
    where
        M::Outcome: std::fmt::Debug,
    {
        let mut now = start;
        let mut outcome = None;
        let mut decided_at = None;
        for _ in 0..100_000 {
            while let Some(out) = machine.poll_send() {
                self.send(now, out.node, &out.request);
            }
            if let Some(o) = machine.poll_outcome() {
                assert!(decided_at.is_none(), "two outcomes");
                decided_at = Some(now);
                outcome = o.ok();
            }
            if let Some(at) = decided_at {
                if machine.poll_finished() {
                    return (outcome, at, machine);
                }
            }
            let timer = machine.poll_timeout();
            match self.in_flight.first_key_value() {
                Some((&(at, seq), _)) if at <= timer => {
                    let (node, reply) = self.in_flight.remove(&(at, seq)).unwrap();
                    now = now.max(at);
                    machine.handle_reply(now, node, reply);
                }
                _ => {
                    now = now.max(timer);
                    machine.handle_timeout(now);
                    // Nothing pending and the deadline passed: done.
                    if now >= start + TIMEOUT * 2 && decided_at.is_none() {
                        panic!("no outcome long after the deadline");
                    }
                }
            }
        }
        panic!("the machine did not finish");
    }
}

fn targets(n: u64) -> Vec<Target> {
    (1..=n)
        .map(|node| Target {
            node: NodeId(node),
            hint: None,
        })
        .collect()
}

#[test]
fn a_successful_put_is_stored_on_w_nodes_whatever_the_network_does() {
    let mut successes = 0;
    for seed in 0..SEEDS {
        let mut world = World::new(seed, 5);
        let n = 3;
        let w = world.rng.gen_range(1..=n) as usize;
        let start = Instant::now();
        let request = PutRequest {
            store: "s".into(),
            key: b"k".to_vec(),
            value: Value::bytes(seed.to_be_bytes().to_vec(), seed),
            context: VersionVector::new(),
        };
        let machine = PutMachine::new(
            start,
            request,
            &targets(n),
            &[NodeId(4), NodeId(5)],
            w,
            TIMEOUT,
            ATTEMPT,
        )
        .expect("1 <= W <= N");
        let (outcome, decided_at, _) = world.run(start, machine);
        assert!(decided_at <= start + TIMEOUT, "seed {seed}: decided late");
        if let Some(out) = outcome {
            successes += 1;
            let distinct: HashSet<NodeId> = out.stored_on.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                out.stored_on.len(),
                "seed {seed}: an ack counted twice"
            );
            assert!(
                distinct.len() >= w,
                "seed {seed}: {} acks for W={w}",
                distinct.len()
            );
            for node in &distinct {
                let held = world.stored.get(node).unwrap_or_else(|| {
                    panic!("seed {seed}: node {node} reported as storing nothing")
                });
                assert!(
                    out.object.less(held) || out.object.equal_history(held),
                    "seed {seed}: node {node} does not hold the acknowledged object"
                );
            }
        }
    }
    // The worlds are not all hopeless: the check above ran often.
    assert!(successes > SEEDS / 4, "only {successes} successes");
}

/// The preference list of every simulated key: home replicas 1, 2, 3,
/// then 4 and 5, the spares.
fn preference_list() -> PreferenceList {
    PreferenceList {
        partition: 0,
        nodes: (1..=5).map(NodeId).collect(),
        n: 3,
    }
}

#[test]
fn a_successful_get_is_the_sync_of_r_real_replies() {
    let mut successes = 0;
    let mut through_spares = 0;
    for seed in 0..SEEDS {
        let mut world = World::new(seed ^ 0x5eed, 5);
        // Each home replica holds some version or none; a spare may hold a
        // hint for one of them.
        for node in 1..=5u64 {
            if world.rng.gen_bool(if node <= 3 { 0.7 } else { 0.4 }) {
                let mut o = Dvvset::new();
                o.event(ActorId(node), Value::bytes(vec![node as u8], node));
                world.stored.insert(NodeId(node), o);
            }
        }
        let before = world.stored.clone();
        // The client believes some nodes down (a warm client's failure
        // history): down home replicas get stand-ins up front.
        let believed_down: Vec<bool> = (0..=5).map(|_| world.rng.gen_bool(0.2)).collect();
        let is_up = |n: NodeId| !believed_down[n.get() as usize];
        let list = preference_list();
        let chosen = choose(&list, is_up);
        let spare_nodes = spares(&list, &chosen, is_up);
        let r = world.rng.gen_range(1..=3usize);
        let start = Instant::now();
        let machine = GetMachine::new(start, "s", b"k", &chosen, &spare_nodes, r, TIMEOUT)
            .expect("1 <= R <= N");
        let (outcome, decided_at, machine) = world.run(start, machine);
        assert!(decided_at <= start + TIMEOUT, "seed {seed}: decided late");
        if let Some(out) = outcome {
            successes += 1;
            assert!(
                out.replies.len() >= r,
                "seed {seed}: {} replies for R={r}",
                out.replies.len()
            );
            if out
                .replies
                .iter()
                .any(|(n, _)| !chosen.iter().any(|t| t.node == *n))
            {
                through_spares += 1;
            }
            let expected = out
                .replies
                .iter()
                .filter_map(|(_, o)| o.as_ref())
                .fold(Object::new(), |acc, o| acc.sync(o));
            assert_eq!(out.object, expected, "seed {seed}");
            for (node, copy) in &out.replies {
                assert_eq!(
                    copy.as_ref(),
                    before.get(node),
                    "seed {seed}: reply changed"
                );
            }
        }
        for (node, held) in &before {
            let now = &world.stored[node];
            // Repairs only ever add: no node lost a value it had.
            assert!(
                held.less(now) || held.equal_history(now),
                "seed {seed}: node {node} lost data"
            );
            // Only home replicas are repaired: a stand-in's hints stay
            // as they were.
            if node.get() > 3 {
                assert_eq!(held, now, "seed {seed}: stand-in {node} repaired");
            }
        }
        let _ = machine.repairs();
    }
    assert!(successes > SEEDS / 4, "only {successes} successes");
    // The spares really are exercised, not just present.
    assert!(
        through_spares > SEEDS / 20,
        "only {through_spares} gets succeeded through a spare"
    );
}
