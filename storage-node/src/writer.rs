//! The single writer thread: group commit.
//!
//! LMDB allows one write transaction at a time, and each commit costs an
//! fsync. Concurrent writes are therefore queued here, and the writer applies
//! everything waiting (up to a batch limit) in one transaction, commits once,
//! then answers every caller. A batch's writes are acknowledged only after
//! the commit; when the batch holds a write to a `sync` store it is also
//! fsynced first, so such an acknowledged write survives power loss. Writes
//! to `buffered` stores are flushed by a flusher thread on an interval:
//! they survive a process crash (the commit reached the OS) but an OS crash
//! or power loss may undo the last interval.

use crate::storage::{Storage, StorageError};
use quire_shared::dvvset::VersionVector;
use quire_shared::{Membership, NodeId, Object, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One write, fully validated by the caller.
#[derive(Debug)]
pub enum WriteOp {
    /// A coordinated write: a new dot at this node's actor.
    Put {
        /// LMDB key.
        data_key: Vec<u8>,
        /// The new value or tombstone.
        value: Value,
        /// What the writer had seen.
        context: VersionVector,
        /// `Some(home)`: coordinate as a stand-in and keep the result as a
        /// hint for `home`.
        hint: Option<NodeId>,
        /// Every member: a stand-in's base object merges its hint copies
        /// of the key for all of them.
        members: Vec<NodeId>,
        /// The store is last-write-wins: keep only the newest value.
        lww: bool,
    },
    /// Forget delivered hints for `target` unless they changed since.
    DropHints {
        /// The home node.
        target: NodeId,
        /// `(data key, object as delivered)`.
        items: Vec<(Vec<u8>, Object)>,
    },
    /// Sync a replicated object into the local one (or into the hint area
    /// for `hint`).
    Replicate {
        /// LMDB key.
        data_key: Vec<u8>,
        /// The object to merge.
        object: Object,
        /// Home node when stored as a hint.
        hint: Option<NodeId>,
        /// The store is last-write-wins: keep only the newest value.
        lww: bool,
    },
    /// Keep `doc` if it is newer than the stored document.
    Membership(Membership),
}

/// What a write produced.
#[derive(Debug)]
pub enum WriteOutcome {
    /// The object now stored under the key (or hint).
    Stored(Object),
    /// The membership document now held (the offered one or a newer one).
    Membership(Membership),
    /// Hints dropped.
    Dropped(u32),
}

/// Meta record of the actor a stand-in uses for the dots it makes.
///
/// A stand-in forgets a hinted object once it is delivered home, and with
/// it the dots it made for that key; reusing one of those dots for another
/// value would make the home replica treat two values as one and drop one.
/// So the stand-in actor is replaced whenever delivered hints are dropped:
/// dots of a new actor cannot collide with forgotten ones. Stand-ins only
/// coordinate when every home replica is down, so this adds few actors.
const META_HINT_ACTOR: &[u8] = b"hint_actor";

type Job = (
    WriteOp,
    bool,
    oneshot::Sender<Result<WriteOutcome, StorageError>>,
);

/// Handle to the writer thread; clone freely.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
}

/// Counters of the writer thread: `writes / commits` is the group-commit
/// batching factor (each commit is one fsync).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes applied in committed transactions.
    pub writes: AtomicU64,
    /// fsyncs made before acknowledging (batches holding a `sync` write).
    pub syncs: AtomicU64,
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
        actor_id: u64,
        batch_writes_max: usize,
        flush_interval: std::time::Duration,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH_MAX);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("quire-writer".into())
            .spawn(move || {
                let flusher = Flusher::start(storage.clone(), flush_interval);
                run(
                    storage,
                    actor_id,
                    batch_writes_max,
                    rx,
                    &thread_stats,
                    &flusher,
                );
                flusher.stop();
            })
            .expect("spawning the writer thread");
        (Self { jobs: tx, stats }, handle)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues `op` and waits for its commit; with `durable`, also for the
    /// fsync that follows it.
    pub async fn write(&self, op: WriteOp, durable: bool) -> Result<WriteOutcome, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((op, durable, tx))
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        rx.await.map_err(|_| StorageError::WriterStopped)?
    }
}

