//! The put machine: one coordinator, then replication, success at `W`.
//!
//! The first target (a healthy home replica, or a stand-in when every home
//! replica is down; see [`super::targets`]) coordinates: it assigns the new
//! dot and returns the resulting object, which is then replicated to the
//! other targets, stand-ins with their hint. A
//! coordinator that fails, or does not answer within the attempt timeout, is
//! replaced by the next home replica; if a replaced coordinator answers
//! late, its object is used all the same (it may then hold the value as a
//! sibling of the replacement's, which a read shows and a resolver folds —
//! Dynamo's behaviour when coordinators change mid-write). The put
//! succeeds once `W` replicas (coordinator included) have stored the object;
//! replication to the rest carries on in the background.
//!
//! Phases: `Coordinating` → `Replicating` → either `Draining` (succeeded at
//! `W`, still placing the other replicas until they answer or the deadline
//! passes) or `Finished`. A replica that refuses the request itself after
//! the success does not turn it into a failure: the outcome is given once.
//!
//! While a change moves the key's partition, the incoming home replicas get
//! the object too, and `W` must also be reached among the owners to come
//! when it can be (`moving`).
//!
//! # Layout
//!
//! - this file: the machine's state, its decision and invariants, and the
//!   [`Machine`] interface;
//! - `coordinating`: finding a coordinator;
//! - `replicating`: placing its object on the other replicas;
//! - `moving`: the joint quorum while a change moves the key.

mod coordinating;
mod moving;
mod replicating;

pub use moving::Moving;

use super::targets::{Roster, Target};
use super::{distinct, rejection, Decision, Machine, MachineError, NodeFailure, Outbound};
use quire_shared::dvvset::VersionVector;
use quire_shared::wire::Reply;
use quire_shared::{NodeId, Object, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A successful put.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// The object as the coordinator stored it; its join is the context
    /// for a follow-up write.
    pub object: Object,
    /// Replicas that acknowledged, coordinator first.
    pub stored_on: Vec<NodeId>,
}

/// Where the put stands. Undecided while coordinating or replicating; the
/// outcome is given exactly once, on leaving those two.
enum Phase {
    /// Waiting for the coordinator `roster[index]` until `until`; once
    /// every node on the roster was tried (`index == roster.len()`),
    /// waiting for a late answer from a replaced one until the deadline.
    Coordinating { index: usize, until: Instant },
    /// Replicating the coordinator's object; waiting on `pending` for `W`.
    Replicating {
        object: Object,
        pending: Vec<NodeId>,
    },
    /// Succeeded; still placing the object on `pending` (a failure there
    /// still gets a stand-in) so the write reaches `N` nodes, not just `W`.
    Draining {
        object: Object,
        pending: Vec<NodeId>,
    },
    /// Decided and waiting for nothing: failed, refused, or every replica
    /// placed (or the deadline passed). Queued requests still go out.
    Finished,
}

impl Phase {
    /// True once the outcome is decided.
    fn is_decided(&self) -> bool {
        matches!(self, Phase::Draining { .. } | Phase::Finished)
    }

    /// The replicas still awaited, while replicating.
    fn pending_mut(&mut self) -> Option<&mut Vec<NodeId>> {
        match self {
            Phase::Replicating { pending, .. } | Phase::Draining { pending, .. } => Some(pending),
            Phase::Coordinating { .. } | Phase::Finished => None,
        }
    }
}

/// What the put writes.
#[derive(Clone, Debug)]
pub struct PutRequest {
    /// Store name.
    pub store: String,
    /// User key.
    pub key: Vec<u8>,
    /// Value or tombstone.
    pub value: Value,
    /// What the writer had seen.
    pub context: VersionVector,
}

/// Coordinates one put.
pub struct PutMachine {
    /// What every coordinator is asked to write.
    request: PutRequest,
    /// The targets in coordinator order, then the spares that took failed
    /// ones' places (with a hint for the home replica each replaces).
    roster: Roster,
    /// Acknowledgements needed (`W`, coordinator included), the failures
    /// seen, and the one outcome.
    decision: Decision<PutOutcome>,
    /// How long a coordinator has before the next one is asked.
    attempt: Duration,
    /// Where the put stands; decided exactly when `decision` is.
    phase: Phase,
    /// Coordinators replaced for being slow that may still answer.
    late: Vec<NodeId>,
    /// Nodes that stored the object, coordinator first.
    acks: Vec<NodeId>,
    /// The key's home replicas a pending change swaps, if it moves the
    /// key's partition.
    moving: Option<Moving>,
    /// Incoming home replicas that stored the object.
    incoming_acks: Vec<NodeId>,
    /// When the put gives up on anything not yet answered.
    deadline: Instant,
    /// Requests waiting for [`Machine::poll_send`].
    outbox: VecDeque<Outbound>,
}

impl PutMachine {
    /// Starts a put to `targets` (falling back on `spares`) needing `w`
    /// acknowledgements within `timeout`, giving each coordinator `attempt`
    /// to answer before the next home replica is asked.
    ///
    /// Refuses a `w` of zero or above the number of targets
    /// ([`MachineError::InvalidQuorum`]). `targets` and `spares` come from
    /// [`super::targets`]: distinct nodes, no spare among the targets.
    pub fn new(
        now: Instant,
        request: PutRequest,
        targets: &[Target],
        spares: &[NodeId],
        w: usize,
        timeout: Duration,
        attempt: Duration,
    ) -> Result<Self, MachineError> {
        let mut m = Self {
            request,
            roster: Roster::new(targets, spares),
            decision: Decision::new("put", w, targets.len())?,
            attempt,
            phase: Phase::Coordinating {
                index: 0,
                until: now + attempt,
            },
            acks: Vec::new(),
            moving: None,
            incoming_acks: Vec::new(),
            late: Vec::new(),
            deadline: now + timeout,
            outbox: VecDeque::new(),
        };
        m.ask_coordinator(now, 0);
        m.debug_check();
        Ok(m)
    }

