//! Anti-entropy and reaping requests: Merkle digests of a partition, scans
//! of its segments, the node's totals, and the conditional delete.
//!
//! These only read, so a node answers them for any partition of a known
//! store: the SDK chooses whose copies to compare (the home replicas for
//! anti-entropy; an old owner and the new home replicas when a copy is
//! handed off after a membership change).

use super::{refuse, storage_failed, unexpected, NodeState};
use crate::storage::{ScanRequest, StorageStats};
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::limits::{FRAME_ENVELOPE_BYTES, KEY_BYTES_MAX};
use quire_shared::merkle::{entry_hash, root, SEGMENTS};
use quire_shared::wire::{
    Entry, ErrorCode, ErrorReply, KeyDigest, Listing, NodeStats, PartitionDigest, Reply,
    StoreTotals,
};
use quire_shared::{Durability, Membership, Object};
use std::sync::Arc;

/// Most keys a scan page examines: bounds how long one request holds a
/// read transaction and the CPU it costs (one MD5 per key).
const SCAN_EXAMINED_MAX: usize = 65_536;

impl NodeState {
    /// Checks that `store` exists and `partition` is in range; the
    /// membership document checked against, and the store's `N`. Every
    /// per-partition request starts here.
    pub(super) fn known_partition(
        &self,
        store: &str,
        partition: u32,
    ) -> Result<(Arc<Membership>, usize), ErrorReply> {
        let doc = self.membership().ok_or_else(|| {
            refuse(
                ErrorCode::NoMembership,
                "node has no membership document yet",
            )
        })?;
        let Some(n) = doc.store(store).map(|s| usize::from(s.n)) else {
            return Err(refuse(
                ErrorCode::UnknownStore,
                format!("store {store:?} does not exist"),
            ));
        };
        if partition >= doc.partitions {
            return Err(refuse(
                ErrorCode::PartitionOutOfRange,
                format!(
                    "partition {partition} is out of range (the ring has {})",
                    doc.partitions
                ),
            ));
        }
        Ok((doc, n))
    }

    /// The root of the node's segments of a partition, and its count of
    /// tombstone-only keys.
    pub(super) fn merkle_root(&self, store: &str, partition: u32) -> Result<Reply, ErrorReply> {
        self.known_partition(store, partition)?;
        let summary = self
            .storage
            .partition_summary(store, partition)
            .map_err(storage_failed)?;
        self.metrics.merkle_root_served();
        Ok(Reply::MerkleRoot(PartitionDigest {
            root: summary.segments.root(),
            tombstones: summary.tombstones,
        }))
    }

    /// Digests of a range of segments, `group` segments per digest.
    pub(super) fn merkle_segments(
        &self,
        store: &str,
        partition: u32,
        (first, count, group): (u16, u16, u16),
    ) -> Result<Reply, ErrorReply> {
        self.known_partition(store, partition)?;
        let end = u32::from(first) + u32::from(count);
        if end > u32::from(SEGMENTS) || group == 0 {
            return Err(refuse(
                ErrorCode::SegmentOutOfRange,
                format!(
                    "segments {first}..{end} in groups of {group}: a partition has {SEGMENTS} segments and groups are 1 or more"
                ),
            ));
        }
        let segments = self
            .storage
            .merkle_segments(store, partition)
            .map_err(storage_failed)?;
        let range = &segments.0[usize::from(first)..end as usize];
        let digests = match group {
            1 => range.iter().map(|s| s.0).collect(),
            g => range.chunks(usize::from(g)).map(root).collect(),
        };
        Ok(Reply::MerkleSegments(digests))
    }

