//! The get machine: ask the first `N` healthy nodes (or `R` of them
//! first), let a spare take the place of any that fails, succeed at `R`
//! answers, then repair the home replicas that were behind.
//!
//! The targets are healthy home replicas, then stand-ins for the down ones
//! (see [`super::targets`]). How many are asked at once is the
//! [`Fanout`]: all of them, as Dynamo does, so a slow or dead replica costs
//! nothing while `R` others answer; or the first `R`, with the others held
//! back and asked only when one of the first fails, when `R` answers have
//! not come within the speculation delay (Cassandra's rapid read
//! protection), or when the `R` answers differ, so that read repair still
//! reaches every home replica once a difference is seen. Asking `R` costs
//! the nodes a third fewer requests at `N` = 3, `R` = 2; what it gives up
//! is the repair of a replica that is behind while the `R` asked agree,
//! which is left to anti-entropy. A target that
//! fails while the get is undecided gives its place to a held-back target,
//! or else to the next spare,
//! exactly as in a put: the spare is asked with `hint = Some(home it
//! replaces)` and answers from the hints it holds. That is where a put
//! that met the same failures left its copies, so a fresh client that
//! knows nothing of down nodes (every `quire` command) reads what such a
//! put wrote. After the outcome a failure calls in no spare: the caller
//! has its answer, and a spare's copy would only feed a repair.
//!
//! The answers are synced into one object whose values are the siblings.
//! The caller gets it at `R`; the machine keeps listening until everyone
//! asked has answered (or the deadline passes), syncs all it heard, and
//! sends the result to each home replica whose copy was missing or older:
//! read repair (Dynamo §4.7). Stand-ins are never repaired: what they hold
//! is a hint, which maintenance delivers home. Repairs get a time budget of
//! their own, counted from when they are sent: they start when the last
//! answer comes in or at the get's deadline, when what is left of the
//! get's time is little or nothing, and a call sent with no time is a
//! call that fails (and marks a healthy node down).
//!
//! Phases: `Collecting` (until `R` answers, or until `R` is out of reach
//! even with the spares left) → `Repairing` (decided; still gathering the
//! other answers) → `Finished` (repairs queued; answers to them are fire
//! and forget).

use super::targets::{Roster, Target};
use super::{distinct, rejection, Decision, Machine, MachineError, NodeFailure, Outbound};
use quire_shared::wire::{Reply, Request};
use quire_shared::{NodeId, Object};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A successful get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetOutcome {
    /// The synced object (empty when no replica had the key).
    pub object: Object,
    /// Each answering node's copy (a stand-in's: the hints it holds for
    /// the key), at the time of the outcome: for the tests' checkers only
    /// (copying every replica's object on every get costs the data path).
    #[cfg(test)]
    pub replies: Vec<(NodeId, Option<Object>)>,
}

/// How many of a get's targets are asked at once (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fanout {
    /// Every target at once: a slow replica costs nothing, and every home
    /// replica is read, so every one that is behind is repaired.
    All,
    /// The first `R` targets; the others when one fails, when `R` answers
    /// have not come after `speculate_after`, or when the answers differ.
    Quorum {
        /// How long to wait for `R` answers before asking the rest.
        speculate_after: Duration,
    },
}

/// Where the get stands. Only `Collecting` is undecided; the outcome is
/// given exactly once, on leaving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for `R` answers.
    Collecting,
    /// Decided; still gathering the other nodes' answers so every home
    /// replica that is behind gets the synced object.
    Repairing,
    /// Repairs queued, none needed, or the request refused: nothing more
    /// to wait for. Queued repairs still go out.
    Finished,
}

/// Coordinates one get and its read repair.
pub struct GetMachine {
    /// Store of the key, for the requests.
    store: String,
    /// The key, for the requests.
    key: Vec<u8>,
    /// The nodes asked, one request each (only their first answer
    /// counts): the targets, then spares that took failed ones' places.
    /// Entries with a hint are stand-ins, never repaired.
    roster: Roster,
    /// Answers needed (`R`), the failures seen, and the one outcome.
    decision: Decision<GetOutcome>,
    /// The get's time budget; each repair gets as much again.
    timeout: Duration,
    /// When the get stops waiting, decided or not.
    deadline: Instant,
    /// Requests waiting for [`Machine::poll_send`].
    outbox: VecDeque<Outbound>,
    /// Each answering node's copy (`None`: it does not have the key).
    replies: Vec<(NodeId, Option<Object>)>,
    /// Where the get stands; decided exactly when `decision` is.
    phase: Phase,
    /// Read repairs queued, for the client's counters.
    repairs: usize,
    /// Targets not asked yet ([`Fanout::Quorum`]), in order.
    held: VecDeque<Target>,
    /// When the held-back targets are asked if `R` answers have not come.
    speculate_at: Option<Instant>,
    /// True once held-back targets were asked because answers were slow.
    speculated: bool,
}

