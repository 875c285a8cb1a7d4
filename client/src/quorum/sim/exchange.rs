//! Anti-entropy in a world: passes of the SDK's own exchange
//! ([`crate::repair::exchange`]) over every partition, run as a task
//! ([`super::tasks`]) over the simulated network.
//!
//! A pass exchanges every partition of the world's store between its home
//! replicas under the membership of the pass's start, in order. The
//! maintenance client runs passes during the faults (when the world draws
//! them) and in every repair round (when the world repairs by exchange).
//! An exchange of a pass begun after the faults stopped must complete.

use super::tasks::TaskEnd;
use super::world::World;
use crate::repair::{exchange, Exchanged, RepairReport};
use quire_shared::Member;

/// The anti-entropy pass under way.
#[derive(Clone, Copy, Debug)]
pub struct ExchangePass {
    /// Whether faults were over when it began.
    pub calm: bool,
}

impl World {
    /// Starts a pass by the maintenance client (unless one runs).
    pub(super) fn start_exchanges(&mut self) -> Result<(), String> {
        if self.exchanges.is_some() {
            return Ok(());
        }
        trace!(self, "exchange pass starts");
        let over = self.over_line();
        let (replicas, doc) = (over.clone(), self.doc.clone());
        let pass = async move {
            let store = doc.stores[0].clone();
            let mut done = Vec::new();
            for partition in 0..doc.partitions {
                let homes: Vec<Member> = doc
                    .preference_list_of(partition, usize::from(store.n))
                    .iter()
                    .filter_map(|id| doc.member(*id).cloned())
                    .collect();
                let mut report = RepairReport::default();
                let e = exchange(&replicas, &store, partition, &homes, None, &mut report).await;
                replicas.line.note(format!(
                    "partition {partition} exchanged: {} segments differ, {} keys repaired, complete {}",
                    report.segments_differing, report.keys_repaired, e.complete
                ));
                done.push((partition, e, report));
            }
            TaskEnd::Exchanges(done)
        };
        let calm = !self.chaos;
        self.spawn_task(&over, pass, move |w, _| {
            w.exchanges = Some(ExchangePass { calm });
        })
    }

    /// The pass ended: counts, and the check that an exchange begun after
    /// the faults stopped completed.
    pub(super) fn exchanges_ended(
        &mut self,
        _task: u64,
        done: Vec<(u32, Exchanged, RepairReport)>,
    ) -> Result<(), String> {
        let calm = self.exchanges.take().is_some_and(|p| p.calm);
        trace!(self, "exchange pass ends");
        for (partition, exchanged, report) in done {
            self.stats.exchanges += 1;
            self.stats.exchange_repairs += report.keys_repaired;
            if calm && !exchanged.complete {
                return Err(format!(
                    "partition {partition}'s exchange did not complete with the faults over: {:?}",
                    report.unreachable
                ));
            }
        }
        Ok(())
    }
}
