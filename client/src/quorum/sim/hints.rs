//! Hint delivery in a world: the SDK's own pass
//! ([`crate::maintain::deliver_all`]), run as a task ([`super::tasks`])
//! over the simulated network.
//!
//! For every (holder, target) pair of members: page through the hints the
//! holder keeps for the target, replicate each one home (or, when the
//! target no longer holds the key after a membership change, to the key's
//! home replicas now), and ask the holder to drop what was delivered by
//! the clock of the copy delivered (it keeps any hint written since it was
//! read: `hint_delivered`, run by the node model). Pages are two hints
//! long here, so paging and its cursor are exercised.

use super::tasks::TaskEnd;
use super::world::World;
use crate::maintain::{deliver_all, MaintenanceReport};

/// Hints asked for per page.
const PAGE: u32 = 2;

impl World {
    /// Starts a hint-delivery pass by the maintenance client, unless one
    /// runs (or a knob turned delivery off).
    pub(super) fn start_pass(&mut self) -> Result<(), String> {
        if self.knobs.skip_hint_delivery || self.hint_pass.is_some() {
            return Ok(());
        }
        trace!(self, "hint pass starts");
        let over = self.over_line();
        let (replicas, doc) = (over.clone(), self.doc.clone());
        let pass = async move { TaskEnd::Hints(deliver_all(&replicas, &doc, PAGE).await) };
        self.spawn_task(&over, pass, |w, id| w.hint_pass = Some(id))
    }

    /// The pass ended.
    pub(super) fn hints_ended(&mut self, report: MaintenanceReport) -> Result<(), String> {
        self.hint_pass = None;
        trace!(
            self,
            "hint pass ends: {} delivered, {} pending",
            report.hints_delivered,
            report.hints_pending
        );
        self.stats.hints_delivered += report.hints_delivered;
        Ok(())
    }
}
