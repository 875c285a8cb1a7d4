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

    /// Decides once `W` is reached (among the future home replicas too,
    /// while that can be) or out of reach; once drained, finishes.
    pub(super) fn check(&mut self) {
        let needed = self.decision.needed();
        let (acked, awaited) = self.current_tally();
        match &self.phase {
            Phase::Replicating { .. } if acked >= needed && self.future_settled() => {
                self.succeed(true);
            }
            Phase::Replicating { .. } if acked + awaited < needed => self.fail(false),
            Phase::Draining { pending, .. } if pending.is_empty() => self.phase = Phase::Finished,
            _ => {}
        }
    }

    /// Gives the successful outcome and moves on: to draining what is
    /// still awaited if `drain` (and anything is), else to `Finished`.
    pub(super) fn succeed(&mut self, drain: bool) {
        let Phase::Replicating { object, pending } = &mut self.phase else {
            debug_assert!(false, "succeeding while not replicating");
            return;
        };
        let mut stored_on = self.acks.clone();
        stored_on.extend(&self.incoming_acks);
        let outcome = PutOutcome {
            object: object.clone(),
            stored_on,
        };
        let next = if drain && !pending.is_empty() {
            Phase::Draining {
                object: std::mem::take(object),
                pending: std::mem::take(pending),
            }
        } else {
            Phase::Finished
        };
        self.decide(Ok(outcome), next);
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
        let incoming = self.is_incoming(node);
        let failure = match reply {
            Ok(Reply::Stored(_)) if incoming => {
                self.incoming_acks.push(node);
                None
            }
            Ok(Reply::Stored(_)) => {
                self.acks.push(node);
                None
            }
            Ok(other) => Some(NodeFailure::Unexpected(format!("{other:?}"))),
            Err(f) => Some(f),
        };
        if let Some(failure) = failure {
            self.decision.record(node, failure);
            // An incoming replica has no stand-in: its copy is made up
            // for by the transfer's closing exchange.
            if incoming {
                return self.check();
            }
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
