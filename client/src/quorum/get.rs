//! The get machine: ask every home replica, succeed at `R` answers, then
//! repair the replicas that were behind.
//!
//! All `N` home replicas are asked at once (as Dynamo does) so a slow or dead
//! replica costs nothing while `R` others answer; the answers are synced into
//! one object whose values are the siblings. The caller gets that outcome at
//! `R`; the machine keeps listening until every replica has answered (or the
//! deadline passes), syncs everything it heard, and sends the result to each
//! replica whose copy was missing or older: read repair (Dynamo §4.7).
//!
//! Phases: `Collecting` (until `R` answers, or until `R` is out of reach)
//! → `Repairing` (decided; still gathering the other answers) → `Finished`
//! (repairs queued; answers to them are fire and forget).

use super::targets::Target;
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
    /// Each answering replica's own copy, at the time of the outcome.
    pub replies: Vec<(NodeId, Option<Object>)>,
}

/// Where the get stands. Only `Collecting` is undecided; the outcome is
/// given exactly once, on leaving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for `R` answers.
    Collecting,
    /// Decided; still gathering the other targets' answers so every
    /// replica that is behind gets the synced object.
    Repairing,
    /// Repairs queued, none needed, or the request refused: nothing more
    /// to wait for. Queued repairs still go out.
    Finished,
}

/// Coordinates one get and its read repair.
pub struct GetMachine {
    /// Store of the key, for the repairs.
    store: String,
    /// The key, for the repairs.
    key: Vec<u8>,
    /// Answers needed (`R`), the failures seen, and the one outcome.
    decision: Decision<GetOutcome>,
    /// The nodes asked, one request each: only their first answer counts.
    asked: Vec<NodeId>,
    /// Targets that are not home replicas: never repaired.
    stand_ins: Vec<NodeId>,
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
}

impl GetMachine {
    /// Starts a get of `key` in `store` from `targets`, needing `r`
    /// answers within `timeout`. Only home replicas (targets without a
    /// hint) are repaired: a stand-in keeps what it holds as a hint.
    ///
    /// Refuses an `r` of zero or above the number of targets
    /// ([`MachineError::InvalidQuorum`]). `targets` come from
    /// [`super::targets`]: distinct nodes.
    pub fn new(
        now: Instant,
        store: &str,
        key: &[u8],
        targets: &[Target],
        r: usize,
        timeout: Duration,
    ) -> Result<Self, MachineError> {
        let decision = Decision::new("get", r, targets.len())?;
        let deadline = now + timeout;
        let outbox = targets
            .iter()
            .map(|&Target { node, hint }| Outbound {
                node,
                deadline,
                request: Request::Get {
                    store: store.to_string(),
                    key: key.to_vec(),
                    hint,
                },
            })
            .collect();
        let m = Self {
            store: store.to_string(),
            key: key.to_vec(),
            decision,
            asked: targets.iter().map(|t| t.node).collect(),
            stand_ins: targets
                .iter()
                .filter(|t| t.hint.is_some())
                .map(|t| t.node)
                .collect(),
            deadline,
            outbox,
            replies: Vec::new(),
            phase: Phase::Collecting,
            repairs: 0,
        };
        debug_assert!(distinct(&m.asked), "targets must be distinct nodes");
        m.debug_check();
        Ok(m)
    }

    /// Read repairs sent (replicas that were missing the key or behind).
    pub fn repairs(&self) -> usize {
        self.repairs
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

    /// Decides once `R` is reached or out of reach; once every target has
    /// answered, repairs.
    fn check(&mut self) {
        if self.phase == Phase::Collecting {
            if self.replies.len() >= self.decision.needed() {
                let outcome = GetOutcome {
                    object: self.synced(),
                    replies: self.replies.clone(),
                };
                self.decide(Ok(outcome), Phase::Repairing);
            } else if self.asked.len() - self.decision.failures().len() < self.decision.needed() {
                self.fail(false);
            }
        }
        if self.phase == Phase::Repairing
            && self.replies.len() + self.decision.failures().len() >= self.asked.len()
        {
            self.repair();
        }
    }

    /// True when `node` was asked and has not answered yet.
    fn awaited(&self, node: NodeId) -> bool {
        self.asked.contains(&node)
            && !self.replies.iter().any(|(n, _)| *n == node)
            && !self.decision.failures().iter().any(|(n, _)| *n == node)
    }

    /// The invariants, checked after every input in debug builds.
    fn debug_check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let answered: Vec<NodeId> = self
            .replies
            .iter()
            .map(|(n, _)| *n)
            .chain(self.decision.failures().iter().map(|(n, _)| *n))
            .collect();
        debug_assert!(
            answered.len() <= self.asked.len(),
            "more answers than targets"
        );
        debug_assert!(distinct(&answered), "a node counted twice");
        debug_assert!(answered.iter().all(|n| self.asked.contains(n)));
        debug_assert_eq!(
            self.decision.is_decided(),
            self.phase != Phase::Collecting,
            "the phase and the decision disagree"
        );
    }

    /// Queues the synced object for every replica that answered with less;
    /// replicas that did not answer are left to hinted handoff and
    /// anti-entropy.
    fn repair(&mut self) {
        if self.phase == Phase::Finished {
            return;
        }
        self.phase = Phase::Finished;
        let synced = self.synced();
        if synced.entries().is_empty() {
            return;
        }
        for (node, copy) in &self.replies {
            if self.stand_ins.contains(node) {
                continue;
            }
            let behind = copy.as_ref().is_none_or(|c| !c.equal_history(&synced));
            if behind {
                self.repairs += 1;
                self.outbox.push_back(Outbound {
                    node: *node,
                    deadline: self.deadline,
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

    fn handle_reply(&mut self, _now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
        // Answers to repairs are fire and forget; a node answers once.
        if self.phase == Phase::Finished || !self.awaited(node) {
            return;
        }
        match reply {
            Ok(Reply::Object(object)) => self.replies.push((node, object)),
            Ok(other) => self
                .decision
                .record(node, NodeFailure::Unexpected(format!("{other:?}"))),
            Err(failure) => match rejection(&failure) {
                // Every replica would refuse the same way: stop here.
                Some(rejected) if self.phase == Phase::Collecting => {
                    self.decide(Err(rejected), Phase::Finished);
                    return self.debug_check();
                }
                _ => self.decision.record(node, failure),
            },
        }
        self.check();
        self.debug_check();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        if self.phase == Phase::Collecting {
            self.fail(true);
        }
        // Whoever has not answered by now will not be repaired by this read.
        self.repair();
        self.debug_check();
    }

    fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    fn poll_outcome(&mut self) -> Option<Result<GetOutcome, MachineError>> {
        self.decision.take()
    }

    fn poll_finished(&self) -> bool {
        self.phase == Phase::Finished && self.outbox.is_empty()
    }
}