    /// A page of a partition's keys in `segments`, with their objects or
    /// their digests. The scan runs on a blocking thread: a page of
    /// objects (up to the frame limit, decoded key by key) would otherwise
    /// hold one of the runtime's few workers for milliseconds, and the
    /// foreground requests queued behind it there would wait (a transfer
    /// or anti-entropy pass showing in the reads' tail latency).
    pub(super) async fn scan_segment(
        &self,
        (store, partition): (&str, u32),
        segments: &[u16],
        (tombstones_only, listing): (bool, Listing),
        (after, asked_bytes): (Option<&[u8]>, Option<u32>),
    ) -> Result<Reply, ErrorReply> {
        self.known_partition(store, partition)?;
        if segments.len() > usize::from(SEGMENTS) || segments.iter().any(|&s| s >= SEGMENTS) {
            return Err(refuse(
                ErrorCode::SegmentOutOfRange,
                format!("a scan names at most {SEGMENTS} segments, each below {SEGMENTS}"),
            ));
        }
        if after.is_some_and(|c| c.is_empty() || c.len() > KEY_BYTES_MAX) {
            return Err(refuse(
                ErrorCode::BadCursor,
                format!("a scan cursor is a key of 1 to {KEY_BYTES_MAX} bytes"),
            ));
        }
        // The asker's bound, if smaller; a page still holds at least one
        // key, so a bound of 0 or below one record only makes pages small.
        let bytes_max = (self.limits.frame_bytes_max as usize)
            .saturating_sub(FRAME_ENVELOPE_BYTES)
            .min(asked_bytes.map_or(usize::MAX, |b| b as usize));
        let storage = self.storage.clone();
        let (store, segments, after) = (
            store.to_owned(),
            segments.to_vec(),
            after.map(<[u8]>::to_vec),
        );
        let page = tokio::task::spawn_blocking(move || {
            storage.scan_segments(&ScanRequest {
                store: &store,
                partition,
                segments: &segments,
                tombstones_only,
                listing,
                after: after.as_deref(),
                bytes_max,
                examined_max: SCAN_EXAMINED_MAX,
            })
        })
        .await
        .map_err(|e| {
            refuse(
                ErrorCode::Storage,
                format!("a segment scan ended without an answer: {e}"),
            )
        })?
        .map_err(storage_failed)?;
        Ok(match listing {
            Listing::Objects => Reply::Segment {
                entries: page
                    .entries
                    .into_iter()
                    .map(|(key, object)| Entry { key, object })
                    .collect(),
                next: page.next,
            },
            Listing::Digests => Reply::SegmentDigests {
                keys: page
                    .entries
                    .into_iter()
                    .map(|(key, object)| KeyDigest {
                        digest: entry_hash(&key, &object).0,
                        key,
                    })
                    .collect(),
                next: page.next,
            },
        })
    }

    /// The node's totals. A pass over every record (tens of ms per
    /// 100 000), so it runs on a blocking thread like a scan: on a runtime
    /// worker it held up every read queued there (measured beside a
    /// join, whose status reports asked each source for its totals).
    pub(super) async fn stats(&self) -> Result<Reply, ErrorReply> {
        let storage = self.storage.clone();
        let StorageStats { stores, hints } = tokio::task::spawn_blocking(move || storage.stats())
            .await
            .map_err(|e| {
                refuse(
                    ErrorCode::Storage,
                    format!("the totals pass ended without an answer: {e}"),
                )
            })?
            .map_err(storage_failed)?;
        Ok(Reply::Stats(NodeStats {
            stores: stores
                .into_iter()
                .map(|(store, s)| StoreTotals {
                    store,
                    objects: s.objects,
                    bytes: s.bytes,
                    tombstones: s.tombstones,
                })
                .collect(),
            hints: hints.into_iter().collect(),
            merkle_exchanges: self.metrics.merkle_roots_served(),
        }))
    }

    /// Removes a key if it still holds exactly `object`.
    pub(super) async fn delete_if_equal(
        &self,
        store: &str,
        key: &[u8],
        object: Object,
    ) -> Result<Reply, ErrorReply> {
        let data_key = self.locate(store, key)?;
        self.check_home_replica(store, key, None)?;
        object
            .validate()
            .map_err(|e| refuse(ErrorCode::InvalidObject, format!("object: {e}")))?;
        let durable = self
            .membership()
            .and_then(|m| m.store(store).map(|s| s.durability))
            .is_none_or(|d| d == Durability::Sync);
        let op = WriteOp::DeleteIfEqual { data_key, object };
        match self
            .writer
            .write(op, durable)
            .await
            .map_err(storage_failed)?
        {
            WriteOutcome::Deleted(d) => Ok(Reply::Deleted(d)),
            other => Err(unexpected(&other)),
        }
    }
}
