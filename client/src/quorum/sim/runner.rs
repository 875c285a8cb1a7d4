//! One world from seed to verdict: chaos, then repair, then the checks.
//!
//! 1. **Chaos**: clients run their operations while the nemesis crashes
//!    nodes and cuts the network, and maintenance delivers hints now and
//!    then; every outcome is checked as it is given.
//! 2. **Calm**: at `chaos_ms` partitions heal, crashed nodes restart and
//!    the network stops losing and duplicating; operations still running
//!    finish.
//! 3. **Repair**, in rounds: a hint-delivery pass, then, as the world
//!    drew ([`Repair`]), an anti-entropy pass over every partition, the
//!    auditor reading every key from all its home replicas (`R = N`,
//!    repairing), or both. A round that changes no node's disk ends
//!    repair; a world that needs more than [`ROUNDS_MAX`] rounds does not
//!    converge, which is a violation. So does an exchange that does not
//!    complete once faults are over. Each round also moves a pending
//!    membership change's data (and flips it) and, after a flip, hands
//!    off and drops old owners' copies ([`super::moves`]).
//! 4. **Checks**: the home replicas agree and hold no hints, the last
//!    round repaired nothing (neither by reads nor by exchange), a
//!    membership change has flipped and left no copy on a node that no
//!    longer owns it, and no acknowledged write was lost
//!    ([`super::checkers`]).

use super::checkers;
use super::client::Purpose;
use super::config::{Knobs, Repair};
use super::world::World;
use crate::health::Health;
use quire_shared::ConflictPolicy;

/// Repair rounds a world may need before it is quiet. One round is enough
/// when the network is quiet; the second shows that it was.
const ROUNDS_MAX: u32 = 4;

/// One kind of repair, run to its end within a round.
#[derive(Clone, Copy, Debug)]
enum RepairStep {
    /// A hint-delivery pass ([`super::hints`]).
    HintDelivery,
    /// A pending membership change's transfers, closing exchanges and
    /// flip ([`super::moves`]).
    Moves,
    /// After a flip, old owners' copies handed off and dropped.
    Drops,
    /// An anti-entropy pass: every partition's home replicas exchange
    /// ([`super::exchange`]).
    Exchange,
    /// The auditor reads every key from all its home replicas (`R = N`),
    /// and the get machine repairs the ones behind.
    ReadEveryKey,
}

/// A round's steps, in order, for a world that repairs by `repair`.
fn repair_steps(repair: Repair) -> &'static [RepairStep] {
    use RepairStep::{Drops, Exchange, HintDelivery, Moves, ReadEveryKey};
    match repair {
        Repair::Reads => &[HintDelivery, Moves, Drops, ReadEveryKey],
        Repair::Exchanges => &[HintDelivery, Moves, Drops, Exchange],
        Repair::Both => &[HintDelivery, Moves, Drops, Exchange, ReadEveryKey],
    }
}

/// Counts over one world or many: what the worlds did, so a run can show
/// that its faults really happened and its checks really ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Worlds run.
    pub worlds: u64,
    /// Events traced.
    pub events: u64,
    /// Operations started.
    pub ops: u64,
    /// Puts and deletes that succeeded.
    pub puts_ok: u64,
    /// Gets that succeeded.
    pub gets_ok: u64,
    /// Gets that succeeded with a spare's answer among theirs.
    pub gets_through_spares: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Of those, refused as a request every replica would refuse.
    pub rejected: u64,
    /// Read repairs sent.
    pub read_repairs: u64,
    /// Requests that took effect after their call had timed out.
    pub late_requests: u64,
    /// Puts coordinated by a stand-in (every home replica out of reach).
    pub stand_in_puts: u64,
    /// Hints replicated home.
    pub hints_delivered: u64,
    /// Hints dropped by stand-ins after delivery.
    pub hints_dropped: u64,
    /// Anti-entropy exchanges run (one per partition per pass).
    pub exchanges: u64,
    /// Membership changes committed (a join, a leave or a replacement).
    pub changes: u64,
    /// Changes flipped.
    pub flips: u64,
    /// Keys copied by transfers.
    pub keys_transferred: u64,
    /// Old owners' partitions dropped after a flip.
    pub partitions_dropped: u64,
    /// Keys an exchange sent a merge to some replica of.
    pub exchange_repairs: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Of those, crashes that lost data.
    pub data_losses: u64,
    /// Partitions.
    pub partitions: u64,
    /// Messages lost.
    pub dropped: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Acknowledged writes.
    pub acked: u64,
    /// Of those, present at the end.
    pub present: u64,
    /// Replaced by a write that had seen them.
    pub superseded: u64,
    /// Destroyed with every copy by crashes that lose data.
    pub lost_to_faults: u64,
    /// Dropped by last-write-wins.
    pub lww_discarded: u64,
    /// Repair rounds run.
    pub repair_rounds: u64,
}

