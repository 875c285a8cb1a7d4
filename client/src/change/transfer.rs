//! Moving a partition to an incoming replica, and flipping the change once
//! every partition has moved.
//!
//! A transfer copies `store`'s `partition` from a current home replica to
//! an incoming one: a `ScanSegment` page (objects, bounded by the source's
//! frame limit), stored on the receiver by `TransferPage` requests of up
//! to [`PART_KEYS`] keys and [`PART_BYTES`] bytes each (each key synced
//! in, so a copy never replaces a newer write that reached the receiver
//! directly), the last of which records the page's cursor on the
//! receiver; the next page is scanned while the current one is stored.
//! The cursor lives on the receiver: a transfer interrupted anywhere (this
//! client, the source, the receiver) resumes from the last page marked,
//! so at most one page is sent twice.

use super::super::repair::RepairReport;
use super::report::{wall_ms, TransferReport};
use super::slot::Stalled;
use crate::client::Client;
use quire_shared::wire::{Entry, Listing, Reply, Request, TransferProgress};
use quire_shared::{Member, Membership, NodeId, PreferenceList, Transfer};
use std::collections::BTreeSet;
use std::time::Duration;

/// Most keys of one `TransferPage`: one write transaction on the
/// receiver, which the foreground's writes wait behind (the writer batches
/// as many of them at once). With values of 1 KiB a part reaches about
/// [`PART_BYTES`]; 256 keys (a quarter of that) cost one more round trip
/// and one more commit per 256 KiB and moved data 1.3 to 1.9x slower
/// (docs/benchmarks.md).
const PART_KEYS: usize = 1024;

/// Most bytes of one `TransferPage`, for the same reason.
const PART_BYTES: usize = 1 << 20;

impl Client {
    /// Moves data for the pending change, at most `pages_max` pages in
    /// this step (the rate limit: maintenance takes a step per interval);
    /// once every transfer is done, closes each moving partition with an
    /// exchange between its current and incoming replicas and flips the
    /// change.
    pub async fn transfer_step(&self, pages_max: usize) -> TransferReport {
        let doc = self.membership();
        let Some(change) = doc.pending.as_ref().map(|p| p.since) else {
            return TransferReport::default();
        };
        let mut budget = pages_max;
        let (mut copied, mut waiting) = (0, 0);
        let mut unreachable = Vec::new();
        for t in doc.transfers() {
            if budget == 0 {
                break;
            }
            match self.run_transfer(&doc, &t, change, &mut budget).await {
                Ok(keys) => copied += keys,
                Err(Stalled::Waiting(_)) => waiting += 1,
                Err(Stalled::Failed(e)) => unreachable.push(e),
            }
        }
        let mut report = self.transfers().await;
        report.keys_copied = copied;
        report.waiting = waiting;
        report.unreachable.extend(unreachable);
        if report.is_idle() && report.unreachable.is_empty() && report.change == Some(change) {
            // Closing costs an exchange per moving partition: first make
            // sure nobody flipped the change already (another client's
            // maintenance, `transfers --wait`), or this client would run
            // them all for nothing, under the foreground's feet.
            self.refresh_membership().await;
            if self.membership().pending != doc.pending {
                report.change = None;
                return report;
            }
            let (flipped, repaired) = self.close_and_flip(&doc, change, 1).await;
            report.flipped = flipped;
            report.keys_repaired_at_close = repaired;
        }
        report
    }

