//! The writer queue's bounds: how many writes may wait, and how many
//! bytes they may hold between them.
//!
//! A count alone does not bound memory: one queued job may be a 16-byte
//! transfer mark or a 16 MiB replicated object, so 4096 jobs may be
//! anything from 64 KiB to 64 GiB. Each write therefore takes its size from
//! a byte pool before it is queued and gives it back once answered; a
//! write that does not fit waits, and with it the request that made it.

use super::WriteOp;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much the writer queue may hold.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Most writes committed together in one transaction (group commit).
    pub batch_writes_max: usize,
    /// Bytes of queued writes at once (`storage.writer_queue_bytes_max`).
    pub queue_bytes_max: u64,
}

/// The byte pool writes are queued against.
#[derive(Clone, Debug)]
pub(super) struct QueueBytes {
    pool: Arc<Semaphore>,
    max: u32,
}

impl QueueBytes {
    /// A pool of `max` bytes (held below 4 GiB, a permit count's range).
    pub(super) fn new(max: u64) -> Self {
        let max = u32::try_from(max).unwrap_or(u32::MAX).max(1);
        Self {
            pool: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// Waits until `op` fits, and holds its bytes until the permit is
    /// dropped. A write larger than the whole pool takes all of it, so it
    /// is delayed, never refused.
    pub(super) async fn take(&self, op: &WriteOp) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(op_bytes(op)).unwrap_or(u32::MAX);
        self.pool
            .clone()
            .acquire_many_owned(bytes.clamp(1, self.max))
            .await
            .ok()
    }

    /// Bytes not taken now.
    pub(super) fn available(&self) -> usize {
        self.pool.available_permits()
    }

    /// Bytes taken now: queued writes and the batch being committed.
    pub(super) fn taken(&self) -> usize {
        (self.max as usize).saturating_sub(self.available())
    }
}

/// Bytes a context or clock takes in memory: two u64 per entry.
fn clock_bytes(clock: &quire_shared::VersionVector) -> usize {
    16 * clock.pairs().len()
}

/// An upper estimate of the memory `op` holds while queued, from lengths
/// only (nothing is encoded to measure it).
pub(super) fn op_bytes(op: &WriteOp) -> usize {
    const BASE: usize = 128;
    BASE + match op {
        WriteOp::Put {
            data_key,
            value,
            context,
            members,
            ..
        } => data_key.len() + value.size_bytes() + clock_bytes(context) + 8 * members.len(),
        WriteOp::Replicate {
            data_key,
            object,
            members,
            ..
        } => data_key.len() + object.size_bytes() + 8 * members.len(),
        WriteOp::DeleteIfEqual { data_key, object } => data_key.len() + object.size_bytes(),
        WriteOp::TransferPage { items, members, .. } => {
            8 * members.len()
                + items
                    .iter()
                    .map(|(key, object)| 48 + key.len() + object.size_bytes())
                    .sum::<usize>()
        }
        WriteOp::DropHints { items, .. } => items
            .iter()
            .map(|(key, clock)| 48 + key.len() + clock_bytes(clock))
            .sum(),
        WriteOp::DropPartition { store, .. } => store.len() + 64,
        WriteOp::Membership { doc, .. } => {
            let members: usize = doc
                .members
                .iter()
                .map(|m| 64 + m.addr.len() + m.zone.len())
                .sum();
            let owners =
                8 * (doc.owners.len() + doc.pending.as_ref().map_or(0, |p| p.owners.len()));
            members + owners + 128 * doc.stores.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_shared::{ConflictPolicy, StoreLimits, Value, VersionVector};
    use std::time::Duration;

    fn put(value_bytes: usize) -> WriteOp {
        WriteOp::Put {
            data_key: b"key".to_vec(),
            value: Value::bytes(vec![1; value_bytes], 1),
            context: VersionVector::new(),
            hint: None,
            members: Vec::new(),
            policy: ConflictPolicy::Siblings,
            limits: StoreLimits::default(),
        }
    }

    #[tokio::test]
    async fn queued_bytes_are_bounded_and_a_write_over_the_bound_still_passes_alone() {
        let queue = QueueBytes::new(10_000);
        let small = queue.take(&put(1_000)).await.expect("fits");
        assert!(queue.available() < 9_000, "the value's bytes are counted");
        // Larger than the whole pool: it waits for every byte, then passes.
        let huge = put(1 << 20);
        let waiting = tokio::time::timeout(Duration::from_millis(50), queue.take(&huge)).await;
        assert!(waiting.is_err(), "a write that does not fit waits");
        drop(small);
        let held = queue.take(&huge).await.expect("alone it passes");
        assert_eq!(queue.available(), 0);
        drop(held);
        assert_eq!(queue.available(), 10_000);
    }
}
