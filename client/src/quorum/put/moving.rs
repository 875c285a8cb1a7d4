//! A put whose key's partition a committed change is moving: a joint
//! quorum, as Raft's joint consensus has one for its configurations.
//!
//! While a change is pending, clients that have seen its flip read from
//! the owners to come, while clients that have not may still write to the
//! current ones. A write acknowledged by `W` current home replicas can
//! then be missed by an `R` read of the future ones: acknowledged by an
//! outgoing replica and by one that stays, while the other staying replica
//! and the incoming one have not got it yet. So the put also sends the
//! object to the incoming home replicas and succeeds only once `W` of its
//! copies stand for future home replicas as well as `W` for current ones.
//! `R + W > N` then holds on both sides of the flip.
//!
//! The future quorum never makes a write fail: when it can no longer be
//! reached (incoming replicas down or refusing, say a node that has not
//! learnt the change yet), the put succeeds on the current quorum alone,
//! as before, and the transfer's closing exchange brings the incoming
//! replica up to date before the flip.

use super::{Phase, PutMachine};
use crate::quorum::targets::Target;
use quire_shared::{Membership, NodeId};

/// The key's home replicas that a pending change swaps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moving {
    /// Home replicas now that are not after the change: their copies count
    /// towards the current quorum only.
    pub outgoing: Vec<NodeId>,
    /// Home replicas after the change that are not now: sent the object
    /// and waited for, as part of the future quorum.
    pub incoming: Vec<NodeId>,
    /// Incoming home replicas the client believes down: sent the object
    /// (they may be back), not waited for.
    pub incoming_down: Vec<NodeId>,
}

impl Moving {
    /// The swap for `partition` (with `n` replicas) under `doc`, with
    /// incoming replicas sorted by `is_up`. `None` when nothing moves the
    /// partition, which is almost always.
    pub fn of(
        doc: &Membership,
        partition: u32,
        n: usize,
        is_up: impl Fn(NodeId) -> bool,
    ) -> Option<Self> {
        doc.pending.as_ref()?;
        let (incoming, incoming_down) = doc
            .incoming(partition, n)
            .into_iter()
            .partition(|&id| is_up(id));
        let moving = Moving {
            outgoing: doc.outgoing(partition, n),
            incoming,
            incoming_down,
        };
        (moving != Moving::default()).then_some(moving)
    }

    /// True when `node` is an incoming home replica, up or not.
    pub fn is_incoming(&self, node: NodeId) -> bool {
        self.incoming.contains(&node) || self.incoming_down.contains(&node)
    }

    /// Every incoming home replica.
    pub fn all_incoming(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.incoming.iter().chain(&self.incoming_down).copied()
    }
}

impl PutMachine {
    /// The home replica a roster node's copy stands for: itself, or the
    /// one its hint names.
    fn stands_for(&self, node: NodeId) -> NodeId {
        self.roster
            .find(node)
            .map_or(node, |t: Target| t.hint.unwrap_or(t.node))
    }

    /// True when a copy on `node` counts towards the future quorum.
    fn counts_after(&self, node: NodeId) -> bool {
        match &self.moving {
            None => true,
            Some(m) if m.is_incoming(node) => true,
            Some(m) => !m.outgoing.contains(&self.stands_for(node)),
        }
    }

    /// Copies that stand for current home replicas: acknowledged, and
    /// still awaited (incoming replicas are neither).
    pub(super) fn current_tally(&self) -> (usize, usize) {
        let pending = self.awaited().filter(|n| !self.is_incoming(*n)).count();
        (self.acks.len(), pending)
    }

    /// Copies that stand for future home replicas: acknowledged, and
    /// still awaited (incoming replicas believed down are not waited for).
    pub(super) fn future_tally(&self) -> (usize, usize) {
        let acked = self
            .acks
            .iter()
            .chain(&self.incoming_acks)
            .filter(|n| self.counts_after(**n))
            .count();
        let down = |n: NodeId| {
            self.moving
                .as_ref()
                .is_some_and(|m| m.incoming_down.contains(&n))
        };
        let pending = self
            .awaited()
            .filter(|&n| self.counts_after(n) && !down(n))
            .count();
        (acked, pending)
    }

    /// True when the future quorum is reached, or can no longer be.
    pub(super) fn future_settled(&self) -> bool {
        let (acked, pending) = self.future_tally();
        let needed = self.decision.needed();
        acked >= needed || acked + pending < needed
    }

    /// True when `node` is one of the key's incoming home replicas.
    pub(super) fn is_incoming(&self, node: NodeId) -> bool {
        self.moving.as_ref().is_some_and(|m| m.is_incoming(node))
    }

    /// Nodes still awaited while replicating or draining.
    fn awaited(&self) -> impl Iterator<Item = NodeId> + '_ {
        let pending: &[NodeId] = match &self.phase {
            Phase::Replicating { pending, .. } | Phase::Draining { pending, .. } => pending,
            Phase::Coordinating { .. } | Phase::Finished => &[],
        };
        pending.iter().copied()
    }
}