    /// Copies pages of `t` while `budget` lasts (a page scanned counts);
    /// returns the keys copied. The transfer first claims its slot on the
    /// receiver ([`super::slot`]). The scan of the next page runs while the
    /// current one is stored; a page is stored only once the one before
    /// it is, so the receiver's mark never passes a page not stored.
    pub(super) async fn run_transfer(
        &self,
        doc: &Membership,
        t: &Transfer,
        change: u64,
        budget: &mut usize,
    ) -> Result<u64, Stalled> {
        let to = doc
            .member(t.to)
            .ok_or_else(|| "receiver not in membership".to_string())?
            .clone();
        let mut progress = self.progress_of(doc, t).await?;
        if progress.change != change {
            progress = TransferProgress {
                change,
                ..TransferProgress::default()
            };
        }
        if progress.done || *budget == 0 {
            return Ok(0);
        }
        self.claim_slot(&to, t, change).await?;
        *budget -= 1;
        let mut page = self.source_page(doc, t, progress.after.clone()).await?;
        let mut copied = 0;
        loop {
            let (entries, next) = page;
            let keys = entries.len() as u64;
            progress.keys += keys;
            // The objects' encoded size, counted without encoding them.
            progress.bytes += entries
                .iter()
                .map(|e| postcard::experimental::serialized_size(&e.object).unwrap_or(0) as u64)
                .sum::<u64>();
            let now = wall_ms();
            if progress.started_ms == 0 {
                progress.started_ms = now;
            }
            progress.updated_ms = now;
            progress.done = next.is_none();
            progress.after = next.clone();
            let store = self.store_page(&to, t, entries, &progress);
            match next.filter(|_| *budget > 0) {
                Some(after) => {
                    *budget -= 1;
                    let scan = self.source_page(doc, t, Some(after));
                    let (stored, scanned) = tokio::join!(store, scan);
                    stored?;
                    copied += keys;
                    page = scanned?;
                }
                None => {
                    store.await?;
                    return Ok(copied + keys);
                }
            }
        }
    }

    /// Stores a page on the incoming replica `to` in parts of at most
    /// [`PART_KEYS`] keys and [`PART_BYTES`] bytes, one `TransferPage`
    /// (one write on the node) each, the last one carrying `progress`:
    /// the mark moves only once the whole page is stored.
    async fn store_page(
        &self,
        to: &Member,
        t: &Transfer,
        entries: Vec<Entry>,
        progress: &TransferProgress,
    ) -> Result<(), Stalled> {
        let mut parts: Vec<Vec<Entry>> = vec![Vec::new()];
        let mut part_bytes = 0;
        for e in entries {
            let size = e.key.len() + e.object.size_bytes();
            let last = parts.last().expect("at least one part");
            if !last.is_empty() && (last.len() >= PART_KEYS || part_bytes + size > PART_BYTES) {
                parts.push(Vec::new());
                part_bytes = 0;
            }
            part_bytes += size;
            parts.last_mut().expect("at least one part").push(e);
        }
        let count = parts.len();
        for (i, entries) in parts.into_iter().enumerate() {
            let last = i + 1 == count;
            let request = Request::TransferPage {
                store: t.store.clone(),
                partition: t.partition,
                change: progress.change,
                entries,
                progress: last.then(|| progress.clone()),
            };
            match self.transfer_call_to(to, &request).await {
                Ok(Reply::Transfer(held)) if !last || held == *progress => {}
                Ok(other) => {
                    let why = format!("{}: page not kept: {other:?}", to.addr);
                    return Err(Stalled::Failed(why));
                }
                Err(stalled) => return Err(stalled.at(to)),
            }
        }
        Ok(())
    }

    /// The next page of `t`'s partition after `after`, from the first
    /// current home replica that answers.
    async fn source_page(
        &self,
        doc: &Membership,
        t: &Transfer,
        after: Option<Vec<u8>>,
    ) -> Result<(Vec<Entry>, Option<Vec<u8>>), String> {
        let scan = Request::ScanSegment {
            store: t.store.clone(),
            partition: t.partition,
            segments: Vec::new(),
            tombstones_only: false,
            listing: Listing::Objects,
            after,
        };
        let mut why = Vec::new();
        // Healthy sources first: a dead one would cost a timeout per page.
        let mut sources: Vec<&Member> = t.from.iter().filter_map(|id| doc.member(*id)).collect();
        sources.sort_by_key(|m| !self.inner.health.is_up(m.id));
        for source in sources {
            match self.transfer_call(source, &scan).await {
                Ok(Reply::Segment { entries, next }) => return Ok((entries, next)),
                Ok(other) => why.push(format!("{}: unexpected answer {other:?}", source.addr)),
                Err(e) => why.push(format!("{}: {e}", source.addr)),
            }
        }
        Err(format!(
            "no home replica of partition {} of {:?} could be scanned: {}",
            t.partition,
            t.store,
            why.join("; ")
        ))
    }

