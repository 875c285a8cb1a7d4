//! The put's second phase: replicating the coordinator's object.
//!
//! Every other target gets the object; a replica that fails is replaced by
//! a spare with a hint. The put succeeds at `W` copies (or fails once `W`
//! is out of reach), then keeps placing the rest until they answer or the
//! deadline passes.

use super::{Phase, PutMachine, PutOutcome};
use crate::quorum::targets::Target;
use crate::quorum::{NodeFailure, Outbound};
use quire_shared::wire::{Reply, Request};
use quire_shared::{NodeId, Object};

impl PutMachine {
    /// Sends the coordinator's object to `target` (a stand-in with its
    /// hint).
    pub(super) fn replicate(&mut self, target: Target, object: &Object) {
        let Target { node, hint } = target;
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

    /// Decides once `W` is reached or out of reach; once drained, finishes.
    pub(super) fn check(&mut self) {
        match &mut self.phase {
            Phase::Replicating { object, pending } if self.acks.len() >= self.decision.needed() => {
                let outcome = PutOutcome {
                    object: object.clone(),
                    stored_on: self.acks.clone(),
                };
                let next = if pending.is_empty() {
                    Phase::Finished
                } else {
                    Phase::Draining {
                        object: std::mem::take(object),
                        pending: std::mem::take(pending),
                    }
                };
                self.decide(Ok(outcome), next);
            }
            Phase::Replicating { pending, .. }
                if self.acks.len() + pending.len() < self.decision.needed() =>
            {
                self.fail(false);
            }
            Phase::Draining { pending, .. } if pending.is_empty() => self.phase = Phase::Finished,
            _ => {}
        }
    }

    /// A replica answered the `Replicate` (or, late, a `Put`).
    pub(super) fn replica_answered(&mut self, node: NodeId, reply: Result<Reply, NodeFailure>) {
        let (Phase::Replicating { pending, object } | Phase::Draining { pending, object }) =
            &mut self.phase
        else {
            return;
        };
        let Some(pos) = pending.iter().position(|&n| n == node) else {
            return;
        };
        // A replaced coordinator's late answer to its `Put` is not an
        // answer to our `Replicate`: only a copy that covers the
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
            self.decision.record(node, failure);
            if let Some(spare) = self.roster.substitute(node) {
                self.replicate(spare, &object);
                if let Some(pending) = self.phase.pending_mut() {
                    pending.push(spare.node);
                }
            }
        }
        self.check();
    }
}
