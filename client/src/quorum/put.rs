//! The put machine: one coordinator, then replication, success at `W`.
//!
//! The first home replica coordinates: it assigns the new dot and returns the
//! resulting object, which is then replicated to the other home replicas. A
//! coordinator that fails is replaced by the next home replica. The put
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
    /// Waiting for the coordinator `home[index]`.
    Coordinating { index: usize },
    /// Replicating the coordinator's object; waiting on `pending`.
    Replicating { object: Object, pending: Vec<NodeId> },
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
    phase: Phase,
    acks: Vec<NodeId>,
    failures: Vec<(NodeId, NodeFailure)>,
    deadline: Instant,
    outbox: VecDeque<Outbound>,
    outcome: Option<Result<PutOutcome, MachineError>>,
    done: bool,
}

impl PutMachine {
    /// Starts a put to the `home` replicas needing `w` acknowledgements
    /// within `timeout`.
    pub fn new(
        now: Instant,
        request: PutRequest,
        home: &[NodeId],
        w: usize,
        timeout: Duration,
    ) -> Self {
        let mut m = Self {
            request,
            home: home.to_vec(),
            w,
            phase: Phase::Coordinating { index: 0 },
            acks: Vec::new(),
            failures: Vec::new(),
            deadline: now + timeout,
            outbox: VecDeque::new(),
            outcome: None,
            done: false,
        };
        m.ask_coordinator(0);
        m
    }

    fn ask_coordinator(&mut self, index: usize) {
        let Some(&node) = self.home.get(index) else {
            return self.fail(false);
        };
        self.phase = Phase::Coordinating { index };
        let r = &self.request;
        self.outbox.push_back(Outbound {
            node,
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

    fn handle_reply(&mut self, _now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
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
            Phase::Coordinating { index } => {
                if self.home.get(*index) != Some(&node) {
                    return; // not the coordinator we are waiting for
                }
                let index = *index;
                match reply {
                    Ok(Reply::Stored(object)) => {
                        self.acks.push(node);
                        let others: Vec<NodeId> =
                            self.home.iter().copied().filter(|&n| n != node).collect();
                        for &other in &others {
                            self.outbox.push_back(Outbound {
                                node: other,
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
                        self.ask_coordinator(index + 1);
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
        if !self.done && now >= self.deadline {
            self.fail(true);
        }
    }

    fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    fn poll_outcome(&mut self) -> Option<Result<PutOutcome, MachineError>> {
        self.outcome.take()
    }
}
