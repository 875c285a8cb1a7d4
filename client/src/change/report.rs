//! Where a membership change's transfers stand, as their receivers
//! recorded it: the report `quire cluster transfers` prints, with each
//! transfer's rate and an estimated time left.

use crate::client::Client;
use quire_shared::wire::TransferProgress;
use quire_shared::{Membership, NodeId, Transfer};
use std::collections::BTreeMap;

/// Where one transfer stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TransferStatus {
    /// Store name.
    pub store: String,
    /// Partition.
    pub partition: u32,
    /// The incoming replica.
    pub to: NodeId,
    /// `pending` (not started), `active`, `done`, or `unknown` (the
    /// receiver did not answer).
    pub state: &'static str,
    /// Keys copied so far.
    pub keys: u64,
    /// Bytes of objects copied so far.
    pub bytes: u64,
    /// Bytes per second since the transfer started (0 before it has).
    pub rate_bytes_per_s: u64,
    /// Seconds left at that rate, against an estimate of the partition's
    /// size (the mean of its store's transfers already done, or before
    /// any is, its source's bytes in the store over the partitions it
    /// holds); `None` when done, not started, or not estimable, and in
    /// the reports of transfer steps and `--wait` rounds, which do not
    /// ask the sources for their totals.
    pub eta_s: Option<u64>,
}

/// What a transfer step did, and where the change stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransferReport {
    /// The change under way (the epoch it was committed in); `None` when
    /// nothing moves.
    pub change: Option<u64>,
    /// Transfers not started.
    pub pending: u64,
    /// Transfers started and not done.
    pub active: u64,
    /// Transfers done.
    pub done: u64,
    /// Bytes of objects copied so far, over every transfer.
    pub bytes: u64,
    /// Keys this step copied.
    pub keys_copied: u64,
    /// Transfers this step found waiting for a slot on their receiver
    /// (every one of its `limits.transfers_in_max` held by other
    /// partitions); they move on a later step.
    pub waiting: u64,
    /// Keys the closing exchanges repaired (what copies of live writes and
    /// pages raced with); 0 when the transfers alone moved everything.
    pub keys_repaired_at_close: u64,
    /// True when this step flipped the change (the pending owners now own).
    pub flipped: bool,
    /// Each transfer.
    pub transfers: Vec<TransferStatus>,
    /// Nodes that could not be asked, with why.
    pub unreachable: Vec<String>,
    /// When every transfer is done but the closing exchanges this step
    /// ran could not finish: why the flip waits (replicas they could not
    /// ask or that refused, with why; at least these). Each current and
    /// incoming replica of a moving partition must answer its closing
    /// exchange, except one that leaves the partition and is believed
    /// down; the flip follows once they do, or `quire cluster abort`
    /// abandons the change. Empty in reports that ran no closing
    /// exchange (`Client::transfers`).
    pub flip_waits_for: Vec<String>,
}

impl TransferReport {
    /// Counts `status` into the totals.
    fn count(&mut self, status: TransferStatus) {
        match status.state {
            "done" => self.done += 1,
            "active" => self.active += 1,
            _ => self.pending += 1,
        }
        self.bytes += status.bytes;
        self.transfers.push(status);
    }

    /// True when nothing is left to move.
    pub fn is_idle(&self) -> bool {
        self.pending == 0 && self.active == 0
    }
}

/// The mean bytes of each store's transfers that are done, for the stores
/// with any: a partition's size, since partitions hold about equal shares
/// of a store.
fn done_means<'a>(statuses: impl Iterator<Item = &'a TransferStatus>) -> BTreeMap<String, u64> {
    let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in statuses.filter(|s| s.state == "done") {
        let (count, bytes) = sums.entry(s.store.clone()).or_default();
        *count += 1;
        *bytes = bytes.saturating_add(s.bytes);
    }
    sums.into_iter()
        .map(|(store, (count, bytes))| (store, bytes / count))
        .collect()
}

/// Estimated bytes of a partition, per (source node, store): the store's
/// bytes on the source (`Stats`) over the partitions it is a home
/// replica of.
#[derive(Default)]
pub(super) struct PartitionSizes(BTreeMap<(NodeId, String), u64>);

