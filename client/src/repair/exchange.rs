//! One anti-entropy exchange: the home replicas of a (store, partition)
//! compare Merkle digests, scan only the segments that differ, and each
//! replica that lacks the merge of a key is sent it.
//!
//! The descent is root → 32 groups of 32 segments → the segments of the
//! groups that differ → the key digests of the segments that differ →
//! the objects of the keys whose digests differ, so the bytes grow with
//! the differences, not with the data: for one differing key a replica
//! sends a root (16 bytes), 32 group digests (512 bytes), 32 segment
//! hashes (512 bytes), one segment's keys with a 16-byte digest each
//! (about 100 keys in a partition of 100 000) and, from one replica that
//! holds it, the key's object.
//!
//! Only merges are sent, through `Replicate`, which a node `sync`s into
//! what it holds: a replica never takes an older value for a newer one,
//! and a write that lands during the exchange survives it.

use super::replicas::Replicas;
use super::scan::{copy_from_scan, scan_digests};
use super::RepairReport;
use quire_shared::merkle::{entry_hash, SEGMENTS};
use quire_shared::replica;
use quire_shared::wire::{Reply, Request};
use quire_shared::{Member, NodeId, Object, StoreConfig};
use std::collections::BTreeMap;

/// Segments per digest in the first step of the descent.
const GROUP: u16 = 32;

/// What an exchange learnt about a partition's home replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exchanged {
    /// Every home replica answered every digest request (the
    /// precondition for reaping the partition's tombstones).
    pub(crate) all_answered: bool,
    /// Some home replica holds a tombstone-only key of the partition, so
    /// reaping has something to look at.
    pub(crate) tombstones: bool,
    /// Every replica answered everything and every repair landed: every
    /// scan reached its end, every differing key was fetched and every
    /// merge was stored where it was missing. Only then may a change flip
    /// or an old copy be dropped on the strength of this exchange.
    pub(crate) complete: bool,
}

