//! The put's first phase: finding a coordinator.
//!
//! Home replicas are asked in turn; one that fails or stays silent past its
//! attempt is replaced by the next (and its replica role by a spare), and a
//! replaced one that answers late is welcome. The first object stored by a
//! coordinator moves the put on to replication.

use super::{Phase, PutMachine};
use crate::quorum::{NodeFailure, Outbound};
use quire_shared::wire::{Reply, Request};
use quire_shared::NodeId;
use std::time::Instant;

impl PutMachine {
    /// Asks `home[index]` to coordinate; past the last one, waits for a
    /// replaced coordinator's late answer, or fails when none can come.
    pub(super) fn ask_coordinator(&mut self, now: Instant, index: usize) {
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

    /// A coordinator (the current one, or a replaced one answering late)
    /// answered the `Put`; `index` is the current coordinator's.
    pub(super) fn coordinator_answered(
        &mut self,
        now: Instant,
        index: usize,
        node: NodeId,
        reply: Result<Reply, NodeFailure>,
    ) {
        let current = self.home.get(index) == Some(&node);
        let was_late = self.late.contains(&node);
        if !current && !was_late {
            return; // not a coordinator we wait for
        }
        self.late.retain(|&n| n != node);
        if !current && reply.is_err() {
            // A replaced coordinator failed after all; its timeout is
            // recorded. Give up if nobody else can answer.
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
                    // Not the coordinator, nor a failed target, nor a
                    // stand-in for the coordinator itself (a slow
                    // coordinator that answered late holds it).
                    .filter(|(&n, &h)| n != node && !self.dead.contains(&n) && h != Some(node))
                    .map(|(&n, &h)| (n, h))
                    .collect();
                for &(other, hint) in &others {
                    self.replicate(other, hint, &object);
                }
                let pending = others.into_iter().map(|(n, _)| n).collect();
                self.phase = Phase::Replicating { object, pending };
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

    /// The coordinator `home[index]` did not answer within its attempt:
    /// the next one is asked, and the slow one may still answer late.
    pub(super) fn coordinator_slow(&mut self, now: Instant, index: usize) {
        let slow = self.home[index];
        self.late.push(slow);
        // Placed like a failed one: a spare takes its replica role.
        self.substitute(slow);
        let failure = NodeFailure::Unreachable(format!(
            "no answer as coordinator within {:?}",
            self.attempt
        ));
        self.failures.push((slow, failure));
        self.ask_coordinator(now, index + 1);
    }
}
