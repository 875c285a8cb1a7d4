//! A transfer's pages: copying one partition from a current home replica
//! to an incoming one.
//!
//! A transfer copies `store`'s `partition` page by page: a `ScanSegment`
//! page (objects, bounded by the bytes the pace asks for and by the
//! source's frame limit), stored on the
//! receiver by `TransferPage` requests of up to [`PART_KEYS`] keys and
//! [`PART_BYTES`] bytes each (each key synced in, so a copy never
//! replaces a newer write that reached the receiver directly), the last
//! of which records the page's cursor on the receiver; the next page is
//! scanned while the current one is stored. The cursor lives on the
//! receiver: a transfer interrupted anywhere (this client, the source,
//! the receiver) resumes from the last page marked, so at most one page
//! is sent twice. Before its first page a transfer claims a slot on its
//! receiver ([`super::slot`]). Pages are scanned at the client's pace
//! ([`super::pace`]): each waits for its slot of the byte rate, and asks
//! the source for a page of that many bytes.
//!
//! Written against [`Replicas`], so the simulation moves partitions with
//! this very code.

use super::pace::Pacer;
use super::slot::{claim_slot, judged, Stalled};
use crate::repair::Replicas;
use quire_shared::wire::{Entry, Listing, Reply, Request, TransferProgress};
use quire_shared::{Member, Membership, Transfer};

/// Most keys of one `TransferPage`: one write transaction on the
/// receiver, which the foreground's writes wait behind (the writer batches
/// as many of them at once). With values of 1 KiB a part reaches about
/// [`PART_BYTES`]; 256 keys (a quarter of that) cost one more round trip
/// and one more commit per 256 KiB and moved data 1.3 to 1.9x slower
/// (docs/benchmarks.md).
const PART_KEYS: usize = 1024;

/// Most bytes of one `TransferPage`, for the same reason.
const PART_BYTES: usize = 1 << 20;

/// What the receiver of `t` recorded.
pub(crate) async fn progress_of(
    replicas: &impl Replicas,
    doc: &Membership,
    t: &Transfer,
) -> Result<TransferProgress, String> {
    let to = doc.member(t.to).ok_or("receiver not in membership")?;
    let ask = Request::TransferState {
        store: t.store.clone(),
        partition: t.partition,
    };
    match replicas.ask(to, &ask).await {
        Ok(Reply::Transfer(p)) => Ok(p),
        Ok(other) => Err(format!("{}: unexpected answer {other:?}", to.addr)),
        Err(e) => Err(format!("{}: {e}", to.addr)),
    }
}

/// Copies pages of `t` while `budget` lasts (a page scanned counts);
/// returns the keys copied. The transfer first claims its slot on the
/// receiver ([`super::slot`]). The scan of the next page runs while the
/// current one is stored; a page is stored only once the one before
/// it is, so the receiver's mark never passes a page not stored. Each
/// scan waits for its slot of `pacer`'s rate.
pub(crate) async fn run_transfer(
    replicas: &impl Replicas,
    doc: &Membership,
    t: &Transfer,
    (change, pacer): (u64, &Pacer),
    budget: &mut usize,
) -> Result<u64, Stalled> {
    let to = doc
        .member(t.to)
        .ok_or_else(|| "receiver not in membership".to_string())?
        .clone();
    let mut progress = progress_of(replicas, doc, t).await?;
    if progress.change != change {
        progress = TransferProgress {
            change,
            ..TransferProgress::default()
        };
    }
    if progress.done || *budget == 0 {
        return Ok(0);
    }
    claim_slot(replicas, &to, t, change).await?;
    *budget -= 1;
    let mut page = paced_page(replicas, doc, t, progress.after.clone(), pacer).await?;
    let mut copied = 0;
    loop {
        let Scanned {
            entries,
            next,
            object_bytes,
        } = page;
        let keys = entries.len() as u64;
        progress.keys += keys;
        progress.bytes += object_bytes;
        let now = replicas.wall_ms();
        if progress.started_ms == 0 {
            progress.started_ms = now;
        }
        progress.updated_ms = now;
        progress.done = next.is_none();
        progress.after = next.clone();
        let store = store_page(replicas, &to, t, entries, &progress);
        match next.filter(|_| *budget > 0) {
            Some(after) => {
                *budget -= 1;
                let scan = paced_page(replicas, doc, t, Some(after), pacer);
                let (stored, scanned) = tokio::join!(store, scan);
                copied += keys;
                if stored? {
                    return Ok(copied);
                }
                page = scanned?;
            }
            None => {
                store.await?;
                return Ok(copied + keys);
            }
        }
    }
}