/// Asks `request` of every replica in `nodes`; those that fail are
/// dropped from `nodes` (and reported).
async fn ask_all<T>(
    replicas: &impl Replicas,
    nodes: &mut Vec<Member>,
    request: &Request,
    report: &mut RepairReport,
    expect: impl Fn(Reply) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(nodes.len());
    let mut kept = Vec::with_capacity(nodes.len());
    for node in nodes.drain(..) {
        match replicas.call(&node, request, report).await.map(&expect) {
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

/// The exchange, with `read_only` (an old owner handing its copy off)
/// compared and read from but never sent merges: it no longer takes
/// writes for the partition.
pub(crate) async fn exchange(
    replicas: &impl Replicas,
    store: &StoreConfig,
    partition: u32,
    homes: &[Member],
    read_only: Option<NodeId>,
    report: &mut RepairReport,
) -> Exchanged {
    report.partitions_checked += 1;
    let mut nodes = homes.to_vec();
    let name = store.name.clone();
    let root = Request::MerkleRoot {
        store: name.clone(),
        partition,
    };
    let roots = ask_all(replicas, &mut nodes, &root, report, |r| match r {
        Reply::MerkleRoot(d) => Some(d),
        _ => None,
    })
    .await;
    let mut outcome = Exchanged {
        all_answered: nodes.len() == homes.len(),
        tombstones: roots.iter().any(|d| d.tombstones > 0),
        complete: nodes.len() == homes.len(),
    };
    let all_equal = |v: &[Vec<[u8; 16]>], i: usize| v.iter().all(|d| d.get(i) == v[0].get(i));
    if nodes.len() < 2 || roots.iter().all(|r| r.root == roots[0].root) {
        return outcome;
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
    let groups = ask_all(
        replicas,
        &mut nodes,
        &digests(0, SEGMENTS, GROUP),
        report,
        as_digests,
    )
    .await;
    let mut differing: Vec<u16> = Vec::new();
    for g in 0..SEGMENTS / GROUP {
        if nodes.len() < 2 || all_equal(&groups, usize::from(g)) {
            continue;
        }
        let hashes = ask_all(
            replicas,
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
    let mut clean = true;
    if nodes.len() >= 2 && !differing.is_empty() {
        clean = repair_segments(
            replicas,
            store,
            partition,
            (&differing, read_only),
            &nodes,
            report,
        )
        .await;
    }
    outcome.all_answered = nodes.len() == homes.len();
    outcome.complete = outcome.all_answered && clean;
    outcome
}

/// Lists `segments` on every replica in `nodes` by digest, fetches the
/// objects of the keys whose digests differ (one per distinct digest)
/// and replicates each such key's merge to the replicas that lack it
/// (never to `read_only`). True when every scan finished, every fetch
/// answered and every merge was stored.
async fn repair_segments(
    replicas: &impl Replicas,
    store: &StoreConfig,
    partition: u32,
    (segments, read_only): (&[u16], Option<NodeId>),
    nodes: &[Member],
    report: &mut RepairReport,
) -> bool {
    let mut listed: BTreeMap<Vec<u8>, Vec<Option<[u8; 16]>>> = BTreeMap::new();
    let mut scanned = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let scan = scan_digests(replicas, node, (&store.name, partition), segments, report).await;
        for k in scan.entries {
            listed
                .entry(k.key)
                .or_insert_with(|| vec![None; nodes.len()])[i] = Some(k.digest);
        }
        scanned.push(scan.complete);
    }
    let mut clean = scanned.iter().all(|&c| c);
    for (key, digests) in listed {
        if digests.iter().all(|d| d.is_some() && *d == digests[0]) {
            continue; // the same object everywhere
        }
        let fetched = fetch_merge(
            replicas,
            (store, partition),
            &key,
            (nodes, read_only),
            &digests,
            report,
        )
        .await;
        let Some(merged) = fetched else {
            clean = false;
            continue;
        };
        if merged == Object::default() {
            continue; // reaped since the listing
        }
        let want = Some(entry_hash(&key, &merged).0);
        let mut sent = false;
        for (i, node) in nodes.iter().enumerate() {
            // A replica whose scan did not finish may hold the key
            // past where it stopped: sending the merge is harmless
            // (a sync), but it is not known to lack it, so skip.
            if digests[i] == want
                || (digests[i].is_none() && !scanned[i])
                || Some(node.id) == read_only
            {
                continue;
            }
            let replicate = Request::Replicate {
                store: store.name.clone(),
                key: key.clone(),
                object: merged.clone(),
                hint: None,
            };
            match replicas.call(node, &replicate, report).await {
                Ok(Reply::Stored(_)) => sent = true,
                other => {
                    clean = false;
                    report.failed(node, other);
                }
            }
        }
        report.keys_repaired += u64::from(sent);
    }
    clean
}

/// The merge of `key`'s copies: one object fetched per distinct digest
/// listed (from the first replica listing it). `None` when a fetch
/// fails: the key waits for the next exchange rather than be sent a
/// merge missing a version.
async fn fetch_merge(
    replicas: &impl Replicas,
    (store, partition): (&StoreConfig, u32),
    key: &[u8],
    (nodes, read_only): (&[Member], Option<NodeId>),
    digests: &[Option<[u8; 16]>],
    report: &mut RepairReport,
) -> Option<Object> {
    let mut merged = Object::default();
    for (i, node) in nodes.iter().enumerate() {
        let Some(d) = digests[i] else { continue };
        if digests[..i].contains(&Some(d)) {
            continue; // that version is fetched already
        }
        if Some(node.id) == read_only {
            // An old owner answers no reads for the key (`NotOwner`):
            // its copy comes from a scan of the key's segment.
            let o = copy_from_scan(replicas, node, (&store.name, partition), key, report).await?;
            merged = replica::replicate(&merged, &o, store.policy).unwrap_or(merged);
            continue;
        }
        let get = Request::Get {
            store: store.name.clone(),
            key: key.to_vec(),
            hint: None,
        };
        match replicas.call(node, &get, report).await {
            Ok(Reply::Object(Some(o))) => {
                merged = replica::replicate(&merged, &o, store.policy).unwrap_or(merged);
            }
            // Gone since the listing (reaped): nothing to add.
            Ok(Reply::Object(None)) => {}
            other => {
                report.failed(node, other);
                return None;
            }
        }
    }
    Some(merged)
}