impl PartitionSizes {
    pub(super) async fn estimate(
        &mut self,
        client: &Client,
        doc: &Membership,
        t: &Transfer,
    ) -> u64 {
        let Some(&source) = t.from.first() else {
            return 0;
        };
        let key = (source, t.store.clone());
        if let Some(size) = self.0.get(&key) {
            return *size;
        }
        let n = doc.store(&t.store).map_or(1, |s| usize::from(s.n));
        let held = (0..doc.partitions)
            .filter(|&p| doc.preference_list_of(p, n).contains(&source))
            .count()
            .max(1) as u64;
        let bytes = match doc.member(source) {
            Some(m) => client.node_stats(m).await.ok().and_then(|s| {
                s.stores
                    .iter()
                    .find(|s| s.store == t.store)
                    .map(|s| s.bytes)
            }),
            None => None,
        };
        let size = bytes.unwrap_or(0) / held;
        self.0.insert(key, size);
        size
    }
}

/// The progress `progress` means for change `change`.
pub(super) fn state_of(progress: &TransferProgress, change: u64) -> &'static str {
    match progress {
        p if p.change != change => "pending",
        p if p.done => "done",
        _ => "active",
    }
}

impl Client {
    /// Where every transfer of the pending change stands, as the receivers
    /// recorded it (`quire cluster transfers`), with each active
    /// transfer's time left.
    pub async fn transfers(&self) -> TransferReport {
        self.transfers_report(true).await
    }

    /// [`Client::transfers`], with the time left (`eta`) only if asked.
    /// A partition's size is estimated from the transfers of its store
    /// already done (partitions hold about equal shares of a store's keys),
    /// or, before any is, from each source's totals (`Stats`, a pass over
    /// all its data): a cost for an operator's look, not for every step of
    /// a move.
    pub(super) async fn transfers_report(&self, eta: bool) -> TransferReport {
        let doc = self.membership();
        let Some(change) = doc.pending.as_ref().map(|p| p.since) else {
            return TransferReport::default();
        };
        let mut report = TransferReport {
            change: Some(change),
            ..TransferReport::default()
        };
        let mut statuses = Vec::new();
        for t in doc.transfers() {
            let (state, p) = match super::pages::progress_of(self, &doc, &t).await {
                Ok(p) => (state_of(&p, change), p),
                Err(e) => {
                    report.unreachable.push(e);
                    ("unknown", TransferProgress::default())
                }
            };
            let seconds = p.updated_ms.saturating_sub(p.started_ms) / 1000;
            let status = TransferStatus {
                store: t.store.clone(),
                partition: t.partition,
                to: t.to,
                state,
                keys: p.keys,
                bytes: p.bytes,
                rate_bytes_per_s: p.bytes.checked_div(seconds).unwrap_or(0),
                eta_s: None,
            };
            statuses.push((t, status));
        }
        if eta {
            let mut sizes = PartitionSizes::default();
            let means = done_means(statuses.iter().map(|(_, s)| s));
            for (t, s) in &mut statuses {
                if s.state != "active" || s.rate_bytes_per_s == 0 {
                    continue;
                }
                let size = match means.get(&s.store) {
                    Some(&mean) => mean,
                    None => sizes.estimate(self, &doc, t).await,
                };
                s.eta_s = Some(size.saturating_sub(s.bytes) / s.rate_bytes_per_s);
            }
        }
        for (_, status) in statuses {
            report.count(status);
        }
        report
    }

    /// Estimated bytes the transfers of `doc`'s pending change carry
    /// (`quire cluster plan`): each source's bytes in the store, spread
    /// evenly over the partitions it holds.
    pub async fn estimate_transfer_bytes(&self, doc: &Membership) -> u64 {
        let mut sizes = PartitionSizes::default();
        let mut total = 0;
        for t in doc.transfers() {
            total += sizes.estimate(self, doc, &t).await;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(store: &str, state: &'static str, bytes: u64) -> TransferStatus {
        TransferStatus {
            store: store.into(),
            partition: 0,
            to: NodeId(1),
            state,
            keys: 0,
            bytes,
            rate_bytes_per_s: 0,
            eta_s: None,
        }
    }

    #[test]
    fn a_partitions_size_is_the_mean_of_its_stores_done_transfers() {
        let all = [
            status("carts", "done", 1000),
            status("carts", "done", 3000),
            status("carts", "active", 500),
            status("users", "done", 80),
            status("users", "pending", 0),
        ];
        let means = done_means(all.iter());
        assert_eq!(means.get("carts"), Some(&2000));
        assert_eq!(means.get("users"), Some(&80));
        // Nothing done yet: no estimate from here (the sources' totals then).
        assert_eq!(means.get("orders"), None);
        assert_eq!(done_means(all[2..3].iter()).get("carts"), None);
    }
}
