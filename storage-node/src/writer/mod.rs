//! The single writer thread: group commit.
//!
//! LMDB allows one write transaction at a time, and each commit costs an
//! fsync (of the pages it wrote; see [`Storage::sync`]). Concurrent writes
//! are therefore queued here, and the writer applies what is waiting (up
//! to a batch limit, foreground writes and transfer pages in turns: see
//! `lanes`) in one transaction, commits once, then answers every caller. A batch's writes are acknowledged only after the commit; when
//! the batch holds a write to a `sync` store, the commit's meta page is
//! also flushed first, so such an acknowledged write survives power loss.
//! For batches of `buffered` stores only, a flusher thread flushes the
//! meta page on an interval: they survive a process crash (the commit
//! reached the OS) but an OS crash or power loss may undo the commits of
//! the last interval.
//!
//! # Layout
//!
//! - this file: the [`Writer`] handle, the job queue, batching, and
//!   answering callers once their batch is committed (and fsynced);
//! - `op`: the writes ([`WriteOp`]) and what each produced ([`WriteOutcome`]);
//! - `apply`: what each [`WriteOp`] does inside the transaction, and the
//!   stand-in actor;
//! - `lanes`: transfer pages committed apart from foreground writes;
//! - `guard`: what a write may not store (object limits, dots the node
//!   never issued), refused before anything is written;
//! - `flusher`: the thread that fsyncs `buffered` commits on an interval.

mod apply;
pub mod failstop;
mod flusher;
mod guard;
mod lanes;
#[cfg(test)]
mod merkle_tests;
mod op;
mod queue;
#[cfg(test)]
mod tests;

use crate::storage::fresh_id;
use crate::storage::{Storage, StorageError};
use apply::{apply, Actors};
use failstop::FailStop;
use flusher::Flusher;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use quire_shared::ActorId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use op::{WriteOp, WriteOutcome};
pub use queue::Bounds;
use queue::QueueBytes;

/// A queued write: the operation, whether it waits for an fsync, and
/// where its result goes.
type Job = (
    WriteOp,
    bool,
    oneshot::Sender<Result<WriteOutcome, StorageError>>,
);

/// Handle to the writer thread; clone freely.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    queue_bytes: QueueBytes,
    stats: Arc<WriterStats>,
    fail_stop: FailStop,
}

/// Counters of the writer thread: `writes / commits` is the group-commit
/// batching factor (each commit is one fsync).
#[derive(Debug)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes applied in committed transactions.
    pub writes: AtomicU64,
    /// Meta-page fsyncs made before acknowledging (batches holding a
    /// `sync` write).
    pub syncs: AtomicU64,
    /// Writes per committed batch, for the node's metrics.
    pub batch_writes: Histogram,
    /// Seconds each fsync before an acknowledgement took, for the metrics.
    pub fsync_seconds: Histogram,
    /// Writes the writer has taken out of its queue into its lanes and
    /// not yet committed: they still wait, and count in the queue's depth.
    pub in_lanes: std::sync::atomic::AtomicUsize,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            commits: AtomicU64::default(),
            writes: AtomicU64::default(),
            syncs: AtomicU64::default(),
            batch_writes: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            fsync_seconds: crate::metrics::latency(),
            in_lanes: Default::default(),
        }
    }
}

impl WriterStats {
    /// `(commits, writes)` now.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

/// Queue depth before callers wait: bounds memory under overload.
const QUEUE_DEPTH_MAX: usize = 4096;

impl Writer {
    /// Starts the writer thread. It stops when every [`Writer`] handle is
    /// dropped, after finishing the queued writes.
    pub fn start(
        storage: Storage,
        actor_id: ActorId,
        bounds: Bounds,
        flush_interval: std::time::Duration,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH_MAX);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let fail_stop = FailStop::default();
        let thread_fail_stop = fail_stop.clone();
        let handle = std::thread::Builder::new()
            .name("quire-writer".into())
            .spawn(move || {
                let flusher =
                    Flusher::start(storage.clone(), flush_interval, thread_fail_stop.clone());
                let context = BatchContext {
                    storage: &storage,
                    stats: &thread_stats,
                    flusher: &flusher,
                    fail_stop: &thread_fail_stop,
                };
                run(&context, actor_id, bounds.batch_writes_max, rx);
                flusher.stop();
                save_merkle_at_stop(&storage, &thread_fail_stop);
            })
            .expect("spawning the writer thread");
        (
            Self {
                jobs: tx,
                queue_bytes: QueueBytes::new(bounds.queue_bytes_max),
                stats,
                fail_stop,
            },
            handle,
        )
    }

