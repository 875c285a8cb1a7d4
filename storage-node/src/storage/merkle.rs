//! The Merkle segments of [`quire_shared::merkle`], per (store,
//! partition), kept in memory and current with every commit; and the
//! `merkle` database, where a clean stop leaves them for the next open.
//!
//! Why in memory: kept in LMDB inside each write transaction, every write
//! also rewrote a segment record's page and the path above it, about a
//! third of the pages a commit flushes, and workload A ran about 1.15x
//! faster without them (`docs/benchmarks.md`). In memory they cost 16 KiB
//! per partition held (1 024 segments of 16 bytes).
//!
//! A write transaction collects its segment changes and applies them when
//! it commits, so the segments never describe a write LMDB undid.
//!
//! Across restarts. At a clean stop the writer thread, after its last
//! commit, writes the segments to the `merkle` database and sets the
//! `merkle_format` marker in `meta` in one transaction, and fsyncs it. An
//! open that finds the marker loads the segments from there, then deletes
//! the marker durably before the node writes anything: a crash after that
//! point finds no marker, and the next open rebuilds the segments from the
//! data (one pass over every key; the README's anti-entropy section says
//! how long).
//! A directory of an older node (marker format 2, segments kept in every
//! transaction, so always current) loads the same way; a marker of any
//! other format is removed and the segments rebuilt.
//!
//! Database layout. Key: `store length ‖ store ‖ partition (u32 BE) ‖
//! segment (u16 BE)` (the data key's prefix and a segment); value: the
//! 16-byte hash. An empty segment has no record. Beside the segments,
//! under segment number [`TOMBSTONES`] (no segment has it), the count of
//! the partition's keys whose values are all tombstones (u64 BE): an
//! exchange learns from it, with the root, whether reaping has anything
//! to look at.

use super::keys::{partition_prefix, split_data_key};
use super::{corrupt, decode, Storage, StorageError, WriteTxn, FORMAT_V1};
use lmdb::{Cursor, Transaction, WriteFlags};
use quire_shared::merkle::{entry_change, segment_of, SegmentHash, Segments, SEGMENTS};
use quire_shared::reap::only_tombstones;
use quire_shared::ring::key_position;
use quire_shared::Object;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Meta record whose presence says the `merkle` database holds the
/// segments of exactly the data committed; its value names the format.
pub(super) const META_MERKLE_FORMAT: &[u8] = b"merkle_format";
/// The format written at a clean stop. 3: a snapshot, valid only while
/// the marker stands.
const MERKLE_FORMAT: u8 = 3;
/// The format older nodes wrote: segments kept in every transaction, so
/// current whenever the marker stands.
const MERKLE_FORMAT_TRANSACTIONAL: u8 = 2;

/// The pseudo-segment under which a partition's tombstone count is kept.
const TOMBSTONES: u16 = u16::MAX;

/// A partition's segments and the count of its tombstone-only keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionSummary {
    /// The segment hashes.
    pub segments: Segments,
    /// Keys whose values are all tombstones.
    pub tombstones: u64,
}

/// Where an open found the segments: what a restart cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MerkleSource {
    /// Read back from a clean stop (or an older node's database).
    Saved,
    /// Rebuilt from the data: the last stop was not clean.
    Rebuilt,
}

/// Every partition's summary, in memory, shared by the handles of one
/// storage.
#[derive(Clone, Default)]
pub(crate) struct Index(Arc<Mutex<HashMap<(String, u32), PartitionSummary>>>);

impl Index {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, u32), PartitionSummary>> {
        // A panic elsewhere while holding it cannot leave a half-applied
        // change: every change is one XOR and one addition.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a committed transaction's changes.
    pub(super) fn apply(&self, pending: &[Pending]) {
        if pending.is_empty() {
            return;
        }
        let mut index = self.lock();
        for p in pending {
            let key = (p.store.clone(), p.partition);
            let emptied = match index.get_mut(&key) {
                Some(summary) => p.apply_to(summary),
                None => p.apply_to(index.entry(key.clone()).or_default()),
            };
            if emptied {
                // A partition emptied (dropped after a move) costs nothing.
                index.remove(&key);
            }
        }
    }

    /// Empties it (tests that wipe the data).
    #[cfg(any(test, feature = "fault-injection"))]
    fn clear(&self) {
        self.lock().clear();
    }
}

/// One segment change of a write transaction, applied at its commit.
pub(crate) struct Pending {
    store: String,
    partition: u32,
    segment: u16,
    change: SegmentHash,
    tombstones: i64,
}

impl Pending {
    /// Applies the change; true when it left the partition's summary
    /// empty (every segment and the count zero).
    fn apply_to(&self, summary: &mut PartitionSummary) -> bool {
        let segment = &mut summary.segments.0[usize::from(self.segment)];
        segment.toggle(self.change);
        summary.tombstones = summary.tombstones.saturating_add_signed(self.tombstones);
        segment.is_empty()
            && summary.tombstones == 0
            && summary.segments.0.iter().all(SegmentHash::is_empty)
    }
}

