//! The `merkle` database: per (store, partition) the segment hashes of
//! [`quire_shared::merkle`], kept current inside the write transaction that
//! changes the data, and rebuilt from the data when their format is new.
//!
//! Key: `store length ‖ store ‖ partition (u32 BE) ‖ segment (u16 BE)`
//! (the data key's prefix and a segment); value: the 16-byte hash. An
//! empty segment has no record, so a partition that holds nothing costs
//! nothing. Beside the segments, under segment number [`TOMBSTONES`] (no
//! segment has it), the count of the partition's keys whose values are all
//! tombstones (u64 BE), kept in the same transactions: an exchange learns
//! from it, with the root, whether reaping has anything to look at.
//!
//! Why no rebuild after a crash: the segment update and the data write it
//! describes commit in one LMDB transaction, and LMDB commits are atomic
//! (a crash undoes whole transactions, never half of one). The structure
//! can therefore only be stale when it did not exist (a data directory
//! from before this code) or when its hashing changes; both are caught by
//! the format marker in `meta`, checked at every open.

use super::keys::{partition_prefix, split_data_key};
use super::{corrupt, decode, Storage, StorageError, WriteTxn, FORMAT_V1};
use lmdb::{Cursor, Database, Transaction, WriteFlags};
use quire_shared::merkle::{entry_change, segment_of, SegmentHash, Segments, SEGMENTS};
use quire_shared::reap::only_tombstones;
use quire_shared::ring::key_position;
use quire_shared::Object;

/// Meta record naming the format of the `merkle` database. Bump it when
/// segment hashing changes: the next open rebuilds from the data.
pub(super) const META_MERKLE_FORMAT: &[u8] = b"merkle_format";
/// The current format of the `merkle` database. 2: tombstone counts.
pub(super) const MERKLE_FORMAT: u8 = 2;

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

/// The LMDB key of one segment.
fn segment_key(store: &str, partition: u32, segment: u16) -> Vec<u8> {
    let mut k = partition_prefix(store, partition);
    k.extend_from_slice(&segment.to_be_bytes());
    k
}

/// Every segment of a partition and its tombstone count, read in one
/// pass (absent segments empty, an absent count zero).
pub(super) fn summary_in(
    txn: &impl Transaction,
    db: Database,
    store: &str,
    partition: u32,
) -> Result<PartitionSummary, StorageError> {
    let prefix = partition_prefix(store, partition);
    let mut out = PartitionSummary::default();
    let mut cursor = txn.open_ro_cursor(db)?;
    for item in cursor.iter_from(&prefix) {
        let (k, v) = item?;
        let Some(rest) = k.strip_prefix(&prefix[..]) else {
            break;
        };
        let segment = <[u8; 2]>::try_from(rest).map(u16::from_be_bytes);
        match segment {
            Ok(TOMBSTONES) => {
                let count = <[u8; 8]>::try_from(v).map_err(|_| corrupt(k))?;
                out.tombstones = u64::from_be_bytes(count);
            }
            Ok(s) if s < SEGMENTS => {
                let hash = <[u8; 16]>::try_from(v).map_err(|_| corrupt(k))?;
                out.segments.0[usize::from(s)] = SegmentHash(hash);
            }
            _ => return Err(corrupt(k)),
        }
    }
    Ok(out)
}

impl Storage {
    /// The segment hashes of `store`'s `partition` as committed.
    pub fn merkle_segments(&self, store: &str, partition: u32) -> Result<Segments, StorageError> {
        Ok(self.partition_summary(store, partition)?.segments)
    }

