//! Membership change in a world: during the faults a node joins, a member
//! leaves, or a node replaces a member.
//!
//! At the world's chosen moment the change is committed (the membership's
//! own `plan`), and from then on, as in a cluster:
//!
//! - a put also sends its object to the key's incoming replicas and waits
//!   for `W` among the owners to come as well, as the SDK's put machine
//!   does ([`crate::quorum::put::Moving`]);
//! - nodes take writes and reads for keys they are home or incoming
//!   replicas of, and refuse the rest (`NotOwner`);
//! - the maintenance client moves the data with the SDK's own transfer
//!   code ([`crate::change`]'s pages, slots and progress marks) as a task
//!   ([`super::tasks`]), and once every transfer is done, runs each moving
//!   partition's closing exchange between its current and incoming
//!   replicas; when all complete, the change flips (a new epoch, the
//!   pending owners own);
//! - after the flip, old owners' copies are handed off and dropped, with
//!   the SDK's own `hand_off_and_drop`.
//!
//! One liberty is taken: every node and client learns a new membership
//! the moment it is written (a cluster spreads it with every response).
//! Requests planned on the old document still arrive after a flip, and
//! are refused as in a cluster.

use super::config::ChangeKind;
use super::tasks::{OverLine, TaskEnd};
use super::world::{lists_of, member, World};
use crate::change::{
    closing_nodes, hand_off_and_drop, progress_of, run_transfer, Pacer, Stalled, TransferPace,
};
use crate::repair::{exchange, RepairReport, Replicas};
use quire_shared::{Change, NodeId};
use std::collections::BTreeSet;

/// Transfer pages the maintenance client copies per tick while faults
/// last (scan pages hold one key in a world).
pub const PAGES_PER_TICK: usize = 2;

/// What a moves task did.
pub struct MovesEnd {
    /// The change it worked on.
    change: u64,
    /// Keys copied by transfers.
    keys: u64,
    /// True when every transfer was done and every closing exchange
    /// complete: the change may flip.
    closed: bool,
}

impl World {
    /// The world's change is committed: the node outside the first
    /// membership joins or replaces a member, or a member leaves.
    pub(super) fn commit_change(&mut self) -> Result<(), String> {
        let Some((_, kind)) = self.cfg.change else {
            return Ok(());
        };
        let spare = NodeId(self.nodes.len() as u64);
        let some_member = |w: &mut World| w.doc.members[w.rng.index(w.cfg.nodes)].id;
        let change = match kind {
            ChangeKind::Join => Change::Join(member(spare)),
            ChangeKind::Leave => Change::Leave(some_member(self)),
            ChangeKind::Replace => Change::Replace {
                old: some_member(self),
                new: member(spare),
            },
        };
        let planned = self
            .doc
            .plan(std::slice::from_ref(&change))
            .map_err(|e| format!("planning {change:?}: {e}"))?;
        trace!(
            self,
            "{change:?} committed: epoch {}, {} transfers",
            planned.epoch,
            planned.transfers().len()
        );
        self.doc = planned;
        self.stats.changes += 1;
        Ok(())
    }

    /// Starts a moves task for the pending change (unless one runs): the
    /// transfers, at most `pages` pages in all (the maintenance loop's
    /// rate limit, in pages of a key each here, so a move spans many ticks
    /// of the faults), then, if all are done, the closing exchanges.
    pub(super) fn start_moves(&mut self, pages: usize) -> Result<(), String> {
        let Some(change) = self.doc.pending.as_ref().map(|p| p.since) else {
            return Ok(());
        };
        if self.moves.is_some() {
            return Ok(());
        }
        trace!(self, "moves start");
        let over = self.over_line();
        let (replicas, doc) = (over.clone(), self.doc.clone());
        let task = async move {
            let mut keys = 0;
            let mut budget = pages;
            // The simulation's pages are bounded by keys, and unpaced.
            let pacer = Pacer::new(TransferPace::UNLIMITED);
            for t in doc.transfers() {
                match run_transfer(&replicas, &doc, &t, (change, &pacer), &mut budget).await {
                    Ok(k) => keys += k,
                    Err(Stalled::Waiting(why) | Stalled::Failed(why)) => {
                        replicas
                            .line
                            .note(format!("transfer of p{}: {why}", t.partition));
                    }
                }
            }
            let mut done = true;
            for t in doc.transfers() {
                let p = progress_of(&replicas, &doc, &t).await;
                done &= p.is_ok_and(|p| p.change == change && p.done);
            }
            let closed = done && close(&replicas, &doc).await;
            TaskEnd::Moves(MovesEnd {
                change,
                keys,
                closed,
            })
        };
        self.spawn_task(&over, task, |w, id| w.moves = Some(id))
    }

    /// A moves task ended: the change flips if it closed.
    pub(super) fn moves_ended(&mut self, end: MovesEnd) -> Result<(), String> {
        self.moves = None;
        self.stats.keys_transferred += end.keys;
        let pending = self.doc.pending.as_ref().map(|p| p.since);
        trace!(
            self,
            "moves end: {} keys copied, closed {}",
            end.keys,
            end.closed
        );
        if !end.closed || pending != Some(end.change) {
            return Ok(());
        }
        let flipped = self.doc.flip().ok_or("a pending change did not flip")?;
        trace!(self, "the change flips: epoch {}", flipped.epoch);
        self.lists = lists_of(&flipped, self.lists.keys().cloned(), self.cfg.n);
        self.doc = flipped;
        self.stats.flips += 1;
        Ok(())
    }

    /// Starts a hand-off-and-drop task once a change has flipped (unless
    /// one runs, or the old copies are gone).
    pub(super) fn start_drops(&mut self) -> Result<(), String> {
        if self.stats.flips == 0 || self.drops.is_some() || self.dropped {
            return Ok(());
        }
        trace!(self, "drops start");
        let over = self.over_line();
        let (replicas, doc) = (over.clone(), self.doc.clone());
        let task = async move { TaskEnd::Drops(hand_off_and_drop(&replicas, &doc).await) };
        self.spawn_task(&over, task, |w, id| w.drops = Some(id))
    }

    /// A drop task ended.
    pub(super) fn drops_ended(&mut self, report: crate::change::DropReport) -> Result<(), String> {
        self.drops = None;
        trace!(
            self,
            "drops end: {} partitions, {} keys dropped, {} handed off, {} unreachable",
            report.partitions_dropped,
            report.keys_dropped,
            report.keys_handed_off,
            report.unreachable.len()
        );
        self.stats.partitions_dropped += report.partitions_dropped;
        self.dropped = report.unreachable.is_empty();
        Ok(())
    }
}

/// Every moving partition's closing exchange between its current and
/// incoming replicas; true when all completed.
async fn close(replicas: &OverLine, doc: &quire_shared::Membership) -> bool {
    let store = doc.stores[0].clone();
    let mut seen = BTreeSet::new();
    let mut complete = true;
    for t in doc.transfers() {
        if !seen.insert(t.partition) {
            continue;
        }
        let up = |id| replicas.believed_up(id);
        let nodes = closing_nodes(doc, &t, usize::from(store.n), up);
        let mut report = RepairReport::default();
        let e = exchange(replicas, &store, t.partition, &nodes, None, &mut report).await;
        replicas.line.note(format!(
            "closing exchange of p{}: {} keys repaired, complete {}",
            t.partition, report.keys_repaired, e.complete
        ));
        complete &= e.complete;
    }
    complete
}
