//! The get machine: ask every home replica, succeed at `R` answers, then
//! repair the replicas that were behind.
//!
//! All `N` home replicas are asked at once (as Dynamo does) so a slow or dead
//! replica costs nothing while `R` others answer; the answers are synced into
//! one object whose values are the siblings. The caller gets that outcome at
//! `R`; the machine keeps listening until every replica has answered (or the
//! deadline passes), syncs everything it heard, and sends the result to each
//! replica whose copy was missing or older: read repair (Dynamo §4.7).

use super::targets::Target;
use super::{Machine, MachineError, NodeFailure, Outbound, QuorumError};
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

/// Coordinates one get and its read repair.
pub struct GetMachine {
    store: String,
    key: Vec<u8>,
    r: usize,
    asked: usize,
    /// Targets that are not home replicas: never repaired.
    stand_ins: Vec<NodeId>,
    deadline: Instant,
    outbox: VecDeque<Outbound>,
    replies: Vec<(NodeId, Option<Object>)>,
    failures: Vec<(NodeId, NodeFailure)>,
    outcome: Option<Result<GetOutcome, MachineError>>,
    /// The outcome is decided (it may not be collected yet).
    decided: bool,
    /// Repairs are queued (or none are needed): nothing more to do.
    finished: bool,
    repairs: usize,
}

impl GetMachine {
    /// Starts a get of `key` in `store` from `targets`, needing `r`
    /// answers within `timeout`. Only home replicas (targets without a
    /// hint) are repaired: a stand-in keeps what it holds as a hint.
    pub fn new(
        now: Instant,
        store: &str,
        key: &[u8],
        targets: &[Target],
        r: usize,
        timeout: Duration,
    ) -> Self {
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
        let mut m = Self {
            store: store.to_string(),
            key: key.to_vec(),
            r,
            asked: targets.len(),
            stand_ins: targets
                .iter()
                .filter(|t| t.hint.is_some())
                .map(|t| t.node)
                .collect(),
            deadline,
            outbox,
            replies: Vec::new(),
            failures: Vec::new(),
            outcome: None,
            decided: false,
            finished: false,
            repairs: 0,
        };
        m.check();
        m
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

    fn fail(&mut self, timed_out: bool) {
        self.outcome = Some(Err(QuorumError {
            operation: "get",
            needed: self.r,
            succeeded: self.replies.len(),
            failures: self.failures.clone(),
            timed_out,
        }
        .into()));
        self.decided = true;
    }

    fn check(&mut self) {
        if !self.decided {
            if self.replies.len() >= self.r {
                self.outcome = Some(Ok(GetOutcome {
                    object: self.synced(),
                    replies: self.replies.clone(),
                }));
                self.decided = true;
            } else if self.asked - self.failures.len() < self.r {
                self.fail(false);
            }
        }
        if self.decided && self.replies.len() + self.failures.len() >= self.asked {
            self.repair();
        }
    }

    /// Queues the synced object for every replica that answered with less;
    /// replicas that did not answer are left to hinted handoff and
    /// anti-entropy.
    fn repair(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
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
        if self.finished {
            return; // answers to repairs: fire and forget
        }
        match reply {
            Ok(Reply::Object(object)) => self.replies.push((node, object)),
            Ok(other) => self
                .failures
                .push((node, NodeFailure::Unexpected(format!("{other:?}")))),
            Err(failure) if failure.is_request_error() && !self.decided => {
                // Every replica would refuse the same way: stop here.
                if let NodeFailure::Refused(e) = failure {
                    self.outcome = Some(Err(MachineError::Rejected(e.code, e.message)));
                }
                self.decided = true;
                self.finished = true;
                return;
            }
            Err(failure) => self.failures.push((node, failure)),
        }
        self.check();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        if !self.decided {
            self.fail(true);
        }
        // Whoever has not answered by now will not be repaired by this read.
        self.repair();
    }

    fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    fn poll_outcome(&mut self) -> Option<Result<GetOutcome, MachineError>> {
        self.outcome.take()
    }

    fn poll_finished(&self) -> bool {
        self.finished && self.outbox.is_empty()
    }
}