    /// Set once an fsync failed: the writer then refuses every write, and
    /// the node should exit (see [`failstop`]).
    pub fn fail_stop(&self) -> &FailStop {
        &self.fail_stop
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Writes queued for the writer thread (in its channel, or taken into
    /// its lanes and not yet in a batch), and bytes held by queued and
    /// committing writes.
    pub fn queued(&self) -> (usize, usize) {
        (
            self.jobs.max_capacity() - self.jobs.capacity()
                + self.stats.in_lanes.load(Ordering::Relaxed),
            self.queue_bytes.taken(),
        )
    }

    /// Queues `op` and waits for its commit; with `durable`, also for the
    /// fsync that follows it.
    pub async fn write(&self, op: WriteOp, durable: bool) -> Result<WriteOutcome, StorageError> {
        // Held until answered: the op's bytes count against the queue's
        // while it waits and while its batch commits.
        let _bytes = self.queue_bytes.take(&op).await;
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((op, durable, tx))
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        rx.await.map_err(|_| StorageError::WriterStopped)?
    }
}

/// What every batch of the writer thread works with.
struct BatchContext<'a> {
    storage: &'a Storage,
    stats: &'a WriterStats,
    flusher: &'a Flusher,
    fail_stop: &'a FailStop,
}

/// After the last commit of a clean stop, leaves the in-memory Merkle
/// segments for the next open. Not after a failed fsync: what is on disk
/// is then unknown, and the next open rebuilds from the data (the data
/// file refuses the save's commit then anyway). A failure to save costs
/// only that rebuild.
fn save_merkle_at_stop(storage: &Storage, fail_stop: &FailStop) {
    if let Some(reason) = fail_stop.reason() {
        tracing::warn!(%reason, "not saving the Merkle segments after a failed fsync: the next start rebuilds them");
        return;
    }
    if let Err(e) = storage.save_merkle() {
        tracing::warn!(error = %e, "could not save the Merkle segments: the next start rebuilds them");
    }
}

/// The writer thread's loop: takes what is waiting (at most two batches'
/// worth at a time) and commits it in batches (up to `batch_max` each; transfer pages apart from the
/// foreground, see `lanes`) until every handle is dropped.
fn run(
    context: &BatchContext<'_>,
    actor_id: ActorId,
    batch_max: usize,
    mut rx: mpsc::Receiver<Job>,
) {
    let mut actors = Actors {
        node: actor_id,
        hint: ActorId(fresh_id()),
    };
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    let mut lanes = lanes::Lanes::new();
    let page = |job: &Job| matches!(job.0, WriteOp::TransferPage { .. });
    loop {
        if lanes.is_empty() {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let is_page = page(&first);
            lanes.push(first, is_page);
        }
        // At most two batches' worth out of the queue: the rest waits
        // there, so the queue's depth still bounds the jobs held.
        while lanes.len() < 2 * batch_max {
            let Ok(job) = rx.try_recv() else {
                break;
            };
            let is_page = page(&job);
            lanes.push(job, is_page);
        }
        lanes.next_batch(batch_max, &mut batch);
        context.stats.in_lanes.store(lanes.len(), Ordering::Relaxed);
        if let Some(reason) = context.fail_stop.reason() {
            // Nothing more is written once an fsync has failed.
            for (_, _, reply) in batch.drain(..) {
                let _ = reply.send(Err(StorageError::FailStopped(reason.clone())));
            }
            continue;
        }
        commit_batch(context, &mut actors, &mut batch);
    }
}

/// Applies and commits one batch, then answers every job in it. True if
/// the batch committed.
fn commit_batch(context: &BatchContext<'_>, actors: &mut Actors, batch: &mut Vec<Job>) -> bool {
    let BatchContext {
        storage,
        stats,
        flusher,
        fail_stop,
    } = context;
    let mut results: Vec<Result<WriteOutcome, StorageError>> = Vec::with_capacity(batch.len());
    let actors_before = (actors.node, actors.hint);
    let committed = (|| -> Result<(), StorageError> {
        let mut txn = storage.begin_write()?;
        for (op, _, _) in batch.iter() {
            results.push(apply(&mut txn, actors, op));
        }
        txn.commit()
    })();
    if let Err(e) = &committed {
        // Nothing was stored, actor changes included.
        (actors.node, actors.hint) = actors_before;
        // The commit's own fsync failed (or one before it did): the kernel
        // may have dropped pages it could not write, as with a failed
        // `sync` below.
        if e.is_write_back_failure() {
            fail_stop.trip(e.to_string());
        }
    }
    // The commit flushed its pages; one more fsync, of its meta page, for
    // the whole batch if any write in it needs one.
    let synced = if committed.is_ok() && batch.iter().any(|(_, durable, _)| *durable) {
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let done = storage.sync();
        stats.fsync_seconds.observe(started.elapsed().as_secs_f64());
        match done {
            Err(e) => {
                fail_stop.trip(e.to_string());
                Err(e.to_string())
            }
            // The flusher fsyncs the same file from its thread: once its
            // fsync has reported an error, ours may return success for pages
            // the kernel already dropped. A trip by anyone means no ack.
            Ok(()) => fail_stop.reason().map_or(Ok(()), Err),
        }
    } else {
        if committed.is_ok() {
            flusher.mark_dirty();
        }
        Ok(())
    };
    if committed.is_ok() {
        // Counted before anyone is answered: a caller that saw its write
        // acknowledged also sees it in the counters.
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.batch_writes.observe(batch.len() as f64);
    }
    // Why a commit failed: LMDB poisons the transaction at its first
    // failure (a full data file, say), so the commit's own error only
    // says the transaction was bad; the first write's error says why.
    let cause = committed.as_ref().err().map(|e| {
        results
            .iter()
            .find_map(|r| match r {
                Err(first @ (StorageError::Full | StorageError::Lmdb(_))) => {
                    Some(first.to_string())
                }
                _ => None,
            })
            .unwrap_or_else(|| e.to_string())
    });
    for (i, (_, durable, reply)) in batch.drain(..).enumerate() {
        let outcome = match (&committed, &synced) {
            // A failed commit stored nothing: every write in the batch fails.
            (Err(_), _) => Err(StorageError::NotCommitted(
                cause.clone().unwrap_or_default(),
            )),
            // Committed but not known to be on disk: not acknowledged.
            (Ok(()), Err(e)) if durable => Err(StorageError::FailStopped(e.clone())),
            _ => results
                .get_mut(i)
                .map(|r| std::mem::replace(r, Err(StorageError::WriterStopped)))
                .unwrap_or(Err(StorageError::WriterStopped)),
        };
        // The caller may have given up (timeout); the write stands anyway.
        let _ = reply.send(outcome);
    }
    committed.is_ok()
}
