//! The pace of a membership change's transfers: a byte rate shared by
//! every transfer one client runs, and pages sized to it.
//!
//! Moving data costs the foreground in bursts: a source scans and sends a
//! page on the runtime that also serves reads, and the reads queued
//! behind a page of several MB wait for all of it. A paced transfer
//! therefore asks its sources for small pages (`ScanSegment::bytes_max`,
//! a hundredth of a second of the rate) and spaces them evenly, with no
//! credit saved up for a burst. Measured beside a join on two cores
//! (docs/benchmarks.md, "Pacing transfers by bytes"), beside a read-only
//! workload: unpaced, the reads' p99.9 went to 2.8 and 3.7x its steady
//! state; paced at 4 to 16 MB/s, to 1.1 to 1.6x. Beside half updates it
//! was 1.6 and 1.8x at 4 MB/s, 2.2 and 2.6x at 8.
//!
//! The spacing is a virtual schedule (the generic cell rate algorithm of
//! ATM traffic shaping, ITU-T I.371): each page reserves the slot after
//! the last one reserved, a slot as long as its bytes take at the rate.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Smallest page a paced transfer asks for: below this the round trips
/// and receiver commits per page cost more than the page.
const PAGE_BYTES_MIN: u64 = 16 << 10;

/// How fast a client's transfers move data, summed over all of them.
/// No `Default`: the SDK's default for an operator's move is
/// [`crate::DEFAULT_TRANSFER_PACE`], not "unlimited".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferPace {
    /// Most bytes per second (never 0), or `None`: as fast as the nodes
    /// go (pages as large as the sources' frame limit, no pause).
    bytes_per_s: Option<u64>,
}

impl TransferPace {
    /// No limit: an operator's "move it now" on an idle cluster.
    pub const UNLIMITED: TransferPace = TransferPace { bytes_per_s: None };

    /// At most `bytes_per_s` bytes per second (1 if given 0).
    pub const fn per_second(bytes_per_s: u64) -> Self {
        TransferPace {
            bytes_per_s: Some(if bytes_per_s == 0 { 1 } else { bytes_per_s }),
        }
    }

    /// The rate, or `None` when unlimited.
    pub fn bytes_per_s(&self) -> Option<u64> {
        self.bytes_per_s
    }

    /// The page bound to ask sources for: a hundredth of a second at the
    /// rate, at least 16 KiB; `None` (the source's frame limit) when
    /// unlimited.
    pub fn page_bytes(&self) -> Option<u32> {
        self.bytes_per_s
            .map(|rate| (rate / 100).clamp(PAGE_BYTES_MIN, u64::from(u32::MAX)) as u32)
    }
}

/// The schedule one client's transfers share.
#[derive(Debug)]
pub(crate) struct Pacer {
    pace: TransferPace,
    /// When the next reservation may start.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A schedule at `pace`.
    pub(crate) fn new(pace: TransferPace) -> Self {
        Pacer {
            pace,
            next: Mutex::new(None),
        }
    }

    /// The pace this schedule keeps.
    pub(crate) fn pace(&self) -> TransferPace {
        self.pace
    }

    /// Waits for this page's slot: `bytes` (the page bound, before the
    /// page is scanned) reserved after every slot reserved before.
    pub(crate) async fn reserve(&self, bytes: u64) {
        let Some(rate) = self.pace.bytes_per_s else {
            return;
        };
        let start = {
            let mut next = self.next.lock().expect("pacer lock");
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + span(bytes, rate));
            start
        };
        tokio::time::sleep_until(start).await;
    }

    /// Corrects the schedule for a page that reserved `reserved` bytes
    /// and held `moved` (a partition's last page is short; a failed scan
    /// moved nothing): the end of the shared schedule moves by the
    /// difference, so the rate counts bytes moved, not bounds asked for.
    pub(crate) fn settle(&self, reserved: u64, moved: u64) {
        let Some(rate) = self.pace.bytes_per_s else {
            return;
        };
        let mut next = self.next.lock().expect("pacer lock");
        if let Some(n) = next.as_mut() {
            if moved >= reserved {
                *n += span(moved - reserved, rate);
            } else {
                let back = span(reserved - moved, rate);
                // Never into the past: a slot not used is lost, not saved.
                *n = n.checked_sub(back).unwrap_or(*n).max(Instant::now());
            }
        }
    }
}

/// How long `bytes` take at `rate` bytes per second (a rate of 0 counts
/// as 1; the longest span is about 585 years, far below `Duration`'s
/// limit).
fn span(bytes: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_a_hundredth_of_a_second_of_the_rate_within_bounds() {
        assert_eq!(TransferPace::UNLIMITED.page_bytes(), None);
        assert_eq!(
            TransferPace::per_second(8_000_000).page_bytes(),
            Some(80_000)
        );
        assert_eq!(
            TransferPace::per_second(1000).page_bytes(),
            Some(PAGE_BYTES_MIN as u32)
        );
        assert_eq!(
            TransferPace::per_second(u64::MAX).page_bytes(),
            Some(u32::MAX)
        );
        assert_eq!(TransferPace::per_second(0).bytes_per_s(), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_are_spaced_by_their_bytes_at_the_rate() {
        let pacer = Pacer::new(TransferPace::per_second(100_000));
        let t0 = Instant::now();
        pacer.reserve(10_000).await; // the first page goes at once
        assert_eq!(t0.elapsed(), Duration::ZERO);
        pacer.reserve(10_000).await; // 0.1 s after the first
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
        // The second page held only 5 000 bytes: the third starts 0.05 s
        // after it, not 0.1 s.
        pacer.settle(10_000, 5_000);
        pacer.reserve(10_000).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(150));
        // A page larger than reserved pushes the next one out.
        pacer.settle(10_000, 30_000);
        pacer.reserve(1).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(450));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_saves_no_credit_for_a_burst() {
        let pacer = Pacer::new(TransferPace::per_second(100_000));
        pacer.reserve(10_000).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t0 = Instant::now();
        pacer.reserve(10_000).await;
        pacer.reserve(10_000).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_transfers_share_the_rate() {
        let pacer = std::sync::Arc::new(Pacer::new(TransferPace::per_second(100_000)));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let pacer = pacer.clone();
            tasks.spawn(async move {
                for _ in 0..5 {
                    pacer.reserve(10_000).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        // 20 pages of 0.1 s each: the last starts at 1.9 s.
        assert_eq!(t0.elapsed(), Duration::from_millis(1900));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let pacer = Pacer::new(TransferPace::UNLIMITED);
        let t0 = Instant::now();
        for _ in 0..100 {
            pacer.reserve(u64::MAX).await;
        }
        pacer.settle(0, u64::MAX);
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