impl GetMachine {
    /// [`GetMachine::with_fanout`] asking every target at once
    /// ([`Fanout::All`]), as the tests of the repair rules do.
    #[cfg(test)]
    pub fn new(
        now: Instant,
        store: &str,
        key: &[u8],
        targets: &[Target],
        spares: &[NodeId],
        r: usize,
        timeout: Duration,
    ) -> Result<Self, MachineError> {
        Self::with_fanout(
            now,
            (store, key),
            (targets, spares),
            r,
            timeout,
            Fanout::All,
        )
    }

    /// Starts a get of `key` in `store` from `targets` (falling back on
    /// `spares`), needing `r` answers within `timeout`, asking as many
    /// targets at once as `fanout` says.
    ///
    /// Refuses an `r` of zero or above the number of targets
    /// ([`MachineError::InvalidQuorum`]). `targets` and `spares` come from
    /// [`super::targets`]: distinct nodes, no spare among the targets.
    pub fn with_fanout(
        now: Instant,
        (store, key): (&str, &[u8]),
        (targets, spares): (&[Target], &[NodeId]),
        r: usize,
        timeout: Duration,
        fanout: Fanout,
    ) -> Result<Self, MachineError> {
        let decision = Decision::new("get", r, targets.len())?;
        let (first, speculate_at) = match fanout {
            Fanout::All => (targets.len(), None),
            Fanout::Quorum { speculate_after } => (r, Some(now + speculate_after)),
        };
        let mut m = Self {
            store: store.to_string(),
            key: key.to_vec(),
            roster: Roster::new(targets, spares),
            decision,
            timeout,
            deadline: now + timeout,
            outbox: VecDeque::new(),
            replies: Vec::new(),
            phase: Phase::Collecting,
            repairs: 0,
            held: targets[first..].iter().copied().collect(),
            speculate_at: speculate_at.filter(|_| first < targets.len()),
            speculated: false,
        };
        for &target in &targets[..first] {
            m.ask(target);
        }
        m.debug_check();
        Ok(m)
    }

    /// Read repairs sent (home replicas that were missing the key or
    /// behind).
    pub fn repairs(&self) -> usize {
        self.repairs
    }

    /// True when held-back targets were asked because `R` answers were
    /// slower than the speculation delay.
    pub fn speculated(&self) -> bool {
        self.speculated
    }

    /// Asks every target still held back.
    fn ask_held(&mut self) {
        self.speculate_at = None;
        while let Some(target) = self.held.pop_front() {
            self.ask(target);
        }
    }

    /// Nodes asked so far: the roster less the targets held back.
    fn asked(&self) -> usize {
        self.roster.len() - self.held.len()
    }

    /// Asks `target` for its copy; a stand-in (with a hint) answers with
    /// the hints it holds for the key.
    fn ask(&mut self, target: Target) {
        self.outbox.push_back(Outbound {
            node: target.node,
            deadline: self.deadline,
            request: Request::Get {
                store: self.store.clone(),
                key: self.key.clone(),
                hint: target.hint,
            },
        });
    }

    fn synced(&self) -> Object {
        self.replies
            .iter()
            .filter_map(|(_, o)| o.as_ref())
            .fold(Object::new(), |acc, o| acc.sync(o))
    }

    /// Gives the outcome and moves on to `next`. The only way out of
    /// `Collecting`, so the outcome is given once.
    fn decide(&mut self, outcome: Result<GetOutcome, MachineError>, next: Phase) {
        if self.decision.give(outcome) {
            self.phase = next;
        }
    }

    /// Decides a quorum failure with what was heard so far; the answers
    /// still due are gathered for repair all the same.
    fn fail(&mut self, timed_out: bool) {
        if self.decision.fail(self.replies.len(), timed_out) {
            self.phase = Phase::Repairing;
        }
    }

