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

use super::targets::Target;
use super::{Machine, MachineError, NodeFailure, Outbound, QuorumError};
use quire_shared::dvvset::VersionVector;
use quire_shared::wire::{Reply, Request};
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

enum Phase {
    /// Waiting for the coordinator `home[index]` until `until`; once every
    /// home replica was tried (`index == home.len()`), waiting for a late
    /// answer from a replaced one until the deadline.
    Coordinating { index: usize, until: Instant },
    /// Replicating the coordinator's object; waiting on `pending`.
    Replicating {
        object: Object,
        pending: Vec<NodeId>,
    },
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
    request: PutRequest,
    /// The targets in coordinator order.
    home: Vec<NodeId>,
    /// Each target's hint.
    hints: Vec<Option<NodeId>>,
    w: usize,
    attempt: Duration,
    phase: Phase,
    /// Coordinators replaced for being slow that may still answer.
    late: Vec<NodeId>,
    /// Nodes of the extended list not yet used: each takes the place of a
    /// target that fails, with a hint for the home replica it replaces.
    spares: VecDeque<NodeId>,
    /// Targets that failed (their place went to a spare, if any).
    dead: Vec<NodeId>,
    acks: Vec<NodeId>,
    failures: Vec<(NodeId, NodeFailure)>,
    deadline: Instant,
    outbox: VecDeque<Outbound>,
    outcome: Option<Result<PutOutcome, MachineError>>,
    /// The outcome is decided.
    done: bool,
    /// The outcome was a success (replication may go on).
    succeeded: bool,
    /// The deadline passed: stop waiting for replicas.
    expired: bool,
}

impl PutMachine {
    /// Starts a put to `targets` (falling back on `spares`) needing `w`
    /// acknowledgements
    /// within `timeout`, giving each coordinator `attempt` to answer before
    /// the next home replica is asked.
    pub fn new(
        now: Instant,
        request: PutRequest,
        targets: &[Target],
        spares: &[NodeId],
        w: usize,
        timeout: Duration,
        attempt: Duration,
    ) -> Self {
        let mut m = Self {
            request,
            home: targets.iter().map(|t| t.node).collect(),
            hints: targets.iter().map(|t| t.hint).collect(),
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
            done: false,
            succeeded: false,
            expired: false,
        };
        m.ask_coordinator(now, 0);
        m
    }

    fn ask_coordinator(&mut self, now: Instant, index: usize) {
        let Some(&node) = self.home.get(index) else {
            if self.late.is_empty() {
                return self.fail(false);
            }
            self.phase = Phase::Coordinating {
                index: self.home.len(),
                until: self.deadline,
            };
            return;
        };
        self.phase = Phase::Coordinating {
            index,
            until: (now + self.attempt).min(self.deadline),
        };
        let r = &self.request;
        self.outbox.push_back(Outbound {
            node,
            deadline: self.deadline,
            request: Request::Put {
                store: r.store.clone(),
                key: r.key.clone(),
                value: r.value.clone(),
                context: r.context.clone(),
                hint: self.hints[index],
            },
        });
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

    fn replicate(&mut self, node: NodeId, hint: Option<NodeId>, object: &Object) {
        self.outbox.push_back(Outbound {
            node,
            deadline: self.deadline,
            request: Request::Replicate {
                store: self.request.store.clone(),
                key: self.request.key.clone(),
                object: object.clone(),
                hint,
            },
        });
    }

    fn fail(&mut self, timed_out: bool) {
        self.outcome = Some(Err(QuorumError {
            operation: "put",
            needed: self.w,
            succeeded: self.acks.len(),
            failures: self.failures.clone(),
            timed_out,
        }
        .into()));
        self.done = true;
    }

    fn check(&mut self) {
        if self.done {
            return;
        }
        let Phase::Replicating { object, pending } = &self.phase else {
            return;
        };
        if self.acks.len() >= self.w {
            self.succeeded = true;
            self.outcome = Some(Ok(PutOutcome {
                object: object.clone(),
                stored_on: self.acks.clone(),
            }));
            self.done = true;
        } else if self.acks.len() + pending.len() < self.w {
            self.fail(false);
        }
    }
}

impl Machine for PutMachine {
    type Outcome = PutOutcome;

    fn poll_send(&mut self) -> Option<Outbound> {
        self.outbox.pop_front()
    }

