//! The single writer thread: group commit.
//!
//! LMDB allows one write transaction at a time, and each commit costs an
//! fsync. Concurrent writes are therefore queued here, and the writer applies
//! everything waiting (up to a batch limit) in one transaction, commits once,
//! then answers every caller. A batch's writes are acknowledged only after
//! the commit, so an acknowledged write is on disk.

use crate::storage::{Storage, StorageError};
use quire_shared::dvvset::VersionVector;
use quire_shared::{Membership, NodeId, Object, Value};
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
}

type Job = (WriteOp, oneshot::Sender<Result<WriteOutcome, StorageError>>);

/// Handle to the writer thread; clone freely.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
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
    ) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH_MAX);
        let handle = std::thread::Builder::new()
            .name("quire-writer".into())
            .spawn(move || run(storage, actor_id, batch_writes_max, rx))
            .expect("spawning the writer thread");
        (Self { jobs: tx }, handle)
    }

    /// Queues `op` and waits for its commit.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((op, tx))
            .await
            .map_err(|_| StorageError::WriterStopped)?;
        rx.await.map_err(|_| StorageError::WriterStopped)?
    }
}

fn run(storage: Storage, actor_id: u64, batch_max: usize, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(batch_max);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&storage, actor_id, &mut batch);
    }
}

/// Applies and commits one batch, then answers every job in it.
fn commit_batch(storage: &Storage, actor_id: u64, batch: &mut Vec<Job>) {
    let mut results: Vec<Result<WriteOutcome, StorageError>> = Vec::with_capacity(batch.len());
    let committed = (|| -> Result<(), StorageError> {
        let mut txn = storage.begin_write()?;
        for (op, _) in batch.iter() {
            results.push(apply(&mut txn, actor_id, op));
        }
        txn.commit()
    })();
    for (i, (_, reply)) in batch.drain(..).enumerate() {
        let outcome = match &committed {
            // A failed commit stored nothing: every write in the batch fails.
            Err(e) => Err(StorageError::NotCommitted(e.to_string())),
            Ok(()) => results
                .get_mut(i)
                .map(|r| std::mem::replace(r, Err(StorageError::WriterStopped)))
                .unwrap_or(Err(StorageError::WriterStopped)),
        };
        // The caller may have given up (timeout); the write stands anyway.
        let _ = reply.send(outcome);
    }
}

fn apply(
    txn: &mut crate::storage::WriteTxn<'_>,
    actor_id: u64,
    op: &WriteOp,
) -> Result<WriteOutcome, StorageError> {
    match op {
        WriteOp::Put {
            data_key,
            value,
            context,
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let next = stored.update(context, actor_id, value.clone());
            txn.put_object(data_key, &next)?;
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: None,
        } => {
            let stored = txn.get_object(data_key)?.unwrap_or_default();
            let next = stored.sync(object);
            if next != stored {
                txn.put_object(data_key, &next)?;
            }
            Ok(WriteOutcome::Stored(next))
        }
        WriteOp::Replicate {
            data_key,
            object,
            hint: Some(home),
        } => {
            let stored = txn.get_hint(*home, data_key)?.unwrap_or_default();
            let next = stored.sync(object);
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