    /// Nodes that answered, with a copy or a failure.
    fn answered(&self) -> impl Iterator<Item = NodeId> + '_ {
        let failed = self.decision.failures().iter().map(|(n, _)| *n);
        self.replies.iter().map(|(n, _)| *n).chain(failed)
    }

    /// `node` failed; while undecided, a held-back target, or else the
    /// next spare, takes its place.
    fn failed(&mut self, node: NodeId, failure: NodeFailure) {
        self.decision.record(node, failure);
        if self.phase == Phase::Collecting {
            if let Some(target) = self.held.pop_front() {
                self.ask(target);
            } else if let Some(spare) = self.roster.substitute(node) {
                self.ask(spare);
            }
        }
    }

    /// True when the answers so far are not all the same history: some
    /// replica is behind, so every home replica should be read and
    /// repaired.
    fn answers_differ(&self) -> bool {
        let mut copies = self.replies.iter().map(|(_, o)| o.as_ref());
        let Some(first) = copies.next() else {
            return false;
        };
        copies.any(|c| match (first, c) {
            (Some(a), Some(b)) => !a.equal_history(b),
            (None, None) => false,
            _ => true,
        })
    }

    /// Decides once `R` is reached or out of reach; once everyone asked
    /// has answered, repairs.
    fn check(&mut self, now: Instant) {
        let failures = self.decision.failures().len();
        if self.phase == Phase::Collecting {
            if self.replies.len() >= self.decision.needed() {
                let outcome = GetOutcome {
                    object: self.synced(),
                    #[cfg(test)]
                    replies: self.replies.clone(),
                };
                self.decide(Ok(outcome), Phase::Repairing);
                if self.answers_differ() {
                    self.ask_held();
                }
            } else if self.roster.len() - failures < self.decision.needed() {
                // Every spare that could take a failed node's place is
                // already asked.
                self.fail(false);
            }
        }
        if self.phase == Phase::Repairing && self.replies.len() + failures >= self.asked() {
            self.repair(now);
        }
    }

    /// True when `node` was asked and has not answered yet.
    fn awaited(&self, node: NodeId) -> bool {
        self.roster.find(node).is_some()
            && !self.held.iter().any(|t| t.node == node)
            && !self.answered().any(|n| n == node)
    }

    /// The invariants, checked after every input in debug builds.
    fn debug_check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let answered: Vec<NodeId> = self.answered().collect();
        debug_assert!(distinct(&answered), "a node counted twice");
        debug_assert!(answered.iter().all(|&n| self.roster.find(n).is_some()));
        // A spare is only asked in a failed node's place, so no more
        // nodes are ever in play than the get began with.
        debug_assert!(
            self.roster.len() - self.decision.failures().len() <= self.roster.targets(),
            "more nodes in play than targets"
        );
        debug_assert_eq!(
            self.decision.is_decided(),
            self.phase != Phase::Collecting,
            "the phase and the decision disagree"
        );
    }

    /// Queues the synced object, due by `now` plus the get's timeout, for
    /// every home replica that answered with less; nodes that did not
    /// answer are left to hinted handoff and anti-entropy.
    fn repair(&mut self, now: Instant) {
        if self.phase == Phase::Finished {
            return;
        }
        self.phase = Phase::Finished;
        let synced = self.synced();
        if synced.entries().is_empty() {
            return;
        }
        let deadline = now + self.timeout;
        for (node, copy) in &self.replies {
            // A stand-in answered from its hints; they go home by hinted
            // handoff, not into its own data.
            if self.roster.find(*node).is_none_or(|t| t.hint.is_some()) {
                continue;
            }
            let behind = copy.as_ref().is_none_or(|c| !c.equal_history(&synced));
            if behind {
                self.repairs += 1;
                self.outbox.push_back(Outbound {
                    node: *node,
                    deadline,
                    request: Request::Replicate {
                        store: self.store.clone(),
                        key: self.key.clone(),
                        object: synced.clone(),
                        hint: None,
                    },
                });
            }
        }
    }
}

impl Machine for GetMachine {
    type Outcome = GetOutcome;

    fn poll_send(&mut self) -> Option<Outbound> {
        self.outbox.pop_front()
    }

    fn handle_reply(&mut self, now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
        // Answers to repairs are fire and forget; a node answers once.
        if self.phase == Phase::Finished || !self.awaited(node) {
            return;
        }
        let failure = match reply {
            Ok(Reply::Object(object)) => {
                self.replies.push((node, object));
                None
            }
            Ok(other) => Some(NodeFailure::Unexpected(format!("{other:?}"))),
            Err(failure) => Some(failure),
        };
        if let Some(failure) = failure {
            match rejection(&failure) {
                // Every replica would refuse the same way: stop here.
                Some(rejected) if self.phase == Phase::Collecting => {
                    self.decide(Err(rejected), Phase::Finished);
                    return self.debug_check();
                }
                _ => self.failed(node, failure),
            }
        }
        self.check(now);
        self.debug_check();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.speculate_at.is_some_and(|at| now >= at) {
            if self.phase == Phase::Collecting {
                self.speculated = true;
                self.ask_held();
            }
            self.speculate_at = None;
        }
        if now < self.deadline {
            return self.debug_check();
        }
        if self.phase == Phase::Collecting {
            self.fail(true);
        }
        // Whoever has not answered by now will not be repaired by this read.
        self.repair(now);
        self.debug_check();
    }

    fn poll_timeout(&self) -> Instant {
        self.speculate_at
            .map_or(self.deadline, |at| at.min(self.deadline))
    }

    fn poll_outcome(&mut self) -> Option<Result<GetOutcome, MachineError>> {
        self.decision.take()
    }

    fn poll_finished(&self) -> bool {
        self.phase == Phase::Finished && self.outbox.is_empty()
    }
}
