//! The get machine: ask every home replica, succeed at `R` answers.
//!
//! All `N` home replicas are asked at once (as Dynamo does) so a slow or dead
//! replica costs nothing while `R` others answer; the answers are synced into
//! one object whose values are the siblings.

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
    /// Each answering replica's own copy, for read repair.
    pub replies: Vec<(NodeId, Option<Object>)>,
}

/// Coordinates one get.
pub struct GetMachine {
    r: usize,
    asked: usize,
    deadline: Instant,
    outbox: VecDeque<Outbound>,
    replies: Vec<(NodeId, Option<Object>)>,
    failures: Vec<(NodeId, NodeFailure)>,
    outcome: Option<Result<GetOutcome, MachineError>>,
    done: bool,
}

impl GetMachine {
    /// Starts a get of `key` in `store` from the `home` replicas, needing
    /// `r` answers within `timeout`.
    pub fn new(
        now: Instant,
        store: &str,
        key: &[u8],
        home: &[NodeId],
        r: usize,
        timeout: Duration,
    ) -> Self {
        let deadline = now + timeout;
        let outbox = home
            .iter()
            .map(|&node| Outbound {
                node,
                deadline,
                request: Request::Get {
                    store: store.to_string(),
                    key: key.to_vec(),
                },
            })
            .collect();
        let mut m = Self {
            r,
            asked: home.len(),
            deadline: now + timeout,
            outbox,
            replies: Vec::new(),
            failures: Vec::new(),
            outcome: None,
            done: false,
        };
        m.check();
        m
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
        self.done = true;
    }

    fn check(&mut self) {
        if self.done {
            return;
        }
        if self.replies.len() >= self.r {
            let object = self
                .replies
                .iter()
                .filter_map(|(_, o)| o.as_ref())
                .fold(Object::new(), |acc, o| acc.sync(o));
            self.outcome = Some(Ok(GetOutcome {
                object,
                replies: self.replies.clone(),
            }));
            self.done = true;
        } else if self.asked - self.failures.len() < self.r {
            self.fail(false);
        }
    }
}

impl Machine for GetMachine {
    type Outcome = GetOutcome;

    fn poll_send(&mut self) -> Option<Outbound> {
        if self.done {
            return None;
        }
        self.outbox.pop_front()
    }

    fn handle_reply(&mut self, _now: Instant, node: NodeId, reply: Result<Reply, NodeFailure>) {
        if self.done {
            return;
        }
        match reply {
            Ok(Reply::Object(object)) => self.replies.push((node, object)),
            Ok(other) => self
                .failures
                .push((node, NodeFailure::Unexpected(format!("{other:?}")))),
            Err(failure) if failure.is_request_error() => {
                if let NodeFailure::Refused(e) = failure {
                    self.outcome = Some(Err(MachineError::Rejected(e.code, e.message)));
                    self.done = true;
                }
                return;
            }
            Err(failure) => self.failures.push((node, failure)),
        }
        self.check();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if !self.done && now >= self.deadline {
            self.fail(true);
        }
    }

    fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    fn poll_outcome(&mut self) -> Option<Result<GetOutcome, MachineError>> {
        self.outcome.take()
    }
}
