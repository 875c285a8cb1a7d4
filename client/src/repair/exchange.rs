//! One anti-entropy exchange: the home replicas of a (store, partition)
//! compare Merkle digests, scan only the segments that differ, and each
//! replica that lacks the merge of a key is sent it.
//!
//! The descent is root → 32 groups of 32 segments → the segments of the
//! groups that differ → the keys of the segments that differ, so the
//! bytes grow with the differences, not with the data: for one differing
//! key a replica sends a root (16 bytes), 32 group digests (512 bytes),
//! 32 segment hashes (512 bytes) and one segment's keys.
//!
//! Only merges are sent, through `Replicate`, which a node `sync`s into
//! what it holds: a replica never takes an older value for a newer one,
//! and a write that lands during the exchange survives it.

use super::RepairReport;
use crate::client::Client;
use quire_shared::merkle::SEGMENTS;
use quire_shared::replica;
use quire_shared::wire::{encode_frame, Entry, Reply, Request, Response};
use quire_shared::{Member, Object, StoreConfig};
use std::collections::BTreeMap;

/// Segments per digest in the first step of the descent.
const GROUP: u16 = 32;
/// Scan pages asked of one replica in one exchange: bounds an exchange
/// against a node that never ends its cursor.
const SCAN_PAGES_MAX: usize = 10_000;

/// What a segment scan of one replica returned.
#[derive(Default)]
pub(super) struct Scan {
    /// Keys and objects, in key order.
    pub(super) entries: Vec<Entry>,
    /// True when the scan reached the end of the partition: a key not in
    /// `entries` is not held (or not of the kind asked for).
    pub(super) complete: bool,
}

