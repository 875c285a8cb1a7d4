//! Driving a membership change's transfers when an operator asks to move
//! now (`quire cluster transfers --wait`): several transfers at once at a
//! byte rate shared by all of them ([`super::pace`], 4 MB/s unless the
//! operator names another or none), then the closing exchanges (as many
//! at once) and the flip.
//!
//! The background maintenance loop does not use this: it moves a
//! second's worth of pages per interval at a gentler rate
//! ([`Client::transfer_step`]). Driving trades some foreground latency
//! for speed, bounded by its rate and the transfers in flight.
//!
//! Every guarantee of a single transfer holds for each of the parallel
//! ones: each runs the same pages (the receiver's cursor, at most one page
//! sent twice after an interruption, refusals), and the flip still waits
//! for every transfer to be done and every closing exchange to complete.

use super::pace::{Pacer, TransferPace};
use super::queue::TransferQueue;
use super::report::TransferReport;
use super::slot::Stalled;
use crate::client::Client;
use quire_shared::Membership;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Transfers in flight at once when the caller names no number (Riak's
/// default transfer limit is the same): measured on a 2-core machine
/// (docs/benchmarks.md, "Moving data now"), 4 or 8 moved a join's data
/// barely faster, and took the foreground's read p99.9 to about 2x its
/// steady state where 2 stayed near 1.5x.
pub const DEFAULT_PARALLEL_TRANSFERS: usize = 2;

/// The pace of `quire cluster transfers --wait` when the operator names
/// none. Measured beside a join on two cores (docs/benchmarks.md,
/// "Pacing transfers by bytes"): at 4 MB/s the reads' p99.9 stayed within
/// 2x of its steady state beside a read-only and a half-update workload;
/// at 8 MB/s only beside the read-only one.
pub const DEFAULT_TRANSFER_PACE: TransferPace = TransferPace::per_second(4_000_000);

/// Most transfers in flight at once: each holds up to a page (bounded by
/// the source's frame limit, 16 MiB by default) in this client's memory.
pub const MAX_PARALLEL_TRANSFERS: usize = 64;

/// Pause before a round that follows one which failed or copied nothing
/// (a node did not answer, a closing exchange was incomplete): time for
/// the node to come back, without spinning.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

impl Client {
    /// Moves the pending change's data with up to `parallel` transfers in
    /// flight (clamped to 1..=[`MAX_PARALLEL_TRANSFERS`]) at `pace` (summed
    /// over them), without pausing otherwise while transfers succeed, then
    /// closes every moving partition (as many exchanges at once) and
    /// flips; returns when the change has
    /// flipped (whoever flipped it), nothing is pending, or after
    /// `limit`. `progress` is called as transfers finish, with `done`
    /// counting those this client saw done and `active` those in flight.
    pub async fn drive_transfers(
        &self,
        (parallel, pace): (usize, TransferPace),
        limit: Duration,
        mut progress: impl FnMut(&TransferReport),
    ) -> TransferReport {
        let parallel = parallel.clamp(1, MAX_PARALLEL_TRANSFERS);
        // One schedule for every round: the rate holds across them.
        let pacer = Arc::new(Pacer::new(pace));
        let deadline = tokio::time::Instant::now() + limit;
        let waiting_on = self.membership().pending.as_ref().map(|p| p.since);
        let mut copied = 0;
        // The last report of every transfer, returned (marked flipped)
        // when another client flips the change first.
        let mut last = TransferReport::default();
        loop {
            let doc = self.membership();
            let change = doc.pending.as_ref().map(|p| p.since);
            if change.is_none() || change != waiting_on {
                // Flipped by another client (the maintenance loop of
                // `quire up`, say), or nothing was pending.
                last.change = waiting_on;
                last.flipped = waiting_on.is_some();
                last.keys_copied = copied;
                // Whatever held the flip back no longer does.
                last.flip_waits_for.clear();
                return last;
            }
            let change = change.expect("pending");
            let started = std::time::Instant::now();
            // A round stops at the deadline: its transfers are dropped
            // mid-page, and resume from the receivers' marks next time.
            let round = self.transfer_round(&doc, (change, &pacer), parallel, &mut progress);
            // Cut off by the deadline: reported as it stands, not closed.
            let (keys, failed, waiting, cut_off) =
                match tokio::time::timeout_at(deadline, round).await {
                    Ok((keys, failed, waiting)) => (keys, failed, waiting, false),
                    Err(_) => (0, Vec::new(), 0, true),
                };
            copied += keys;
            tracing::info!(
                keys,
                failed = failed.len(),
                waiting,
                seconds = started.elapsed().as_secs_f64(),
                parallel,
                "transfer round"
            );
            let mut report = self.transfers_report(false).await;
            report.keys_copied = copied;
            report.waiting = waiting;
            report.unreachable.extend(failed);
            if cut_off {
                // Why the flip waited when it was last tried still holds.
                report.flip_waits_for = std::mem::take(&mut last.flip_waits_for);
            }
            if !cut_off
                && report.is_idle()
                && report.unreachable.is_empty()
                && report.change == Some(change)
            {
                self.refresh_membership().await;
                if self.membership().pending != doc.pending {
                    last = report;
                    continue; // flipped meanwhile: reported at the top
                }
                let started = std::time::Instant::now();
                let closing = self.close_and_flip(&doc, change, parallel).await;
                tracing::info!(
                    flipped = closing.flipped,
                    repaired = closing.repaired,
                    seconds = started.elapsed().as_secs_f64(),
                    "closing exchanges and flip"
                );
                closing.into_report(&mut report);
                if report.flipped {
                    progress(&report);
                    return report;
                }
            }
            last = report.clone();
            progress(&report);
            if tokio::time::Instant::now() >= deadline {
                return report;
            }
            // Another round at once while rounds copy data (transfers that
            // waited for a slot, a mark another client moved back before
            // it was done); a pause when nothing moved.
            if keys == 0 || !report.unreachable.is_empty() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(RETRY_PAUSE.min(left)).await;
            }
            self.refresh_membership().await;
        }
    }

    /// Runs every transfer of `doc`'s change to its end, `parallel` at a
    /// time; the keys copied, why each transfer that failed did, and how
    /// many waited for a slot on their receiver.
    async fn transfer_round(
        &self,
        doc: &Arc<Membership>,
        (change, pacer): (u64, &Arc<Pacer>),
        parallel: usize,
        progress: &mut impl FnMut(&TransferReport),
    ) -> (u64, Vec<String>, u64) {
        let mut queue = TransferQueue::new(doc.transfers());
        let mut running = JoinSet::new();
        let (mut copied, mut failed, mut finished, mut waiting) = (0, Vec::new(), 0u64, 0);
        loop {
            while running.len() < parallel {
                let Some(t) = queue.start_next() else { break };
                let (client, doc, pacer) = (self.clone(), doc.clone(), pacer.clone());
                running.spawn(async move {
                    let mut budget = usize::MAX;
                    let result = super::pages::run_transfer(
                        &client,
                        &doc,
                        &t,
                        (change, &pacer),
                        &mut budget,
                    )
                    .await;
                    (t, result)
                });
            }
            let Some(joined) = running.join_next().await else {
                // Transfers still held back: only for a receiver whose
                // transfer task panicked, so its end was never counted.
                // They are left for the next round.
                waiting += queue.pending() as u64;
                return (copied, failed, waiting);
            };
            match joined {
                Ok((t, Ok(keys))) => {
                    queue.ended(t, false);
                    copied += keys;
                }
                Ok((t, Err(Stalled::Waiting(why)))) => {
                    // Tried again this round if a transfer of ours to the
                    // receiver will free a slot; else the next round.
                    if queue.ended(t, true).is_none() {
                        continue;
                    }
                    tracing::debug!(%why, "transfer waits for a slot on its receiver");
                    waiting += 1;
                }
                Ok((t, Err(Stalled::Failed(e)))) => {
                    queue.ended(t, false);
                    failed.push(e);
                }
                Err(e) => failed.push(format!("a transfer task ended: {e}")),
            }
            finished += 1;
            progress(&TransferReport {
                change: Some(change),
                pending: queue.pending() as u64,
                active: running.len() as u64,
                done: finished,
                keys_copied: copied,
                ..TransferReport::default()
            });
        }
    }
}