impl Stats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, o: &Stats) {
        let pairs = [
            (&mut self.worlds, o.worlds),
            (&mut self.events, o.events),
            (&mut self.ops, o.ops),
            (&mut self.puts_ok, o.puts_ok),
            (&mut self.gets_ok, o.gets_ok),
            (&mut self.gets_through_spares, o.gets_through_spares),
            (&mut self.failed, o.failed),
            (&mut self.rejected, o.rejected),
            (&mut self.read_repairs, o.read_repairs),
            (&mut self.late_requests, o.late_requests),
            (&mut self.stand_in_puts, o.stand_in_puts),
            (&mut self.hints_delivered, o.hints_delivered),
            (&mut self.hints_dropped, o.hints_dropped),
            (&mut self.exchanges, o.exchanges),
            (&mut self.changes, o.changes),
            (&mut self.flips, o.flips),
            (&mut self.keys_transferred, o.keys_transferred),
            (&mut self.partitions_dropped, o.partitions_dropped),
            (&mut self.exchange_repairs, o.exchange_repairs),
            (&mut self.crashes, o.crashes),
            (&mut self.data_losses, o.data_losses),
            (&mut self.partitions, o.partitions),
            (&mut self.dropped, o.dropped),
            (&mut self.duplicated, o.duplicated),
            (&mut self.acked, o.acked),
            (&mut self.present, o.present),
            (&mut self.superseded, o.superseded),
            (&mut self.lost_to_faults, o.lost_to_faults),
            (&mut self.lww_discarded, o.lww_discarded),
            (&mut self.repair_rounds, o.repair_rounds),
        ];
        for (mine, theirs) in pairs {
            *mine += theirs;
        }
    }
}

/// How a world ended.
pub struct Report {
    /// The trace's hash.
    pub hash: u64,
    /// The trace's lines, if kept.
    pub lines: Vec<String>,
    /// Its counts.
    pub stats: Stats,
    /// The violation found, if any.
    pub violation: Option<String>,
}

/// Runs the world of `seed` to its verdict.
pub fn run(seed: u64, knobs: Knobs, keep_trace: bool) -> Report {
    let mut world = World::new(seed, knobs, keep_trace);
    trace!(world, "world {seed}: {:?}", world.cfg);
    let violation = world.play().err();
    if let Some(v) = &violation {
        trace!(world, "VIOLATION: {v}");
    }
    let mut stats = world.stats.clone();
    stats.worlds = 1;
    stats.events = world.trace.events();
    stats.dropped = world.net.dropped;
    stats.duplicated = world.net.duplicated;
    Report {
        hash: world.trace.hash(),
        lines: world.trace.lines().to_vec(),
        stats,
        violation,
    }
}

impl World {
    /// Chaos, calm, repair, checks.
    fn play(&mut self) -> Result<(), String> {
        self.begin();
        self.run_until_idle()?;
        let repairs = self.repair()?;
        let finals = checkers::converged(&self.nodes, &self.lists)?;
        if self.stats.changes > 0 {
            if self.doc.pending.is_some() {
                return Err("the membership change had not flipped when repair ended".into());
            }
            checkers::no_stray_copies(&self.nodes, &self.doc)?;
        }
        if repairs > 0 {
            return Err("repair sent merges to replicas that already agree".into());
        }
        checkers::writes_survive(&self.history, &finals, self.cfg.policy, &mut self.stats)?;
        if self.cfg.policy == ConflictPolicy::Siblings {
            trace!(self, "every acknowledged write survived or was replaced");
        }
        Ok(())
    }

    /// Repair rounds until one changes nothing; returns the repairs (read
    /// repairs and keys merged by exchange) that last round sent, which
    /// must be none once the replicas agree (a converged key costs its
    /// readers no writes, and an exchange between equal replicas sends
    /// nothing).
    fn repair(&mut self) -> Result<u64, String> {
        for round in 1..=ROUNDS_MAX {
            self.stats.repair_rounds += 1;
            let repaired = |s: &Stats| s.read_repairs + s.exchange_repairs;
            let (mutations, repairs) = (self.mutations, repaired(&self.stats));
            trace!(self, "repair round {round}");
            for &step in repair_steps(self.cfg.repair) {
                self.repair_step(step)?;
            }
            if self.mutations == mutations {
                return Ok(repaired(&self.stats) - repairs);
            }
        }
        Err(format!(
            "replicas still changing after {ROUNDS_MAX} repair rounds"
        ))
    }

    /// Runs one step of a repair round to its end.
    fn repair_step(&mut self, step: RepairStep) -> Result<(), String> {
        match step {
            RepairStep::HintDelivery => self.start_pass()?,
            RepairStep::Moves => self.start_moves(usize::MAX)?,
            RepairStep::Drops => self.start_drops()?,
            RepairStep::Exchange | RepairStep::ReadEveryKey if self.knobs.skip_repair => {}
            RepairStep::Exchange => self.start_exchanges()?,
            RepairStep::ReadEveryKey => {
                // A fresh auditor each round: it believes every node up,
                // so it reads every home replica.
                let auditor = self.auditor();
                self.clients[auditor].health = Health::default();
                let keys: Vec<Vec<u8>> = self.lists.keys().cloned().collect();
                for key in keys {
                    self.start_op(auditor, key, Purpose::Audit)?;
                }
            }
        }
        self.run_until_idle()
    }
}