impl Client {
    /// One request of an exchange, its bytes (request and answer frames)
    /// counted in `report`.
    pub(super) async fn repair_call(
        &self,
        node: &Member,
        request: &Request,
        report: &mut RepairReport,
    ) -> Result<Reply, String> {
        let timeout = self.request_timeout();
        let answer = self.transport().call(&node.addr, request, timeout).await;
        self.observe(node.id, answer.as_ref());
        report.bytes += encode_frame(request).len() as u64;
        match answer {
            Ok(response) => {
                report.bytes += encode_frame(&response).len() as u64;
                match response {
                    Response { result: Ok(r), .. } => {
                        r.validated().map_err(|e| format!("malformed reply: {e}"))
                    }
                    Response { result: Err(e), .. } => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Asks `request` of every replica in `nodes`; those that fail are
    /// dropped from `nodes` (and reported).
    async fn ask_all<T>(
        &self,
        nodes: &mut Vec<Member>,
        request: &Request,
        report: &mut RepairReport,
        expect: impl Fn(Reply) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(nodes.len());
        let mut kept = Vec::with_capacity(nodes.len());
        for node in nodes.drain(..) {
            match self.repair_call(&node, request, report).await.map(&expect) {
                Ok(Some(v)) => {
                    out.push(v);
                    kept.push(node);
                }
                Ok(None) => report
                    .unreachable
                    .push(format!("{}: unexpected answer", node.addr)),
                Err(e) => report.unreachable.push(format!("{}: {e}", node.addr)),
            }
        }
        *nodes = kept;
        out
    }

    /// Runs the exchange for `store`'s `partition` between `homes`; true
    /// when every one of them answered every digest request (the
    /// precondition for reaping the partition's tombstones).
    pub(super) async fn exchange(
        &self,
        store: &StoreConfig,
        partition: u32,
        homes: &[Member],
        report: &mut RepairReport,
    ) -> bool {
        report.partitions_checked += 1;
        let mut nodes = homes.to_vec();
        let name = store.name.clone();
        let root = Request::MerkleRoot {
            store: name.clone(),
            partition,
        };
        let roots = self
            .ask_all(&mut nodes, &root, report, |r| match r {
                Reply::MerkleRoot(h) => Some(h),
                _ => None,
            })
            .await;
        let all_equal = |v: &[Vec<[u8; 16]>], i: usize| v.iter().all(|d| d.get(i) == v[0].get(i));
        if nodes.len() < 2 || roots.iter().all(|r| *r == roots[0]) {
            return nodes.len() == homes.len();
        }
        let digests = |first: u16, count: u16, group: u16| Request::MerkleSegments {
            store: name.clone(),
            partition,
            first,
            count,
            group,
        };
        let as_digests = |r| match r {
            Reply::MerkleSegments(d) => Some(d),
            _ => None,
        };
        let groups = self
            .ask_all(&mut nodes, &digests(0, SEGMENTS, GROUP), report, as_digests)
            .await;
        let mut differing: Vec<u16> = Vec::new();
        for g in 0..SEGMENTS / GROUP {
            if nodes.len() < 2 || all_equal(&groups, usize::from(g)) {
                continue;
            }
            let hashes = self
                .ask_all(
                    &mut nodes,
                    &digests(g * GROUP, GROUP, 1),
                    report,
                    as_digests,
                )
                .await;
            differing.extend(
                (0..GROUP)
                    .filter(|&i| !all_equal(&hashes, usize::from(i)))
                    .map(|i| g * GROUP + i),
            );
        }
        report.segments_differing += differing.len() as u64;
        if nodes.len() >= 2 && !differing.is_empty() {
            self.repair_segments(store, partition, &differing, &nodes, report)
                .await;
        }
        nodes.len() == homes.len()
    }

    /// Every page of a segment scan of `node`, following its cursors, up
    /// to [`SCAN_PAGES_MAX`] pages; a failure is reported and ends it.
    pub(super) async fn scan(
        &self,
        node: &Member,
        store: &str,
        partition: u32,
        segments: &[u16],
        tombstones_only: bool,
        report: &mut RepairReport,
    ) -> Scan {
        let mut out = Scan::default();
        let mut after = None;
        for _ in 0..SCAN_PAGES_MAX {
            let request = Request::ScanSegment {
                store: store.to_owned(),
                partition,
                segments: segments.to_vec(),
                tombstones_only,
                after: after.take(),
            };
            match self.repair_call(node, &request, report).await {
                Ok(Reply::Segment { entries, next }) => {
                    out.entries.extend(entries);
                    match next {
                        Some(n) => after = Some(n),
                        None => {
                            out.complete = true;
                            break;
                        }
                    }
                }
                other => {
                    report.failed(node, other);
                    break;
                }
            }
        }
        out
    }

    /// Scans `segments` on every replica in `nodes` and replicates each
    /// key's merge to the replicas whose copy differs from it.
    async fn repair_segments(
        &self,
        store: &StoreConfig,
        partition: u32,
        segments: &[u16],
        nodes: &[Member],
        report: &mut RepairReport,
    ) {
        let mut held: BTreeMap<Vec<u8>, Vec<Option<Object>>> = BTreeMap::new();
        let mut scanned = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let scan = self
                .scan(node, &store.name, partition, segments, false, report)
                .await;
            for e in scan.entries {
                held.entry(e.key).or_insert_with(|| vec![None; nodes.len()])[i] = Some(e.object);
            }
            scanned.push(scan.complete);
        }
        for (key, copies) in held {
            let merged = copies.iter().flatten().fold(Object::default(), |acc, o| {
                replica::replicate(&acc, o, store.policy).unwrap_or(acc)
            });
            let mut sent = false;
            for (i, node) in nodes.iter().enumerate() {
                // A replica whose scan did not finish may hold the key
                // past where it stopped: sending the merge is harmless
                // (a sync), but it is not known to lack it, so skip.
                if copies[i].as_ref() == Some(&merged) || !scanned[i] {
                    continue;
                }
                let replicate = Request::Replicate {
                    store: store.name.clone(),
                    key: key.clone(),
                    object: merged.clone(),
                    hint: None,
                };
                match self.repair_call(node, &replicate, report).await {
                    Ok(Reply::Stored(_)) => sent = true,
                    other => report.failed(node, other),
                }
            }
            report.keys_repaired += u64::from(sent);
        }
    }
}
