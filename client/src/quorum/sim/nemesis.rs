//! The nemesis: crashes, restarts, partitions and flushes while faults
//! last, and the end of faults.
//!
//! At random moments it crashes a node (a process crash, a power cut or a
//! lost disk; see [`super::node`]) and schedules its restart, cuts some
//! clients off from some nodes, or heals the cut. It never takes every
//! node down at once: a world where nothing can answer teaches nothing a
//! smaller outage does not. Buffered nodes flush on a shared tick, each
//! one skipping ticks at random, as flushers that are not in step would.

use super::network::Faults;
use super::node::Crash;
use super::trace::N;
use super::world::{Event, World};
use quire_shared::{Durability, NodeId};

/// Interval of the buffered nodes' flush tick.
const FLUSH_MS: u64 = 300;

impl World {
    /// Schedules what drives the world while faults last: each client's
    /// first operation, the nemesis, flushes, hint and anti-entropy passes,
    /// and the end.
    pub(super) fn begin(&mut self) {
        for c in 0..self.cfg.clients {
            self.schedule_tick(c);
        }
        if self.cfg.crashes || self.cfg.partitions {
            let at = self.rng.between(0, self.cfg.nemesis_gap_ms_max);
            self.agenda.push(at, Event::Nemesis);
        }
        if self.cfg.durability == Durability::Buffered {
            self.agenda.push(FLUSH_MS, Event::Flush);
        }
        self.agenda.push(self.cfg.hint_pass_ms, Event::HintTick);
        if let Some(gap) = self.cfg.exchange_pass_ms {
            self.agenda.push(gap, Event::ExchangeTick);
        }
        if let Some((at, _)) = self.cfg.change {
            self.agenda.push(at, Event::Change);
        }
        self.agenda.push(self.cfg.chaos_ms, Event::ChaosEnds);
    }

    /// The nemesis acts once, and plans its next act.
    pub(super) fn nemesis(&mut self) -> Result<(), String> {
        if !self.chaos {
            return Ok(());
        }
        let up: Vec<NodeId> = self.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
        let can_crash = self.cfg.crashes && up.len() > 1;
        let can_cut = self.cfg.partitions;
        if can_crash && (!can_cut || self.rng.chance(0.6)) {
            let node = up[self.rng.index(up.len())];
            let crash = if self.rng.chance(self.cfg.wipe_share) {
                Crash::Disk
            } else if self.cfg.durability == Durability::Buffered && self.rng.chance(0.5) {
                Crash::Power
            } else {
                Crash::Process
            };
            trace!(self, "{} crashes ({crash:?})", N(node));
            self.crash(node, crash);
            self.stats.crashes += 1;
            if crash != Crash::Process {
                self.stats.data_losses += 1;
            }
            let back = self.now_ms + self.rng.between(50, 3_000);
            self.agenda.push(back, Event::Restart(node));
        } else if can_cut && self.net.partitioned() {
            trace!(self, "partition heals");
            self.net.heal();
        } else if can_cut {
            self.cut();
        }
        let next = self.now_ms + self.rng.between(1, self.cfg.nemesis_gap_ms_max);
        self.agenda.push(next, Event::Nemesis);
        Ok(())
    }

    /// Cuts a random non-empty set of clients (the maintenance client
    /// among them) off from a random non-empty set of nodes.
    fn cut(&mut self) {
        let clients = self.cfg.clients + 1;
        let pick = |rng: &mut super::rng::Rng, n: usize| -> Vec<usize> {
            let mut chosen: Vec<usize> = (0..n).filter(|_| rng.chance(0.5)).collect();
            if chosen.is_empty() {
                chosen.push(rng.index(n));
            }
            chosen
        };
        let cs = pick(&mut self.rng, clients);
        let ns: Vec<NodeId> = pick(&mut self.rng, self.nodes.len())
            .into_iter()
            .map(|i| self.nodes[i].id)
            .collect();
        let shown: Vec<String> = ns.iter().map(|&n| N(n).to_string()).collect();
        trace!(
            self,
            "partition: clients {cs:?} cut off from {}",
            shown.join(" ")
        );
        self.net.partition(&cs, &ns);
        self.stats.partitions += 1;
    }

    /// A crashed node comes back, with new actors.
    pub(super) fn restart(&mut self, id: NodeId) {
        let knobs = self.knobs;
        let index = id.get() as usize - 1;
        if self.nodes[index].up {
            return;
        }
        self.nodes[index].restart(&mut self.mint, knobs);
        let (a, s) = (
            self.nodes[index].actor.get(),
            self.nodes[index].stand_in.get(),
        );
        trace!(self, "{} restarts: actor a{a}, stand-in a{s}", N(id));
    }

    /// Buffered nodes flush (each up node with an even chance).
    pub(super) fn flush(&mut self) {
        if !self.chaos {
            return; // power cuts are over: nothing more can be lost
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].up && self.rng.chance(0.5) {
                self.nodes[i].flush();
            }
        }
        self.agenda.push(self.now_ms + FLUSH_MS, Event::Flush);
    }

    /// Faults stop: partitions heal, every crashed node restarts (keeping
    /// what it had), the network becomes quiet.
    pub(super) fn end_chaos(&mut self) {
        trace!(self, "faults stop");
        self.chaos = false;
        self.net.heal();
        self.net.faults = Faults::QUIET;
        let down: Vec<NodeId> = self.nodes.iter().filter(|n| !n.up).map(|n| n.id).collect();
        for id in down {
            self.restart(id);
        }
    }
}