    fn handle_reply(&mut self, now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
        // After a successful outcome the machine keeps placing replicas:
        // a late replication failure still gets a stand-in, so the write
        // reaches N nodes and not just W.
        let replicating = matches!(self.phase, Phase::Replicating { .. });
        if self.done && !(replicating && self.succeeded) {
            return;
        }
        if let Err(failure) = &reply {
            if failure.is_request_error() {
                if let NodeFailure::Refused(e) = failure {
                    self.outcome = Some(Err(MachineError::Rejected(e.code, e.message.clone())));
                    self.done = true;
                }
                return;
            }
        }
        match &mut self.phase {
            Phase::Coordinating { index, .. } => {
                let index = *index;
                let current = self.home.get(index) == Some(&node);
                let was_late = self.late.contains(&node);
                if !current && !was_late {
                    return; // not a coordinator we wait for
                }
                self.late.retain(|&n| n != node);
                if !current && reply.is_err() {
                    // A replaced coordinator failed after all; its timeout
                    // is recorded. Give up if nobody else can answer.
                    if index >= self.home.len() && self.late.is_empty() {
                        self.fail(false);
                    }
                    return;
                }
                match reply {
                    Ok(Reply::Stored(object)) => {
                        self.acks.push(node);
                        let others: Vec<(NodeId, Option<NodeId>)> = self
                            .home
                            .iter()
                            .zip(&self.hints)
                            // Not the coordinator, nor a failed target, nor
                            // a stand-in for the coordinator itself (a slow
                            // coordinator that answered late holds it).
                            .filter(|(&n, &h)| {
                                n != node && !self.dead.contains(&n) && h != Some(node)
                            })
                            .map(|(&n, &h)| (n, h))
                            .collect();
                        for &(other, hint) in &others {
                            self.replicate(other, hint, &object);
                        }
                        let others: Vec<NodeId> = others.into_iter().map(|(n, _)| n).collect();
                        self.phase = Phase::Replicating {
                            object,
                            pending: others,
                        };
                        self.check();
                    }
                    other => {
                        let failure = other
                            .map(|r| NodeFailure::Unexpected(format!("{r:?}")))
                            .unwrap_or_else(|f| f);
                        self.failures.push((node, failure));
                        self.substitute(node);
                        self.ask_coordinator(now, index + 1);
                    }
                }
            }
            Phase::Replicating { pending, object } => {
                let Some(pos) = pending.iter().position(|&n| n == node) else {
                    return;
                };
                // A replaced coordinator's late answer to its `Put` is not
                // an answer to our `Replicate`: only a copy that covers the
                // replicated object counts.
                if let Ok(Reply::Stored(held)) = &reply {
                    if !(object.less(held) || object.equal_history(held)) {
                        return;
                    }
                }
                pending.swap_remove(pos);
                let object = object.clone();
                let failure = match reply {
                    Ok(Reply::Stored(_)) => {
                        self.acks.push(node);
                        None
                    }
                    Ok(other) => Some(NodeFailure::Unexpected(format!("{other:?}"))),
                    Err(f) => Some(f),
                };
                if let Some(failure) = failure {
                    self.failures.push((node, failure));
                    if let Some((spare, home)) = self.substitute(node) {
                        self.replicate(spare, Some(home), &object);
                        if let Phase::Replicating { pending, .. } = &mut self.phase {
                            pending.push(spare);
                        }
                    }
                }
                self.check();
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline {
            self.expired = true;
        }
        if self.done {
            return;
        }
        if now >= self.deadline {
            return self.fail(true);
        }
        if let Phase::Coordinating { index, until } = self.phase {
            if now >= until && index < self.home.len() {
                let slow = self.home[index];
                self.late.push(slow);
                // Placed like a failed one: a spare takes its replica role.
                self.substitute(slow);
                let failure = NodeFailure::Unreachable(format!(
                    "no answer as coordinator within {:?}",
                    self.attempt
                ));
                self.failures.push((self.home[index], failure));
                self.ask_coordinator(now, index + 1);
            }
        }
    }

    fn poll_timeout(&self) -> Instant {
        match self.phase {
            Phase::Coordinating { until, .. } => until.min(self.deadline),
            Phase::Replicating { .. } => self.deadline,
        }
    }

    fn poll_outcome(&mut self) -> Option<Result<PutOutcome, MachineError>> {
        self.outcome.take()
    }

    fn poll_finished(&self) -> bool {
        let replicating = match &self.phase {
            Phase::Replicating { pending, .. } => !pending.is_empty(),
            Phase::Coordinating { .. } => false,
        };
        self.done && self.outbox.is_empty() && (!replicating || !self.succeeded || self.expired)
    }
}