/// The LMDB key of one segment.
fn segment_key(store: &str, partition: u32, segment: u16) -> Vec<u8> {
    let mut k = partition_prefix(store, partition);
    k.extend_from_slice(&segment.to_be_bytes());
    k
}

impl Storage {
    /// The segment hashes of `store`'s `partition` as committed.
    pub fn merkle_segments(&self, store: &str, partition: u32) -> Result<Segments, StorageError> {
        Ok(self.partition_summary(store, partition)?.segments)
    }

    /// The segment hashes and tombstone count of `store`'s `partition`,
    /// as committed.
    pub fn partition_summary(
        &self,
        store: &str,
        partition: u32,
    ) -> Result<PartitionSummary, StorageError> {
        Ok(self
            .index
            .lock()
            .get(&(store.to_owned(), partition))
            .cloned()
            .unwrap_or_default())
    }

    /// Where the last open found the segments.
    pub fn merkle_source(&self) -> MerkleSource {
        self.merkle_source
    }

    /// At open, before anything is written: loads the segments a clean
    /// stop saved, or rebuilds them from the data, then durably removes
    /// the marker, so that a crash from here on is followed by a rebuild.
    pub(super) fn load_merkle(&mut self) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let (marked, saved) = {
            let txn = self.env.begin_ro_txn()?;
            match txn.get(self.meta, &META_MERKLE_FORMAT) {
                Ok(v)
                    if v == [FORMAT_V1, MERKLE_FORMAT]
                        || v == [FORMAT_V1, MERKLE_FORMAT_TRANSACTIONAL] =>
                {
                    // A copy that does not read costs a rebuild, not the
                    // start: it is only a shortcut.
                    let read = self.read_saved(&txn);
                    if let Err(e) = &read {
                        tracing::warn!(error = %e, "the saved Merkle segments do not read: rebuilding them from the data");
                    }
                    (true, read.ok())
                }
                // A marker of a format this binary does not know (a newer
                // one's) is removed too, below: left standing, that binary
                // would trust its copy after this one wrote data.
                Ok(_) => (true, None),
                Err(lmdb::Error::NotFound) => (false, None),
                Err(e) => return Err(e.into()),
            }
        };
        match saved {
            Some(index) => {
                *self.index.lock() = index;
                self.merkle_source = MerkleSource::Saved;
            }
            None => {
                self.rebuild_merkle()?;
                self.merkle_source = MerkleSource::Rebuilt;
            }
        }
        if marked {
            let mut txn = self.env.begin_rw_txn()?;
            txn.del(self.meta, &META_MERKLE_FORMAT, None)?;
            txn.commit()?;
            self.sync()?;
        }
        tracing::info!(
            source = ?self.merkle_source,
            partitions = self.index.lock().len(),
            seconds = started.elapsed().as_secs_f64(),
            "Merkle segments ready"
        );
        Ok(())
    }

    /// Every summary in the `merkle` database.
    fn read_saved(
        &self,
        txn: &impl Transaction,
    ) -> Result<HashMap<(String, u32), PartitionSummary>, StorageError> {
        let mut out: HashMap<(String, u32), PartitionSummary> = HashMap::new();
        let mut cursor = txn.open_ro_cursor(self.merkle)?;
        for item in cursor.iter_start() {
            let (k, v) = item?;
            // The key is a data key's prefix with the segment as its "key".
            let (store, partition, segment) = split_data_key(k).ok_or_else(|| corrupt(k))?;
            let summary = out.entry((store, partition)).or_default();
            match <[u8; 2]>::try_from(segment.as_slice()).map(u16::from_be_bytes) {
                Ok(TOMBSTONES) => {
                    let count = <[u8; 8]>::try_from(v).map_err(|_| corrupt(k))?;
                    summary.tombstones = u64::from_be_bytes(count);
                }
                Ok(s) if s < SEGMENTS => {
                    let hash = <[u8; 16]>::try_from(v).map_err(|_| corrupt(k))?;
                    summary.segments.0[usize::from(s)] = SegmentHash(hash);
                }
                _ => return Err(corrupt(k)),
            }
        }
        Ok(out)
    }

    /// Writes the segments to the `merkle` database with the marker that
    /// makes the next open trust them, and fsyncs. Only at a clean stop,
    /// after the writer's last commit: a write after this would leave them
    /// stale with the marker standing.
    pub(crate) fn save_merkle(&self) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let index = self.index.lock().clone();
        let mut txn = self.env.begin_rw_txn()?;
        txn.clear_db(self.merkle)?;
        for ((store, partition), summary) in &index {
            for (i, hash) in summary.segments.0.iter().enumerate() {
                if !hash.is_empty() {
                    let k = segment_key(store, *partition, i as u16);
                    txn.put(self.merkle, &k, &hash.0, WriteFlags::empty())?;
                }
            }
            if summary.tombstones > 0 {
                let k = segment_key(store, *partition, TOMBSTONES);
                let count = summary.tombstones.to_be_bytes();
                txn.put(self.merkle, &k, &count, WriteFlags::empty())?;
            }
        }
        txn.put(
            self.meta,
            &META_MERKLE_FORMAT,
            &[FORMAT_V1, MERKLE_FORMAT],
            WriteFlags::empty(),
        )?;
        let _turn = self.flushes.turn()?;
        txn.commit()?;
        drop(_turn);
        self.sync()?;
        tracing::info!(
            partitions = index.len(),
            seconds = started.elapsed().as_secs_f64(),
            "Merkle segments saved for the next start"
        );
        Ok(())
    }

    /// Rebuilds the segments from the data. Only at open, before the
    /// writer starts (or in tests): the rebuild must see every data
    /// write. Records come in slot order (see `records`), so each one's
    /// partition is looked up.
    pub(crate) fn rebuild_merkle(&self) -> Result<(), StorageError> {
        let mut built: HashMap<(String, u32), PartitionSummary> = HashMap::new();
        let txn = self.env.begin_ro_txn()?;
        super::records::for_each_record(&txn, (self.data, self.objects), |k, record| {
            let (store, p, key) = split_data_key(k).ok_or_else(|| corrupt(k))?;
            let object: Object = decode(record, k)?;
            let summary = built.entry((store.clone(), p)).or_default();
            summary.segments.apply(&store, &key, None, Some(&object));
            summary.tombstones += u64::from(only_tombstones(&object));
            Ok(())
        })?;
        drop(txn);
        *self.index.lock() = built;
        Ok(())
    }

    /// Removes the marker, as a data directory from before the `merkle`
    /// database or after a crash would be.
    #[cfg(test)]
    pub(crate) fn forget_merkle_for_tests(&self) {
        let mut txn = self.env.begin_rw_txn().unwrap();
        txn.clear_db(self.merkle).unwrap();
        let _ = txn.del(self.meta, &META_MERKLE_FORMAT, None);
        txn.commit().unwrap();
        self.index.clear();
    }

    /// Rewrites the marker with `format`, as an older node would have left
    /// it.
    #[cfg(test)]
    pub(crate) fn set_merkle_format_for_tests(&self, format: u8) {
        let mut txn = self.env.begin_rw_txn().unwrap();
        let marker = [FORMAT_V1, format];
        txn.put(self.meta, &META_MERKLE_FORMAT, &marker, WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }

    /// The marker's value, if one stands.
    #[cfg(test)]
    pub(crate) fn merkle_marker_for_tests(&self) -> Option<Vec<u8>> {
        let txn = self.env.begin_ro_txn().unwrap();
        txn.get(self.meta, &META_MERKLE_FORMAT)
            .ok()
            .map(<[u8]>::to_vec)
    }

    /// How many partitions the in-memory segments hold.
    #[cfg(test)]
    pub(crate) fn merkle_partitions_for_tests(&self) -> usize {
        self.index.lock().len()
    }

    /// Empties the data, its segments and the hints, keeping the node's
    /// identity: a node that lost every object (tests of anti-entropy).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn wipe_data(&self) -> Result<(), StorageError> {
        let mut txn = self.env.begin_rw_txn()?;
        for db in [self.data, self.objects, self.free, self.merkle, self.hints] {
            txn.clear_db(db)?;
        }
        // In turn with the writer's commits, so none applies its segment
        // changes to the index between the wipe and the clear.
        let turn = self.flushes.turn()?;
        txn.commit()?;
        self.index.clear();
        drop(turn);
        self.sync()
    }
}

