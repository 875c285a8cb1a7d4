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
//! # Layout
//!
//! - this file: the machine's state, its decision and invariants, and the
//!   [`Machine`] interface;
//! - `coordinating`: finding a coordinator;
//! - `replicating`: placing its object on the other replicas.

mod coordinating;
mod replicating;

use super::targets::Target;
use super::{
    distinct, rejection, validate_quorum, Machine, MachineError, NodeFailure, Outbound, QuorumError,
};
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
    /// Waiting for the coordinator `home[index]` until `until`; once every
    /// home replica was tried (`index == home.len()`), waiting for a late
    /// answer from a replaced one until the deadline.
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
    /// The targets in coordinator order.
    home: Vec<NodeId>,
    /// Each target's hint.
    hints: Vec<Option<NodeId>>,
    /// Targets at the start (`N`): spares only take failed targets'
    /// places, so acknowledgements never outnumber them.
    targets: usize,
    /// Acknowledgements needed, coordinator included.
    w: usize,
    /// How long a coordinator has before the next one is asked.
    attempt: Duration,
    /// Where the put stands; the only record of whether it is decided.
    phase: Phase,
    /// Coordinators replaced for being slow that may still answer.
    late: Vec<NodeId>,
    /// Nodes of the extended list not yet used: each takes the place of a
    /// target that fails, with a hint for the home replica it replaces.
    spares: VecDeque<NodeId>,
    /// Targets that failed (their place went to a spare, if any).
    dead: Vec<NodeId>,
    /// Nodes that stored the object, coordinator first.
    acks: Vec<NodeId>,
    /// What went wrong where, for the error if `W` is not reached.
    failures: Vec<(NodeId, NodeFailure)>,
    /// When the put gives up on anything not yet answered.
    deadline: Instant,
    /// Requests waiting for [`Machine::poll_send`].
    outbox: VecDeque<Outbound>,
    /// The decided outcome until the caller collects it; filled once, on
    /// leaving the undecided phases.
    outcome: Option<Result<PutOutcome, MachineError>>,
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
        validate_quorum("put", w, targets.len())?;
        let mut m = Self {
            request,
            home: targets.iter().map(|t| t.node).collect(),
            hints: targets.iter().map(|t| t.hint).collect(),
            targets: targets.len(),
            w,
            attempt,
            phase: Phase::Coordinating {
                index: 0,
                until: now + attempt,
            },
            acks: Vec::new(),
            late: Vec::new(),
            spares: spares.iter().copied().collect(),
            dead: Vec::new(),
            failures: Vec::new(),
            deadline: now + timeout,
            outbox: VecDeque::new(),
            outcome: None,
        };
        debug_assert!(
            distinct(&m.home) && m.spares.iter().all(|s| !m.home.contains(s)),
            "targets and spares must be distinct nodes"
        );
        m.ask_coordinator(now, 0);
        m.debug_check();
        Ok(m)
    }

    /// Gives a failed target's place to the next spare: it becomes a
    /// stand-in for the home replica the failed target was (or stood in
    /// for). Returns the spare and its hint.
    fn substitute(&mut self, failed: NodeId) -> Option<(NodeId, NodeId)> {
        let index = self.home.iter().position(|&n| n == failed)?;
        if self.dead.contains(&failed) {
            return None;
        }
        self.dead.push(failed);
        let home = self.hints[index].unwrap_or(failed);
        let spare = self.spares.pop_front()?;
        self.home.push(spare);
        self.hints.push(Some(home));
        Some((spare, home))
    }

    /// Gives the outcome and moves on to `next`, a decided phase. The
    /// only way out of the undecided phases, so the outcome is given once.
    fn decide(&mut self, outcome: Result<PutOutcome, MachineError>, next: Phase) {
        debug_assert!(!self.phase.is_decided(), "a put decided twice");
        debug_assert!(next.is_decided());
        if self.phase.is_decided() {
            return;
        }
        self.outcome = Some(outcome);
        self.phase = next;
    }

    /// Decides a quorum failure with what was heard so far.
    fn fail(&mut self, timed_out: bool) {
        let error = QuorumError {
            operation: "put",
            needed: self.w,
            succeeded: self.acks.len(),
            failures: self.failures.clone(),
            timed_out,
        };
        self.decide(Err(error.into()), Phase::Finished);
    }

    /// The invariants, checked after every input in debug builds.
    fn debug_check(&self) {
        debug_assert!(self.acks.len() <= self.targets, "more acks than targets");
        debug_assert!(distinct(&self.acks), "a node acknowledged twice");
        debug_assert!(self.acks.iter().all(|n| self.home.contains(n)));
        debug_assert!(
            self.outcome.is_none() || self.phase.is_decided(),
            "an outcome before a decision"
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
        if let Err(failure) = &reply {
            if let Some(rejected) = rejection(failure) {
                // Every replica would refuse the same way. After a success
                // the put stands: that replica is left to anti-entropy.
                if !self.phase.is_decided() {
                    self.decide(Err(rejected), Phase::Finished);
                }
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
                Phase::Coordinating { .. } | Phase::Replicating { .. } => self.fail(true),
                // Replicas not placed by now are left to read repair and
                // anti-entropy.
                Phase::Draining { .. } => self.phase = Phase::Finished,
                Phase::Finished => {}
            }
            return self.debug_check();
        }
        if let Phase::Coordinating { index, until } = self.phase {
            if now >= until && index < self.home.len() {
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
        self.outcome.take()
    }

    fn poll_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished) && self.outbox.is_empty()
    }
}
