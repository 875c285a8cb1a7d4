//! Anti-entropy: the home replicas of every partition are made to hold
//! the same objects without any key being read (Dynamo §4.7, with the
//! segment "tictac" digests of [`quire_shared::merkle`]).
//!
//! Nodes keep the digests current in their write transactions and answer
//! with them; this SDK decides which partitions to compare, walks the
//! digests down to the differing keys and sends merges
//! ([`exchange`](self)). A pass is run by `quire repair`, or a partition
//! at a time by the maintenance loop ([`Client::spawn_maintenance`]),
//! which keeps its load on the nodes small next to the foreground's.
//! After a partition's exchange has heard from every home replica, its
//! deleted keys past the store's grace period are reaped ([`reap`](self)).
//!
//! # Layout
//!
//! - this file: the report, a whole pass, and the step the maintenance
//!   loop takes;
//! - `exchange`: one exchange between a partition's home replicas;
//! - `replicas`: how repair reaches a replica, the seam that lets the
//!   simulation run the same exchange over its own network;
//! - `reap`: tombstone reaping in two phases, after an exchange;
//! - `scan`: paged segment scans of one replica.

mod exchange;
mod reap;
mod replicas;
mod scan;

pub(crate) use exchange::exchange;
#[cfg(test)]
pub(crate) use exchange::Exchanged;
pub(crate) use replicas::{NoReply, Replicas};

pub use reap::ReapPlan;

use crate::client::Client;
use crate::clock::now_ms;
use quire_shared::{Member, Membership, StoreConfig};

/// What a repair pass (or step) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// (store, partition) exchanges run.
    pub partitions_checked: u64,
    /// Merkle segments found to differ between home replicas.
    pub segments_differing: u64,
    /// Keys at least one home replica was sent the merge of.
    pub keys_repaired: u64,
    /// Deleted keys removed from every home replica (tombstone reaping).
    pub tombstones_reaped: u64,
    /// Bytes of the requests and answers exchanged (frames).
    pub bytes: u64,
    /// Replicas that could not be asked, with why; their partitions are
    /// repaired between the others and tried again next pass.
    pub unreachable: Vec<String>,
}

impl RepairReport {
    /// Records that `node` failed a repair request: no answer, a refusal,
    /// or an answer of the wrong kind.
    pub(crate) fn failed(
        &mut self,
        node: &quire_shared::Member,
        answer: Result<quire_shared::wire::Reply, String>,
    ) {
        let why = match answer {
            Ok(_) => "answered with an unexpected reply".to_string(),
            Err(e) => e,
        };
        self.unreachable.push(format!("{}: {why}", node.addr));
    }
}

impl RepairReport {
    /// Adds `other`'s counts to this report.
    pub fn absorb(&mut self, other: RepairReport) {
        self.partitions_checked += other.partitions_checked;
        self.segments_differing += other.segments_differing;
        self.keys_repaired += other.keys_repaired;
        self.tombstones_reaped += other.tombstones_reaped;
        self.bytes += other.bytes;
        self.unreachable.extend(other.unreachable);
    }
}

/// Every (store, partition) a pass covers, in order.
fn work(doc: &Membership, store: Option<&str>) -> Vec<(StoreConfig, u32)> {
    doc.stores
        .iter()
        .filter(|s| store.is_none_or(|name| s.name == name))
        .flat_map(|s| (0..doc.partitions).map(move |p| (s.clone(), p)))
        .collect()
}

/// The home replicas of `store`'s `partition`.
fn homes(doc: &Membership, store: &StoreConfig, partition: u32) -> Vec<Member> {
    doc.preference_list_of(partition, usize::from(store.n))
        .iter()
        .filter_map(|id| doc.member(*id).cloned())
        .collect()
}

impl Client {
    /// One partition's exchange, then its reaping when every home replica
    /// answered the exchange (a replica not heard from would block every
    /// key anyway) and some home replica holds a tombstone (else there is
    /// nothing to scan for).
    async fn exchange_and_reap(
        &self,
        config: &StoreConfig,
        partition: u32,
        homes: &[Member],
        report: &mut RepairReport,
    ) {
        let exchanged = exchange(self, config, partition, homes, None, report).await;
        if exchanged.all_answered && exchanged.tombstones {
            let plan = self
                .plan_reaping(&config.name, partition, now_ms(), report)
                .await;
            if !plan.is_empty() {
                self.reap(&plan, report).await;
            }
        }
    }

    /// Repairs every partition of `store` (every store when `None`),
    /// calling `progress(done, total)` after each partition.
    pub async fn repair_once(
        &self,
        store: Option<&str>,
        mut progress: impl FnMut(usize, usize),
    ) -> RepairReport {
        let doc = self.membership();
        let work = work(&doc, store);
        let mut report = RepairReport::default();
        for (i, (config, partition)) in work.iter().enumerate() {
            let homes = homes(&doc, config, *partition);
            self.exchange_and_reap(config, *partition, &homes, &mut report)
                .await;
            progress(i + 1, work.len());
        }
        report.unreachable.sort();
        report.unreachable.dedup();
        report
    }

    /// Repairs (and reaps) one partition of `store`: what a pass does for
    /// each, for a caller that knows which partition changed.
    pub async fn repair_partition(&self, store: &str, partition: u32) -> RepairReport {
        let doc = self.membership();
        let mut report = RepairReport::default();
        if let Some(config) = doc.store(store) {
            if partition < doc.partitions {
                let homes = homes(&doc, config, partition);
                self.exchange_and_reap(config, partition, &homes, &mut report)
                    .await;
            }
        }
        report
    }

    /// Repairs the `next`-th (store, partition) of the cluster, counting
    /// from 0 and wrapping, and advances `next`: the maintenance loop's
    /// step, one partition per interval so repair stays in the background.
    pub async fn repair_step(&self, next: &mut usize) -> RepairReport {
        let doc = self.membership();
        let work = work(&doc, None);
        let mut report = RepairReport::default();
        if work.is_empty() {
            return report;
        }
        let (config, partition) = &work[*next % work.len()];
        *next = (*next + 1) % work.len();
        let homes = homes(&doc, config, *partition);
        self.exchange_and_reap(config, *partition, &homes, &mut report)
            .await;
        report
    }
}
