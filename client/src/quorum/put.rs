//! The put machine: one coordinator, then replication, success at `W`.
//!
//! The first home replica coordinates: it assigns the new dot and returns the
//! resulting object, which is then replicated to the other home replicas. A
//! coordinator that fails, or does not answer within the attempt timeout, is
//! replaced by the next home replica; if a replaced coordinator answers
//! late, its object is used all the same (it may then hold the value as a
//! sibling of the replacement's, which a read shows and a resolver folds —
//! Dynamo's behaviour when coordinators change mid-write). The put
//! succeeds once `W` replicas (coordinator included) have stored the object;
//! replication to the rest carries on in the background.

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
    home: Vec<NodeId>,
    w: usize,
    attempt: Duration,
    phase: Phase,
    /// Coordinators replaced for being slow that may still answer.
    late: Vec<NodeId>,
    acks: Vec<NodeId>,
    failures: Vec<(NodeId, NodeFailure)>,
    deadline: Instant,
    outbox: VecDeque<Outbound>,
    outcome: Option<Result<PutOutcome, MachineError>>,
    done: bool,
}

impl PutMachine {
    /// Starts a put to the `home` replicas needing `w` acknowledgements
    /// within `timeout`, giving each coordinator `attempt` to answer before
    /// the next home replica is asked.
    pub fn new(
        now: Instant,
        request: PutRequest,
        home: &[NodeId],
        w: usize,
        timeout: Duration,
        attempt: Duration,
    ) -> Self {
        let mut m = Self {
            request,
            home: home.to_vec(),
            w,
            attempt,
            phase: Phase::Coordinating {
                index: 0,
                until: now + attempt,
            },
            acks: Vec::new(),
            late: Vec::new(),
            failures: Vec::new(),
            deadline: now + timeout,
            outbox: VecDeque::new(),
            outcome: None,
            done: false,
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
        let Phase::Replicating { object, pending } = &self.phase else {
            return;
        };
        if self.acks.len() >= self.w {
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
        if self.done {
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
                        let others: Vec<NodeId> =
                            self.home.iter().copied().filter(|&n| n != node).collect();
                        for &other in &others {
                            self.outbox.push_back(Outbound {
                                node: other,
                                deadline: self.deadline,
                                request: Request::Replicate {
                                    store: self.request.store.clone(),
                                    key: self.request.key.clone(),
                                    object: object.clone(),
                                    hint: None,
                                },
                            });
                        }
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
                        self.ask_coordinator(now, index + 1);
                    }
                }
            }
            Phase::Replicating { pending, .. } => {
                let Some(pos) = pending.iter().position(|&n| n == node) else {
                    return;
                };
                pending.swap_remove(pos);
                match reply {
                    Ok(Reply::Stored(_)) => self.acks.push(node),
                    Ok(other) => self
                        .failures
                        .push((node, NodeFailure::Unexpected(format!("{other:?}")))),
                    Err(f) => self.failures.push((node, f)),
                }
                self.check();
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if now >= self.deadline {
            return self.fail(true);
        }
        if let Phase::Coordinating { index, until } = self.phase {
            if now >= until && index < self.home.len() {
                self.late.push(self.home[index]);
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
}
