//! Paged segment scans of one replica (objects or digests), and a key's
//! copy found by scanning its segment (for an old owner that no longer
//! answers reads of it).

use super::replicas::Replicas;
use super::RepairReport;
use quire_shared::merkle::segment_of;
use quire_shared::ring::key_position;
use quire_shared::wire::{Entry, KeyDigest, Listing, Reply, Request};
use quire_shared::{Member, Object};

/// Scan pages asked of one replica in one exchange: bounds an exchange
/// against a node that never ends its cursor.
const SCAN_PAGES_MAX: usize = 10_000;

/// What a segment scan of one replica returned.
pub(super) struct Scan<T> {
    /// Keys with their objects ([`Entry`]) or digests ([`KeyDigest`]), in
    /// key order.
    pub(super) entries: Vec<T>,
    /// True when the scan reached the end of the partition: a key not in
    /// `entries` is not held (or not of the kind asked for).
    pub(super) complete: bool,
}

/// A page of a scan: its keys and the cursor to go on from.
type Page<T> = (Vec<T>, Option<Vec<u8>>);

/// Every page of a segment scan of `node`, following its cursors, up
/// to [`SCAN_PAGES_MAX`] pages; a failure is reported and ends it.
async fn scan_pages<T>(
    replicas: &impl Replicas,
    node: &Member,
    (store, partition): (&str, u32),
    (segments, tombstones_only, listing): (&[u16], bool, Listing),
    report: &mut RepairReport,
    page: impl Fn(Reply) -> Option<Page<T>>,
) -> Scan<T> {
    let mut out = Scan {
        entries: Vec::new(),
        complete: false,
    };
    let mut after = None;
    for _ in 0..SCAN_PAGES_MAX {
        let request = Request::ScanSegment {
            store: store.to_owned(),
            partition,
            segments: segments.to_vec(),
            tombstones_only,
            listing,
            after: after.take(),
            bytes_max: None,
        };
        match replicas.call(node, &request, report).await.map(&page) {
            Ok(Some((entries, next))) => {
                out.entries.extend(entries);
                match next {
                    Some(n) => after = Some(n),
                    None => {
                        out.complete = true;
                        break;
                    }
                }
            }
            Ok(None) => {
                report.unreachable.push(format!(
                    "{}: answered a scan with an unexpected reply",
                    node.addr
                ));
                break;
            }
            Err(e) => {
                report.failed(node, Err(e));
                break;
            }
        }
    }
    out
}

/// The keys and objects of `segments` on `node` (all segments when
/// empty), or only its tombstone-only keys.
pub(super) async fn scan(
    replicas: &impl Replicas,
    node: &Member,
    (store, partition): (&str, u32),
    (segments, tombstones_only): (&[u16], bool),
    report: &mut RepairReport,
) -> Scan<Entry> {
    let what = (segments, tombstones_only, Listing::Objects);
    scan_pages(
        replicas,
        node,
        (store, partition),
        what,
        report,
        |r| match r {
            Reply::Segment { entries, next } => Some((entries, next)),
            _ => None,
        },
    )
    .await
}

/// The keys of `segments` on `node` with their digests.
pub(super) async fn scan_digests(
    replicas: &impl Replicas,
    node: &Member,
    (store, partition): (&str, u32),
    segments: &[u16],
    report: &mut RepairReport,
) -> Scan<KeyDigest> {
    let what = (segments, false, Listing::Digests);
    scan_pages(
        replicas,
        node,
        (store, partition),
        what,
        report,
        |r| match r {
            Reply::SegmentDigests { keys, next } => Some((keys, next)),
            _ => None,
        },
    )
    .await
}

/// `key`'s object on `node`, from a scan of the key's segment (for a
/// node that no longer answers reads of it). `None` when the scan
/// fails or does not find it.
pub(super) async fn copy_from_scan(
    replicas: &impl Replicas,
    node: &Member,
    (store, partition): (&str, u32),
    key: &[u8],
    report: &mut RepairReport,
) -> Option<Object> {
    let segment = segment_of(&key_position(store, key));
    let scan = scan(
        replicas,
        node,
        (store, partition),
        (&[segment], false),
        report,
    )
    .await;
    scan.entries
        .into_iter()
        .find(|e| e.key == key)
        .map(|e| e.object)
}