    /// The same put while a committed change moves the key's partition:
    /// the incoming home replicas of `moving` get the object too, and the
    /// put waits for `W` among the future home replicas as well (see
    /// [`Moving`]). Call before any reply is handled. The incoming
    /// replicas must not be on the roster (plan the targets without them
    /// as stand-ins, as [`super::targets::plan`] does).
    pub fn during_change(mut self, moving: Option<Moving>) -> Self {
        debug_assert!(self.acks.is_empty(), "set before any reply");
        if let Some(m) = &moving {
            debug_assert!(
                m.all_incoming().all(|n| self.roster.find(n).is_none()),
                "an incoming replica on the roster"
            );
            debug_assert!(
                m.all_incoming().all(|n| !self.roster.has_spare(n)),
                "an incoming replica among the spares"
            );
        }
        self.moving = moving;
        self
    }

    /// Copies stored on stand-ins (each kept as a hint for the home
    /// replica it replaces), for the SDK's metrics once the put finished.
    pub fn hints_written(&self) -> usize {
        self.acks
            .iter()
            .filter(|&&n| self.roster.find(n).is_some_and(|t| t.hint.is_some()))
            .count()
    }

    /// Gives the outcome and moves on to `next`, a decided phase. The
    /// only way out of the undecided phases, so the outcome is given once.
    fn decide(&mut self, outcome: Result<PutOutcome, MachineError>, next: Phase) {
        debug_assert!(next.is_decided());
        if self.decision.give(outcome) {
            self.phase = next;
        }
    }

    /// Decides a quorum failure with what was heard so far.
    fn fail(&mut self, timed_out: bool) {
        if self.decision.fail(self.acks.len(), timed_out) {
            self.phase = Phase::Finished;
        }
    }

    /// The invariants, checked after every input in debug builds.
    fn debug_check(&self) {
        debug_assert!(
            self.acks.len() <= self.roster.targets(),
            "more acks than targets"
        );
        debug_assert!(distinct(&self.acks), "a node acknowledged twice");
        debug_assert!(
            distinct(&self.incoming_acks),
            "an incoming replica acknowledged twice"
        );
        debug_assert!(
            self.incoming_acks.iter().all(|&n| self.is_incoming(n)),
            "an incoming ack from a node not incoming"
        );
        debug_assert!(self.acks.iter().all(|&n| self.roster.find(n).is_some()));
        debug_assert_eq!(
            self.decision.is_decided(),
            self.phase.is_decided(),
            "the phase and the decision disagree"
        );
        if let Phase::Replicating { pending, .. } | Phase::Draining { pending, .. } = &self.phase {
            debug_assert!(distinct(pending), "a replica awaited twice");
            debug_assert!(
                pending.iter().all(|n| !self.acks.contains(n)),
                "an acknowledged replica still awaited"
            );
        }
    }
}

impl Machine for PutMachine {
    type Outcome = PutOutcome;

    fn poll_send(&mut self) -> Option<Outbound> {
        self.outbox.pop_front()
    }

    fn handle_reply(&mut self, now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
        if let (Err(failure), Phase::Coordinating { .. }) = (&reply, &self.phase) {
            if let Some(rejected) = rejection(failure) {
                // A coordinator refused the request itself (a bad key, a
                // size limit, a stale membership): nothing was stored, and
                // every replica would refuse the same way. Once a
                // coordinator has stored the write, a replica's refusal is
                // only that replica's failure: a spare takes its place, and
                // the put is not reported as refused (it was stored).
                self.decide(Err(rejected), Phase::Finished);
                return self.debug_check();
            }
        }
        match &mut self.phase {
            Phase::Coordinating { index, .. } => {
                let index = *index;
                self.coordinator_answered(now, index, node, reply);
            }
            // After a successful outcome the machine keeps placing
            // replicas: a late replication failure still gets a stand-in,
            // so the write reaches N nodes and not just W.
            Phase::Replicating { .. } | Phase::Draining { .. } => {
                self.replica_answered(node, reply);
            }
            Phase::Finished => {}
        }
        self.debug_check();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline {
            match self.phase {
                // `W` current copies and a future quorum still short: the
                // put is stored as well as it was before changes counted.
                Phase::Replicating { .. } if self.acks.len() >= self.decision.needed() => {
                    self.succeed(false)
                }
                Phase::Coordinating { .. } | Phase::Replicating { .. } => self.fail(true),
                // Replicas not placed by now are left to read repair and
                // anti-entropy.
                Phase::Draining { .. } => self.phase = Phase::Finished,
                Phase::Finished => {}
            }
            return self.debug_check();
        }
        if let Phase::Coordinating { index, until } = self.phase {
            if now >= until && index < self.roster.len() {
                self.coordinator_slow(now, index);
            }
        }
        self.debug_check();
    }

    fn poll_timeout(&self) -> Instant {
        match self.phase {
            Phase::Coordinating { until, .. } => until.min(self.deadline),
            Phase::Replicating { .. } | Phase::Draining { .. } | Phase::Finished => self.deadline,
        }
    }

    fn poll_outcome(&mut self) -> Option<Result<PutOutcome, MachineError>> {
        self.decision.take()
    }

    fn poll_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished) && self.outbox.is_empty()
    }
}
