//! Moving a pending change's data in steps (the maintenance loop), and
//! flipping the change once every partition has moved: the closing
//! exchanges between each moving partition's current and incoming
//! replicas, then the new epoch. A transfer's pages are [`super::pages`].

use super::super::repair::RepairReport;
use super::pace::{Pacer, TransferPace};
use super::pages::run_transfer;
use super::report::TransferReport;
use super::slot::Stalled;
use crate::client::Client;
use quire_shared::{Member, Membership, NodeId, PreferenceList, Transfer};
use std::collections::BTreeSet;
use std::time::Duration;

impl Client {
    /// Moves data for the pending change, at most `pages_max` pages in
    /// this step at `pace` (maintenance takes a step per interval); once
    /// every transfer is done, closes each moving partition with an
    /// exchange between its current and incoming replicas and flips the
    /// change.
    pub async fn transfer_step(&self, pages_max: usize, pace: TransferPace) -> TransferReport {
        let doc = self.membership();
        let Some(change) = doc.pending.as_ref().map(|p| p.since) else {
            return TransferReport::default();
        };
        let mut budget = pages_max;
        let pacer = Pacer::new(pace);
        let (mut copied, mut waiting) = (0, 0);
        let mut unreachable = Vec::new();
        for t in doc.transfers() {
            if budget == 0 {
                break;
            }
            match run_transfer(self, &doc, &t, (change, &pacer), &mut budget).await {
                Ok(keys) => copied += keys,
                Err(Stalled::Waiting(why)) => {
                    tracing::debug!(%why, "transfer waits for a slot on its receiver");
                    waiting += 1;
                }
                Err(Stalled::Failed(e)) => unreachable.push(e),
            }
        }
        let mut report = self.transfers_report(false).await;
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
            let closing = self.close_and_flip(&doc, change, 1).await;
            closing.into_report(&mut report);
        }
        report
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
    ) -> Closing {
        let mut seen = BTreeSet::new();
        let mut closing = tokio::task::JoinSet::new();
        let mut outcome = Closing::default();
        for t in doc.transfers() {
            if !seen.insert((t.store.clone(), t.partition)) {
                continue;
            }
            let Some(config) = doc.store(&t.store).cloned() else {
                continue;
            };
            let up = |id| crate::repair::Replicas::believed_up(self, id);
            let nodes = closing_nodes(doc, &t, usize::from(config.n), up);
            if closing.len() >= parallel.max(1) {
                outcome.add(joined(closing.join_next().await));
            }
            if !outcome.complete() {
                break;
            }
            let client = self.clone();
            closing.spawn(async move {
                let mut report = RepairReport::default();
                let exchanged =
                    crate::repair::exchange(&client, &config, t.partition, &nodes, None, &mut report)
                        .await;
                let mut waits = Vec::new();
                if !exchanged.complete {
                    tracing::info!(partition = t.partition, store = %t.store, "closing exchange incomplete; the flip waits");
                    waits = report.unreachable;
                    if waits.is_empty() {
                        waits.push(format!(
                            "the closing exchange of partition {} of {:?} did not complete",
                            t.partition, t.store
                        ));
                    }
                }
                (report.keys_repaired, waits)
            });
        }
        while let Some(result) = closing.join_next().await {
            outcome.add(joined(Some(result)));
        }
        if !outcome.complete() {
            return outcome;
        }
        let Some(pending) = doc.pending.as_ref().filter(|p| p.since == change) else {
            return outcome;
        };
        match self.flip_change(pending).await {
            Ok(flipped) => outcome.flipped = flipped,
            Err(e) => {
                tracing::warn!(error = %e, "flipping the membership change failed; the next step retries");
            }
        }
        outcome
    }

    /// Runs transfer steps (unpaced) until the change has flipped (or
    /// nothing is pending), pausing `pause` between steps, for at most
    /// `limit`. The last step's report, with `keys_copied` summed over
    /// every step and `flipped` set when the change waited on flipped,
    /// whoever flipped it.
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
            let mut report = self
                .transfer_step(pages_per_step, TransferPace::UNLIMITED)
                .await;
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
fn joined(
    result: Option<Result<(u64, Vec<String>), tokio::task::JoinError>>,
) -> (u64, Vec<String>) {
    match result {
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "a closing exchange ended without an outcome; the flip waits");
            (
                0,
                vec![format!("a closing exchange ended without an outcome: {e}")],
            )
        }
        None => (0, Vec::new()),
    }
}

/// What the closing exchanges and the flip came to.
#[derive(Debug, Default)]
pub(super) struct Closing {
    /// True when the change flipped.
    pub(super) flipped: bool,
    /// Keys the exchanges repaired.
    pub(super) repaired: u64,
    /// Why the flip waits (replicas an exchange could not ask or that
    /// refused it, with why), each once and in order whatever order the
    /// exchanges finished in; empty when every exchange completed. The
    /// exchanges stop at the first incomplete one, so there may be more.
    pub(super) waits_for: BTreeSet<String>,
}

impl Closing {
    /// Counts one exchange's repairs and what it could not reach.
    fn add(&mut self, (repaired, waits): (u64, Vec<String>)) {
        self.repaired += repaired;
        self.waits_for.extend(waits);
    }

    /// True while every exchange so far completed.
    fn complete(&self) -> bool {
        self.waits_for.is_empty()
    }

    /// Writes the outcome into `report`.
    pub(super) fn into_report(self, report: &mut TransferReport) {
        report.flipped = self.flipped;
        report.keys_repaired_at_close = self.repaired;
        report.flip_waits_for = self.waits_for.into_iter().collect();
    }
}

/// The replicas of `t`'s partition its closing exchange runs between:
/// its current and incoming ones. A replica that is leaving and down
/// (`is_up` says no: a replaced machine that died) cannot take part: its
/// partitions are rebuilt from the others. Every other replica must
/// answer.
pub(crate) fn closing_nodes(
    doc: &Membership,
    t: &Transfer,
    n: usize,
    is_up: impl Fn(NodeId) -> bool,
) -> Vec<Member> {
    let staying = |id: &NodeId| {
        doc.pending.as_ref().is_some_and(|p| {
            PreferenceList::walk_home(&p.owners, t.partition, n)
                .home()
                .contains(id)
        })
    };
    let mut nodes: Vec<Member> = t
        .from
        .iter()
        .filter(|id| staying(id) || is_up(**id))
        .chain(doc.incoming(t.partition, n).iter())
        .filter_map(|id| doc.member(*id).cloned())
        .collect();
    nodes.dedup_by_key(|m| m.id);
    nodes
}