    /// Every moving partition's exchange between its current and incoming
    /// replicas (what pages raced with), up to `parallel` at once, then
    /// the flip, only if every exchange completed. Whether this call
    /// flipped the change, and the keys the exchanges repaired.
    pub(super) async fn close_and_flip(
        &self,
        doc: &Membership,
        change: u64,
        parallel: usize,
    ) -> (bool, u64) {
        let mut seen = BTreeSet::new();
        let mut closing = tokio::task::JoinSet::new();
        let (mut complete, mut repaired) = (true, 0);
        for t in doc.transfers() {
            if !seen.insert((t.store.clone(), t.partition)) {
                continue;
            }
            let Some(config) = doc.store(&t.store).cloned() else {
                continue;
            };
            let nodes = self.closing_nodes(doc, &t, usize::from(config.n));
            if closing.len() >= parallel.max(1) {
                let (done, keys) = joined(closing.join_next().await);
                repaired += keys;
                complete &= done;
            }
            if !complete {
                break;
            }
            let client = self.clone();
            closing.spawn(async move {
                let mut report = RepairReport::default();
                let outcome =
                    crate::repair::exchange(&client, &config, t.partition, &nodes, None, &mut report)
                        .await;
                if !outcome.complete {
                    tracing::info!(partition = t.partition, store = %t.store, "closing exchange incomplete; the flip waits");
                }
                (outcome.complete, report.keys_repaired)
            });
        }
        while let Some(result) = closing.join_next().await {
            let (done, keys) = joined(Some(result));
            repaired += keys;
            complete &= done;
        }
        if !complete {
            return (false, repaired);
        }
        let Some(pending) = doc.pending.as_ref().filter(|p| p.since == change) else {
            return (false, repaired);
        };
        match self.flip_change(pending).await {
            Ok(flipped) => (flipped, repaired),
            Err(e) => {
                tracing::warn!(error = %e, "flipping the membership change failed; the next step retries");
                (false, repaired)
            }
        }
    }

    /// The replicas of `t`'s partition its closing exchange runs between:
    /// its current and incoming ones. A replica that is leaving and down
    /// (a replaced machine that died) cannot take part: its partitions
    /// are rebuilt from the others. Every other replica must answer.
    fn closing_nodes(&self, doc: &Membership, t: &Transfer, n: usize) -> Vec<Member> {
        let staying = |id: &NodeId| {
            doc.pending.as_ref().is_some_and(|p| {
                PreferenceList::walk(&p.owners, t.partition, n)
                    .home()
                    .contains(id)
            })
        };
        let mut nodes: Vec<Member> = t
            .from
            .iter()
            .filter(|id| staying(id) || self.inner.health.is_up(**id))
            .chain(doc.incoming(t.partition, n).iter())
            .filter_map(|id| doc.member(*id).cloned())
            .collect();
        nodes.dedup_by_key(|m| m.id);
        nodes
    }

    /// Runs transfer steps until the change has flipped (or nothing is
    /// pending), pausing `pause` between steps, for at most `limit`. The
    /// last step's report, with `keys_copied` summed over every step and
    /// `flipped` set when the change waited on flipped, whoever flipped it.
    pub async fn transfer_until_flipped(
        &self,
        pages_per_step: usize,
        pause: Duration,
        limit: Duration,
    ) -> TransferReport {
        self.transfer_until_flipped_with(pages_per_step, pause, limit, |_| {})
            .await
    }

    /// [`Client::transfer_until_flipped`], calling `progress` with each
    /// step's report (a progress bar of transfers done).
    pub async fn transfer_until_flipped_with(
        &self,
        pages_per_step: usize,
        pause: Duration,
        limit: Duration,
        mut progress: impl FnMut(&TransferReport),
    ) -> TransferReport {
        let deadline = tokio::time::Instant::now() + limit;
        let waiting_on = self.membership().pending.as_ref().map(|p| p.since);
        let mut copied = 0;
        loop {
            let mut report = self.transfer_step(pages_per_step).await;
            progress(&report);
            copied += report.keys_copied;
            report.keys_copied = copied;
            if waiting_on.is_some() && report.change != waiting_on {
                // Flipped by another client (the maintenance loop of
                // `quire up`, say) while this one waited.
                report.change = waiting_on;
                report.flipped = true;
            }
            if report.flipped || report.change.is_none() || tokio::time::Instant::now() >= deadline
            {
                return report;
            }
            tokio::time::sleep(pause).await;
            self.refresh_membership().await;
        }
    }
}

/// A closing exchange's outcome from its task: a task that ended without
/// one (it panicked) counts as incomplete, so the flip waits.
fn joined(result: Option<Result<(bool, u64), tokio::task::JoinError>>) -> (bool, u64) {
    match result {
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "a closing exchange ended without an outcome; the flip waits");
            (false, 0)
        }
        None => (true, 0),
    }
}