/// Flushes buffered commits to disk on an interval.
struct Flusher {
    state: Arc<(std::sync::Mutex<FlushState>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct FlushState {
    dirty: bool,
    stopping: bool,
}

impl Flusher {
    fn start(storage: Storage, interval: std::time::Duration) -> Self {
        let state: Arc<(std::sync::Mutex<FlushState>, std::sync::Condvar)> = Arc::default();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("quire-flusher".into())
            .spawn(move || loop {
                let (lock, wake) = &*shared;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (mut guard, _) = wake
                    .wait_timeout(guard, interval)
                    .unwrap_or_else(|e| e.into_inner());
                let flush = std::mem::take(&mut guard.dirty);
                let stopping = guard.stopping;
                drop(guard);
                if flush {
                    if let Err(e) = storage.sync() {
                        tracing::error!(error = %e, "flushing buffered writes failed");
                    }
                }
                if stopping {
                    return;
                }
            })
            .expect("spawning the flusher thread");
        Self {
            state,
            thread: Some(thread),
        }
    }

    fn mark_dirty(&self) {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner()).dirty = true;
    }

    /// Flushes what is left and stops the thread.
    fn stop(mut self) {
        {
            let mut s = self.state.0.lock().unwrap_or_else(|e| e.into_inner());
            s.stopping = true;
        }
        self.state.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer's identity for the dots it makes.
struct Actors {
    /// The node's own actor (home replica coordination).
    node: u64,
    /// The stand-in actor (see [`META_HINT_ACTOR`]); 0 until loaded.
    hint: u64,
}

fn fresh_actor() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

fn load_hint_actor(storage: &Storage) -> Result<u64, StorageError> {
    let mut txn = storage.begin_write()?;
    let actor = match txn.get_meta_u64(META_HINT_ACTOR)? {
        Some(a) => a,
        None => {
            let a = fresh_actor();
            txn.put_meta_u64(META_HINT_ACTOR, a)?;
            a
        }
    };
    txn.commit()?;
    Ok(actor)
}

fn run(
    storage: Storage,
    actor_id: u64,
    batch_max: usize,
    mut rx: mpsc::Receiver<Job>,
    stats: &WriterStats,
    flusher: &Flusher,
) {
    let mut actors = Actors {
        node: actor_id,
        hint: 0,
    };
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if actors.hint == 0 {
            // Loaded lazily so a storage failure is reported to a caller.
            match load_hint_actor(&storage) {
                Ok(a) => actors.hint = a,
                Err(e) => {
                    for (_, _, reply) in batch.drain(..) {
                        let _ = reply.send(Err(StorageError::NotCommitted(e.to_string())));
                    }
                    continue;
                }
            }
        }
        let writes = batch.len() as u64;
        if commit_batch(&storage, &mut actors, &mut batch, flusher, stats) {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(writes, Ordering::Relaxed);
        }
    }
}

/// Applies and commits one batch, then answers every job in it. True if
/// the batch committed.
fn commit_batch(
    storage: &Storage,
    actors: &mut Actors,
    batch: &mut Vec<Job>,
    flusher: &Flusher,
    stats: &WriterStats,
) -> bool {
    let mut results: Vec<Result<WriteOutcome, StorageError>> = Vec::with_capacity(batch.len());
    let hint_actor_before = actors.hint;
    let committed = (|| -> Result<(), StorageError> {
        let mut txn = storage.begin_write()?;
        for (op, _, _) in batch.iter() {
            results.push(apply(&mut txn, actors, op));
        }
        txn.commit()
    })();
    if committed.is_err() {
        // Nothing was stored, the stand-in actor change included.
        actors.hint = hint_actor_before;
    }
    // One fsync for the whole batch if any write in it needs one.
    let synced = if committed.is_ok() && batch.iter().any(|(_, durable, _)| *durable) {
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        storage.sync().map_err(|e| e.to_string())
    } else {
        if committed.is_ok() {
            flusher.mark_dirty();
        }
        Ok(())
    };
    for (i, (_, durable, reply)) in batch.drain(..).enumerate() {
        let outcome = match (&committed, &synced) {
            // A failed commit stored nothing: every write in the batch fails.
            (Err(e), _) => Err(StorageError::NotCommitted(e.to_string())),
            // Committed but not known to be on disk: not acknowledged.
            (Ok(()), Err(e)) if durable => Err(StorageError::NotCommitted(e.clone())),
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

/// In a last-write-wins store only the newest value is kept on disk.
fn collapse(object: Object, lww: bool) -> Object {
    if lww {
        quire_shared::last_write_wins(&object)
    } else {
        object
    }
}

fn apply(
    txn: &mut crate::storage::WriteTxn<'_>,
    actors: &mut Actors,
    op: &WriteOp,
) -> Result<WriteOutcome, StorageError> {
    match op {
        WriteOp::Put {
            data_key,
            value,
            context,
            hint: None,
            lww,
            ..
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let next = collapse(stored.update(context, actors.node, value.clone()), *lww);
            txn.put_object(data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Put {
            data_key,
            value,
            context,
            hint: Some(home),
            members,
            lww,
        } => {
            // Every local copy of the key, so the new dot is above any
            // dot this stand-in actor made for it and still remembers.
            let mut base = txn.get_object(data_key)?.unwrap_or_default();
            for m in members.iter().chain(std::iter::once(home)) {
                if let Some(held) = txn.get_hint(*m, data_key)? {
                    base = base.sync(&held);
                }
            }
            let next = collapse(base.update(context, actors.hint, value.clone()), *lww);
            txn.put_hint(*home, data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::DropHints { target, items } => {
            let mut dropped = 0;
            for (data_key, delivered) in items {
                let Some(held) = txn.get_hint(*target, data_key)? else {
                    continue;
                };
                // Drop only what was delivered: a hint written to since
                // the read has news for the home node.
                if held.less(delivered) || held.equal_history(delivered) {
                    txn.del_hint(*target, data_key)?;
                    dropped += 1;
                }
            }
            if dropped > 0 {
                actors.hint = fresh_actor();
                txn.put_meta_u64(META_HINT_ACTOR, actors.hint)?;
            }
            Ok(WriteOutcome::Dropped(dropped))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: None,
            lww,
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let next = collapse(stored.sync(object), *lww);
            if next != stored {
                txn.put_object(data_key, &next)?;
            }
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: Some(home),
            lww,
        } => {
            let stored = txn.get_hint(*home, data_key)?.unwrap_or_default();
            let next = collapse(stored.sync(object), *lww);
            if next != stored {
                txn.put_hint(*home, data_key, &next)?;
            }
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Membership(doc) => match txn.get_membership()? {
            Some(current) if current.epoch >= doc.epoch => Ok(WriteOutcome::Membership(current)),
            _ => {
                txn.put_membership(doc)?;
                Ok(WriteOutcome::Membership(doc.clone()))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::data_key;

    const FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

    fn open(dir: &std::path::Path) -> (Storage, crate::storage::Identity) {
        Storage::open(dir, 64 << 20).expect("storage opens")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, id) = open(dir.path());
        let (writer, thread) = Writer::start(storage.clone(), id.actor_id, 256, FLUSH);
        let tasks: Vec<_> = (0..400u32)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .write(
                            WriteOp::Put {
                                data_key: data_key("s", 0, &i.to_be_bytes()),
                                value: Value::bytes(i.to_be_bytes().to_vec(), 1),
                                context: VersionVector::new(),
                                hint: None,
                                members: Vec::new(),
                                lww: false,
                            },
                            true,
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Ok(WriteOutcome::Stored(_))));
        }
        let (commits, writes) = writer.stats().snapshot();
        assert_eq!(writes, 400);
        assert!(
            commits < 400,
            "no batching: {commits} commits for 400 writes"
        );
        for i in 0..400u32 {
            let o = storage
                .get(&data_key("s", 0, &i.to_be_bytes()))
                .unwrap()
                .expect("acknowledged write is stored");
            assert_eq!(
                o.values().next().unwrap().data.as_deref(),
                Some(&i.to_be_bytes()[..])
            );
        }
        drop(writer);
        thread.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_writes_skip_the_fsync_that_sync_writes_wait_for() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, id) = open(dir.path());
        let (writer, thread) = Writer::start(storage.clone(), id.actor_id, 8, FLUSH);
        let put = |i: u8| WriteOp::Put {
            data_key: data_key("s", 0, &[i]),
            value: Value::bytes(vec![i], 1),
            context: VersionVector::new(),
            hint: None,
            members: Vec::new(),
            lww: false,
        };
        for i in 0..5 {
            writer.write(put(i), false).await.unwrap();
        }
        assert_eq!(writer.stats().syncs.load(Ordering::Relaxed), 0);
        for i in 5..8 {
            writer.write(put(i), true).await.unwrap();
        }
        assert_eq!(writer.stats().syncs.load(Ordering::Relaxed), 3);
        for i in 0..8 {
            assert!(storage.get(&data_key("s", 0, &[i])).unwrap().is_some());
        }
        drop(writer);
        thread.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identity_and_data_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = data_key("s", 3, b"k");
        let first = {
            let (storage, id) = open(dir.path());
            let (writer, thread) = Writer::start(storage, id.actor_id, 8, FLUSH);
            let op = WriteOp::Put {
                data_key: key.clone(),
                value: Value::bytes(b"v".to_vec(), 1),
                context: VersionVector::new(),
                hint: None,
                members: Vec::new(),
                lww: false,
            };
            let Ok(WriteOutcome::Stored(o)) = writer.write(op, true).await else {
                panic!("put failed");
            };
            assert_eq!(
                o.entries()[0].actor,
                id.actor_id,
                "the node's actor assigns the dot"
            );
            drop(writer);
            thread.join().unwrap();
            id
        };
        let (storage, id) = open(dir.path());
        assert_eq!(id, first);
        assert_eq!(storage.get(&key).unwrap().unwrap().value_count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicate_syncs_and_an_older_membership_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, id) = open(dir.path());
        let (writer, _thread) = Writer::start(storage.clone(), id.actor_id, 8, FLUSH);
        let key = data_key("s", 0, b"k");
        let mut remote = Object::new();
        remote.event(7, Value::bytes(b"remote".to_vec(), 1));
        writer
            .write(
                WriteOp::Put {
                    data_key: key.clone(),
                    value: Value::bytes(b"local".to_vec(), 1),
                    context: VersionVector::new(),
                    hint: None,
                    members: Vec::new(),
                    lww: false,
                },
                true,
            )
            .await
            .unwrap();
        writer
            .write(
                WriteOp::Replicate {
                    data_key: key.clone(),
                    object: remote,
                    hint: None,
                    lww: false,
                },
                true,
            )
            .await
            .unwrap();
        assert_eq!(storage.get(&key).unwrap().unwrap().value_count(), 2);

        let member = |id| quire_shared::Member {
            id,
            addr: format!("127.0.0.1:{id}"),
            zone: "z".into(),
            weight: 1,
        };
        let mut newer = Membership::new(1, 16, vec![member(1)], Vec::new()).unwrap();
        newer.epoch = 5;
        let mut older = newer.clone();
        older.epoch = 4;
        writer
            .write(WriteOp::Membership(newer), true)
            .await
            .unwrap();
        let Ok(WriteOutcome::Membership(held)) =
            writer.write(WriteOp::Membership(older), true).await
        else {
            panic!("membership write failed");
        };
        assert_eq!(held.epoch, 5);
        assert_eq!(storage.membership().unwrap().unwrap().epoch, 5);
    }
}
