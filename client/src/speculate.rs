//! When a get that asked only `R` replicas asks the rest: at the 99th
//! percentile of this client's recent get latency, as Cassandra's rapid
//! read protection does ("speculative retry" at `99p`).
//!
//! A fixed delay would be wrong on every cluster but one: too short and
//! most gets ask all `N` replicas anyway, too long and a slow replica
//! costs its full delay. The percentile follows the cluster: one get in a
//! hundred asks one more replica, and a replica that stalls costs a get no
//! more than what the slowest percent of gets cost anyway.
//!
//! Recording costs one relaxed atomic add per get: latencies fall into
//! log-linear buckets (four per power of two of microseconds, so a
//! percentile is within 19 % of the true one), and every [`WINDOW`] gets
//! the get that completes the window computes the percentile and starts
//! the next window. Until the first window is complete the delay is
//! [`INITIAL`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Gets per window: enough for a 99th percentile of 20 gets above it.
pub const WINDOW: u32 = 2_000;

/// The delay before any window is complete (a fresh client, or one that
/// reads rarely): long enough that a cold connection's handshake does not
/// set it off.
pub const INITIAL: Duration = Duration::from_millis(20);

/// The shortest delay: below it, scheduling noise on a busy client would
/// set speculation off for gets that were never slow.
pub const FLOOR: Duration = Duration::from_micros(500);

/// Sub-buckets per power of two.
const SUB: u32 = 4;
/// Powers of two of microseconds covered: 1 µs to about 17 s.
const POWERS: u32 = 24;
const BUCKETS: usize = (POWERS * SUB) as usize;

/// Recent get latencies and the delay they give; see the module doc.
pub struct Speculation {
    buckets: [AtomicU32; BUCKETS],
    count: AtomicU32,
    delay_us: AtomicU64,
    /// The longest delay (a get's attempt timeout: beyond it a node is
    /// taken for down and the rest are asked anyway).
    ceiling: Duration,
}

impl Speculation {
    /// No history yet; delays never exceed `ceiling`.
    pub fn new(ceiling: Duration) -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
            count: AtomicU32::new(0),
            delay_us: AtomicU64::new(INITIAL.min(ceiling).as_micros() as u64),
            ceiling,
        }
    }

    /// How long a get waits for its first `R` answers before asking the
    /// others.
    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Records one get that had its answers after `took`.
    pub fn record(&self, took: Duration) {
        let bucket = bucket_of(took.as_micros().min(u128::from(u64::MAX)) as u64);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == WINDOW {
            self.close_window();
        }
    }

    /// Takes the 99th percentile of the window's gets as the new delay
    /// and empties the buckets. Gets recorded while this runs land in one
    /// window or the next: a percentile, not a ledger.
    fn close_window(&self) {
        let counts: Vec<u32> = self
            .buckets
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect();
        self.count.store(0, Ordering::Release);
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        // The first bucket at or above 99 % of the gets, by its upper
        // bound.
        let rank = total - total / 100;
        let mut seen = 0;
        let upper = counts
            .iter()
            .enumerate()
            .find_map(|(i, &c)| {
                seen += u64::from(c);
                (seen >= rank && c > 0).then(|| upper_bound(i))
            })
            .unwrap_or(self.ceiling.as_micros() as u64);
        let delay = Duration::from_micros(upper).clamp(FLOOR, self.ceiling.max(FLOOR));
        self.delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

/// The bucket of a latency of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    // Below 4 µs a quarter of a power of two is less than a microsecond;
    // no get is that fast anyway.
    let us = us.max(4);
    let power = 63 - us.leading_zeros();
    // The two bits after the leading one pick the sub-bucket.
    let sub = (us >> (power - 2)) & u64::from(SUB - 1);
    ((power * SUB) as usize + sub as usize).min(BUCKETS - 1)
}

/// The largest latency (µs) that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let (power, sub) = (i as u32 / SUB, i as u64 % u64::from(SUB));
    let base = 1u64 << power;
    // Each sub-bucket is a quarter of the power's span.
    base + (base * (sub + 1)) / u64::from(SUB) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_fresh_client_waits_the_initial_delay() {
        let s = Speculation::new(Duration::from_secs(1));
        assert_eq!(s.delay(), INITIAL);
        let s = Speculation::new(Duration::from_millis(5));
        assert_eq!(
            s.delay(),
            Duration::from_millis(5),
            "never past the ceiling"
        );
    }

    #[test]
    fn the_delay_is_the_windows_99th_percentile() {
        let s = Speculation::new(Duration::from_secs(1));
        // 98.5 % of gets at 1 ms, 1.5 % at 8 ms: the 99th percentile is
        // in the slow group.
        for i in 0..WINDOW {
            let took = if i % 200 < 3 { 8_000 } else { 1_000 };
            s.record(Duration::from_micros(took));
        }
        let d = s.delay().as_micros();
        assert!((8_000..=9_600).contains(&d), "{d} µs");
        // The next window, all fast: the delay follows.
        for _ in 0..WINDOW {
            s.record(Duration::from_micros(1_000));
        }
        let d = s.delay().as_micros();
        assert!((1_000..=1_200).contains(&d), "{d} µs");
    }

    #[test]
    fn the_delay_stays_between_the_floor_and_the_ceiling() {
        let s = Speculation::new(Duration::from_millis(50));
        for _ in 0..WINDOW {
            s.record(Duration::from_micros(3));
        }
        assert_eq!(s.delay(), FLOOR);
        for _ in 0..WINDOW {
            s.record(Duration::from_secs(5));
        }
        assert_eq!(s.delay(), Duration::from_millis(50));
    }

    proptest! {
        /// Every latency falls in a bucket whose upper bound is at least
        /// the latency and within a quarter of it above.
        #[test]
        fn buckets_bound_their_latencies(us in 4u64..16_000_000) {
            let i = bucket_of(us);
            let upper = upper_bound(i);
            prop_assert!(upper >= us, "{us} in bucket {i} up to {upper}");
            prop_assert!(upper <= us + us / 4 + 1, "{us} in bucket {i} up to {upper}");
        }
    }
}