impl WriteTxn<'_> {
    /// Records in `data_key`'s segment that its object went from `before`
    /// to `after`: the XOR of [`entry_change`], in this transaction.
    pub(super) fn merkle_change(
        &mut self,
        data_key: &[u8],
        before: Option<&Object>,
        after: Option<&Object>,
    ) -> Result<(), StorageError> {
        let (store, partition, key) = split_data_key(data_key).ok_or_else(|| corrupt(data_key))?;
        let change = entry_change(&key, before, after);
        if change.is_empty() {
            return Ok(());
        }
        let dead = |o: Option<&Object>| i64::from(o.is_some_and(only_tombstones));
        let segment = segment_of(&key_position(&store, &key));
        self.merkle_pending.push(Pending {
            store,
            partition,
            segment,
            change,
            tombstones: dead(after) - dead(before),
        });
        Ok(())
    }

    /// The summary of `store`'s `partition` as this transaction sees it:
    /// the committed one with this transaction's changes.
    pub(super) fn summary_now(&self, store: &str, partition: u32) -> PartitionSummary {
        let mut summary = self
            .storage
            .partition_summary(store, partition)
            .unwrap_or_default();
        for p in &self.merkle_pending {
            if p.store == store && p.partition == partition {
                p.apply_to(&mut summary);
            }
        }
        summary
    }
}
