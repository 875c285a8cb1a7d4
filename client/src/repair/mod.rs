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
//!
//! # Layout
//!
//! - this file: the report, a whole pass, and the step the maintenance
//!   loop takes;
//! - `exchange`: one exchange between a partition's home replicas.

mod exchange;

use crate::client::Client;
use quire_shared::{Member, Membership, PreferenceList, StoreConfig};

/// What a repair pass (or step) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// (store, partition) exchanges run.
    pub partitions_checked: u64,
    /// Merkle segments found to differ between home replicas.
    pub segments_differing: u64,
    /// Keys at least one home replica was sent the merge of.
    pub keys_repaired: u64,
    /// Bytes of the requests and answers exchanged (frames).
    pub bytes: u64,
    /// Replicas that could not be asked, with why; their partitions are
    /// repaired between the others and tried again next pass.
    pub unreachable: Vec<String>,
}

impl RepairReport {
    /// Adds `other`'s counts to this report.
    pub fn absorb(&mut self, other: RepairReport) {
        self.partitions_checked += other.partitions_checked;
        self.segments_differing += other.segments_differing;
        self.keys_repaired += other.keys_repaired;
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
    PreferenceList::walk(&doc.owners, partition, usize::from(store.n))
        .home()
        .iter()
        .filter_map(|id| doc.member(*id).cloned())
        .collect()
}

impl Client {
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
            self.exchange(config, *partition, &homes, &mut report).await;
            progress(i + 1, work.len());
        }
        report.unreachable.sort();
        report.unreachable.dedup();
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
        self.exchange(config, *partition, &homes, &mut report).await;
        report
    }
}