    /// The segment hashes and tombstone count of `store`'s `partition`,
    /// as committed (one read transaction: the two agree).
    pub fn partition_summary(
        &self,
        store: &str,
        partition: u32,
    ) -> Result<PartitionSummary, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        summary_in(&txn, self.merkle, store, partition)
    }

    /// Rebuilds the `merkle` database from the data in one transaction and
    /// records its format. Only at open, before the writer starts (or in
    /// tests): the rebuild must see every data write. Data keys are
    /// ordered by store and partition, so one partition's segments are in
    /// memory at a time (16 KiB).
    pub fn rebuild_merkle(&self) -> Result<(), StorageError> {
        let mut txn = self.env.begin_rw_txn()?;
        txn.clear_db(self.merkle)?;
        let mut start: Option<Vec<u8>> = None;
        // One iteration per partition holding data.
        loop {
            let mut segments = Segments::default();
            let mut tombstones = 0u64;
            let mut partition: Option<(String, u32)> = None;
            let mut next: Option<Vec<u8>> = None;
            {
                let mut cursor = txn.open_ro_cursor(self.data)?;
                let iter = match &start {
                    Some(k) => cursor.iter_from(k),
                    None => cursor.iter_start(),
                };
                for item in iter {
                    let (k, v) = item?;
                    let (store, p, key) = split_data_key(k).ok_or_else(|| corrupt(k))?;
                    match &partition {
                        None => partition = Some((store.clone(), p)),
                        Some((s, q)) if *s == store && *q == p => {}
                        Some(_) => {
                            next = Some(k.to_vec());
                            break;
                        }
                    }
                    let object: Object = decode(v, k)?;
                    segments.apply(&store, &key, None, Some(&object));
                    tombstones += u64::from(only_tombstones(&object));
                }
            }
            let Some((store, p)) = partition else { break };
            for (i, hash) in segments.0.iter().enumerate() {
                if !hash.is_empty() {
                    let k = segment_key(&store, p, i as u16);
                    txn.put(self.merkle, &k, &hash.0, WriteFlags::empty())?;
                }
            }
            if tombstones > 0 {
                let k = segment_key(&store, p, TOMBSTONES);
                txn.put(
                    self.merkle,
                    &k,
                    &tombstones.to_be_bytes(),
                    WriteFlags::empty(),
                )?;
            }
            match next {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        txn.put(
            self.meta,
            &META_MERKLE_FORMAT,
            &[FORMAT_V1, MERKLE_FORMAT],
            WriteFlags::empty(),
        )?;
        txn.commit()?;
        Ok(())
    }

    /// Empties the `merkle` database and its format marker, as a data
    /// directory from before it would be.
    #[cfg(test)]
    pub(crate) fn forget_merkle_for_tests(&self) {
        let mut txn = self.env.begin_rw_txn().unwrap();
        txn.clear_db(self.merkle).unwrap();
        txn.del(self.meta, &META_MERKLE_FORMAT, None).unwrap();
        txn.commit().unwrap();
    }

    /// Empties the data, its segments and the hints, keeping the node's
    /// identity: a node that lost every object (tests of anti-entropy).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn wipe_data(&self) -> Result<(), StorageError> {
        let mut txn = self.env.begin_rw_txn()?;
        for db in [self.data, self.merkle, self.hints] {
            txn.clear_db(db)?;
        }
        txn.commit()?;
        self.sync()
    }

    /// True when the `merkle` database is of the current format (else the
    /// open rebuilds it).
    pub(super) fn merkle_current(&self) -> Result<bool, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        match txn.get(self.meta, &META_MERKLE_FORMAT) {
            Ok(v) => Ok(v == [FORMAT_V1, MERKLE_FORMAT]),
            Err(lmdb::Error::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
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
        let delta = dead(after) - dead(before);
        if delta != 0 {
            self.tombstone_count_change(&store, partition, delta)?;
        }
        let segment = segment_of(&key_position(&store, &key));
        let k = segment_key(&store, partition, segment);
        let mut hash = match self.txn.get(self.storage.merkle, &k) {
            Ok(v) => SegmentHash(<[u8; 16]>::try_from(v).map_err(|_| corrupt(&k))?),
            Err(lmdb::Error::NotFound) => SegmentHash::default(),
            Err(e) => return Err(e.into()),
        };
        hash.toggle(change);
        if hash.is_empty() {
            match self.txn.del(self.storage.merkle, &k, None) {
                Ok(()) | Err(lmdb::Error::NotFound) => Ok(()),
                Err(e) => Err(e.into()),
            }
        } else {
            Ok(self
                .txn
                .put(self.storage.merkle, &k, &hash.0, WriteFlags::empty())?)
        }
    }

    /// Adds `delta` (±1) to a partition's tombstone count, in this
    /// transaction; a count of zero has no record.
    fn tombstone_count_change(
        &mut self,
        store: &str,
        partition: u32,
        delta: i64,
    ) -> Result<(), StorageError> {
        let k = segment_key(store, partition, TOMBSTONES);
        let count = match self.txn.get(self.storage.merkle, &k) {
            Ok(v) => u64::from_be_bytes(<[u8; 8]>::try_from(v).map_err(|_| corrupt(&k))?),
            Err(lmdb::Error::NotFound) => 0,
            Err(e) => return Err(e.into()),
        };
        let count = count.checked_add_signed(delta).ok_or_else(|| corrupt(&k))?;
        if count == 0 {
            match self.txn.del(self.storage.merkle, &k, None) {
                Ok(()) | Err(lmdb::Error::NotFound) => Ok(()),
                Err(e) => Err(e.into()),
            }
        } else {
            let bytes = count.to_be_bytes();
            Ok(self
                .txn
                .put(self.storage.merkle, &k, &bytes, WriteFlags::empty())?)
        }
    }
}