/// Stores a page on the incoming replica `to` in parts of at most
/// [`PART_KEYS`] keys and [`PART_BYTES`] bytes, one `TransferPage`
/// (one write on the node) each, the last one carrying `progress`:
/// the mark moves only once the whole page is stored. True when the
/// receiver's mark says another client finished the transfer.
async fn store_page(
    replicas: &impl Replicas,
    to: &Member,
    t: &Transfer,
    entries: Vec<Entry>,
    progress: &TransferProgress,
) -> Result<bool, Stalled> {
    let mut parts: Vec<Vec<Entry>> = vec![Vec::new()];
    let mut part_bytes = 0;
    for e in entries {
        let size = e.key.len() + e.object.size_bytes();
        let last = parts.last().expect("at least one part");
        if !last.is_empty() && (last.len() >= PART_KEYS || part_bytes + size > PART_BYTES) {
            parts.push(Vec::new());
            part_bytes = 0;
        }
        part_bytes += size;
        parts.last_mut().expect("at least one part").push(e);
    }
    let count = parts.len();
    for (i, entries) in parts.into_iter().enumerate() {
        let last = i + 1 == count;
        let request = Request::TransferPage {
            store: t.store.clone(),
            partition: t.partition,
            change: progress.change,
            entries,
            progress: last.then(|| progress.clone()),
        };
        match judged(replicas.ask(to, &request).await, to)? {
            Reply::Transfer(held) if !last || held == *progress => {}
            // Another client finished the transfer meanwhile: the mark
            // stays done (`moves_mark`), and so is this copy.
            Reply::Transfer(held) if held.change == progress.change && held.done => {
                return Ok(true);
            }
            other => {
                let why = format!("{}: page not kept: {other:?}", to.addr);
                return Err(Stalled::Failed(why));
            }
        }
    }
    Ok(false)
}

/// A page scanned from a source.
struct Scanned {
    entries: Vec<Entry>,
    /// Where the next page starts; `None` after the partition's last.
    next: Option<Vec<u8>>,
    /// The objects' encoded size, counted once without encoding them:
    /// what a transfer reports as moved.
    object_bytes: u64,
}

/// [`source_page`] in its slot of `pacer`'s rate, the slot corrected to
/// the bytes the page held (nothing when the scan failed).
async fn paced_page(
    replicas: &impl Replicas,
    doc: &Membership,
    t: &Transfer,
    after: Option<Vec<u8>>,
    pacer: &Pacer,
) -> Result<Scanned, String> {
    let bytes_max = pacer.pace().page_bytes();
    let reserved = bytes_max.map_or(0, u64::from);
    pacer.reserve(reserved).await;
    let (entries, next) = match source_page(replicas, doc, t, after, bytes_max).await {
        Ok(page) => page,
        Err(why) => {
            pacer.settle(reserved, 0);
            return Err(why);
        }
    };
    let object_bytes = entries
        .iter()
        .map(|e| postcard::experimental::serialized_size(&e.object).unwrap_or(0) as u64)
        .sum();
    // Counted as the source bounds the page: keys and records.
    let keys_bytes: u64 = entries.iter().map(|e| e.key.len() as u64).sum();
    pacer.settle(reserved, object_bytes + keys_bytes);
    Ok(Scanned {
        entries,
        next,
        object_bytes,
    })
}

/// The next page of `t`'s partition after `after`, of at most
/// `bytes_max` bytes (the source's frame limit when `None`), from the
/// first current home replica that answers.
async fn source_page(
    replicas: &impl Replicas,
    doc: &Membership,
    t: &Transfer,
    after: Option<Vec<u8>>,
    bytes_max: Option<u32>,
) -> Result<(Vec<Entry>, Option<Vec<u8>>), String> {
    let scan = Request::ScanSegment {
        store: t.store.clone(),
        partition: t.partition,
        segments: Vec::new(),
        tombstones_only: false,
        listing: Listing::Objects,
        after,
        bytes_max,
    };
    let mut why = Vec::new();
    // Healthy sources first: a dead one would cost a timeout per page.
    let mut sources: Vec<&Member> = t.from.iter().filter_map(|id| doc.member(*id)).collect();
    sources.sort_by_key(|m| !replicas.believed_up(m.id));
    for source in sources {
        match replicas.ask(source, &scan).await {
            Ok(Reply::Segment { entries, next }) => return Ok((entries, next)),
            Ok(other) => why.push(format!("{}: unexpected answer {other:?}", source.addr)),
            Err(e) => why.push(format!("{}: {e}", source.addr)),
        }
    }
    Err(format!(
        "no home replica of partition {} of {:?} could be scanned: {}",
        t.partition,
        t.store,
        why.join("; ")
    ))
}
