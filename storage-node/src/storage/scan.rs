//! Reads over many keys: a partition's keys in chosen Merkle segments (for
//! anti-entropy and tombstone reaping), and the node's totals (`Stats`).
//!
//! A segment's keys are spread over its partition by hash, so a scan walks
//! the partition's keys in order and keeps those of the asked segments.
//! Each page is bounded twice: by the bytes it returns (so it fits a
//! frame) and by the keys it examines (so one request holds a read
//! transaction for a bounded time however few keys match); the cursor is
//! the last key examined.

use super::keys::partition_prefix;
use super::records::{for_each_record, record_of};
use super::{corrupt, decode, Storage, StorageError};
use lmdb::{Cursor, Transaction};
use quire_shared::merkle::{segment_of, SEGMENTS};
use quire_shared::ring::key_position;
use quire_shared::wire::Listing;
use quire_shared::{NodeId, Object};
use std::collections::BTreeMap;

/// One page of a segment scan.
#[derive(Debug, Default)]
pub struct ScanPage {
    /// `(user key, object)` in key order.
    pub entries: Vec<(Vec<u8>, Object)>,
    /// The user key to resume after, when keys are left to examine.
    pub next: Option<Vec<u8>>,
}

/// What a node holds for one store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys stored (tombstoned ones included).
    pub objects: u64,
    /// Bytes of their stored records.
    pub bytes: u64,
    /// Keys whose only values are tombstones.
    pub tombstones: u64,
}

/// A node's totals: per store, and hints per home node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Per store name.
    pub stores: BTreeMap<String, StoreStats>,
    /// Hints held per home node.
    pub hints: BTreeMap<NodeId, u64>,
}

/// What a segment scan asks for.
#[derive(Clone, Debug)]
pub struct ScanRequest<'a> {
    /// Store name.
    pub store: &'a str,
    /// Partition.
    pub partition: u32,
    /// Segments to keep (all when empty); each below [`SEGMENTS`].
    pub segments: &'a [u16],
    /// Keep only keys whose values are all tombstones.
    pub tombstones_only: bool,
    /// What the caller will send for each key: the page's byte bound
    /// counts a digest listing's keys at their digest's size, not their
    /// object's.
    pub listing: Listing,
    /// Resume after this user key.
    pub after: Option<&'a [u8]>,
    /// Most bytes of records in the page (at least one entry is returned).
    pub bytes_max: usize,
    /// Most keys examined in the page.
    pub examined_max: usize,
}

pub use quire_shared::reap::only_tombstones;

impl Storage {
    /// A page of the keys of `req.store`'s partition in `req.segments`.
    pub fn scan_segments(&self, req: &ScanRequest<'_>) -> Result<ScanPage, StorageError> {
        let mut wanted = vec![req.segments.is_empty(); usize::from(SEGMENTS)];
        for &s in req.segments {
            if let Some(w) = wanted.get_mut(usize::from(s)) {
                *w = true;
            }
        }
        let prefix = partition_prefix(req.store, req.partition);
        let mut start = prefix.clone();
        if let Some(after) = req.after {
            start.extend_from_slice(after);
        }
        let txn = self.env.begin_ro_txn()?;
        let mut cursor = txn.open_ro_cursor(self.data)?;
        let mut page = ScanPage::default();
        let (mut bytes, mut examined) = (0usize, 0usize);
        let mut last: Option<&[u8]> = None;
        for item in cursor.iter_from(&start) {
            let (k, v) = item?;
            let Some(key) = k.strip_prefix(&prefix[..]) else {
                break;
            };
            if req.after == Some(key) {
                continue; // the cursor itself was in the previous page
            }
            if examined >= req.examined_max.max(1) {
                page.next = last.map(<[u8]>::to_vec);
                break;
            }
            // Only a kept key's record is read: it may sit anywhere in
            // the file (see `records`).
            let kept = wanted[usize::from(segment_of(&key_position(req.store, key)))];
            let record = kept
                .then(|| record_of(&txn, self.objects, k, v))
                .transpose()?;
            let size = record.map_or(0, |record| {
                key.len()
                    + match req.listing {
                        Listing::Objects => record.len(),
                        Listing::Digests => 16,
                    }
            });
            if record.is_some() && !page.entries.is_empty() && bytes + size > req.bytes_max {
                page.next = last.map(<[u8]>::to_vec);
                break;
            }
            examined += 1;
            last = Some(key);
            let Some(record) = record else {
                continue;
            };
            let object: Object = decode(record, k)?;
            if req.tombstones_only && !only_tombstones(&object) {
                continue;
            }
            bytes += size;
            page.entries.push((key.to_vec(), object));
        }
        Ok(page)
    }

    /// The node's totals, from one pass over data and hints. An admin
    /// request: its cost grows with the data, like a backup's.
    pub fn stats(&self) -> Result<StorageStats, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        let mut out = StorageStats::default();
        for_each_record(&txn, (self.data, self.objects), |k, record| {
            let (store, _, _) = super::split_data_key(k).ok_or_else(|| corrupt(k))?;
            let object: Object = decode(record, k)?;
            let entry = out.stores.entry(store).or_default();
            entry.objects += 1;
            entry.bytes += record.len() as u64;
            entry.tombstones += u64::from(only_tombstones(&object));
            Ok(())
        })?;
        let mut cursor = txn.open_ro_cursor(self.hints)?;
        for item in cursor.iter_start() {
            let (k, _) = item?;
            let home = k
                .get(..8)
                .and_then(|h| <[u8; 8]>::try_from(h).ok())
                .ok_or_else(|| corrupt(k))?;
            *out.hints
                .entry(NodeId(u64::from_be_bytes(home)))
                .or_default() += 1;
        }
        Ok(out)
    }
}
