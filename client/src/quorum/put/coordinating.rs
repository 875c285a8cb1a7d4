//! The put's first phase: finding a coordinator.
//!
//! Home replicas are asked in turn; one that fails or stays silent past its
//! attempt is replaced by the next (and its replica role by a spare), and a
//! replaced one that answers late is welcome. The first object stored by a
//! coordinator moves the put on to replication.

use super::{Phase, PutMachine};
use crate::quorum::targets::Target;
use crate::quorum::{NodeFailure, Outbound};
use quire_shared::wire::{Reply, Request};
use quire_shared::NodeId;
use std::time::Instant;

impl PutMachine {
    /// Asks `roster[index]` to coordinate; past the last one, waits for a
    /// replaced coordinator's late answer, or fails when none can come.
    pub(super) fn ask_coordinator(&mut self, now: Instant, index: usize) {
        let Some(Target { node, hint }) = self.roster.get(index) else {
            if self.late.is_empty() {
                return self.fail(false);
            }
            self.phase = Phase::Coordinating {
                index: self.roster.len(),
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
                hint,
            },
        });
    }

    /// A coordinator (the current one, or a replaced one answering late)
    /// answered the `Put`; `index` is the current coordinator's.
    pub(super) fn coordinator_answered(
        &mut self,
        now: Instant,
        index: usize,
        node: NodeId,
        reply: Result<Reply, NodeFailure>,
    ) {
        let current = self.roster.get(index).is_some_and(|t| t.node == node);
        let was_late = self.late.contains(&node);
        if !current && !was_late {
            return; // not a coordinator we wait for
        }
        self.late.retain(|&n| n != node);
        if !current && reply.is_err() {
            // A replaced coordinator failed after all; its timeout is
            // recorded. Give up if nobody else can answer.
            if index >= self.roster.len() && self.late.is_empty() {
                self.fail(false);
            }
            return;
        }
        match reply {
            Ok(Reply::Stored(object)) => {
                self.acks.push(node);
                let others: Vec<Target> = self
                    .roster
                    .iter()
                    // Not the coordinator, nor a failed target, nor a
                    // stand-in for the coordinator itself (a slow
                    // coordinator that answered late holds it).
                    .filter(|t| {
                        t.node != node && !self.roster.has_failed(t.node) && t.hint != Some(node)
                    })
                    .copied()
                    .collect();
                for &other in &others {
                    self.replicate(other, &object);
                }
                let mut pending: Vec<NodeId> = others.into_iter().map(|t| t.node).collect();
                let incoming: Vec<NodeId> =
                    self.moving.iter().flat_map(|m| m.all_incoming()).collect();
                for node in incoming {
                    self.replicate(Target { node, hint: None }, &object);
                    pending.push(node);
                }
                self.phase = Phase::Replicating { object, pending };
                self.check();
            }
            other => {
                let failure = other
                    .map(|r| NodeFailure::Unexpected(format!("{r:?}")))
                    .unwrap_or_else(|f| f);
                self.decision.record(node, failure);
                self.roster.substitute(node);
                self.ask_coordinator(now, index + 1);
            }
        }
    }

    /// The coordinator `roster[index]` did not answer within its attempt:
    /// the next one is asked, and the slow one may still answer late.
    pub(super) fn coordinator_slow(&mut self, now: Instant, index: usize) {
        let Some(Target { node: slow, .. }) = self.roster.get(index) else {
            return;
        };
        self.late.push(slow);
        // Placed like a failed one: a spare takes its replica role.
        self.roster.substitute(slow);
        let failure = NodeFailure::Unreachable(format!(
            "no answer as coordinator within {:?}",
            self.attempt
        ));
        self.decision.record(slow, failure);
        self.ask_coordinator(now, index + 1);
    }
}
