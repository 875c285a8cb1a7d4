//! The open-loop pacer: releases operation `i` at `begin + i / rate`, on
//! time, from a thread of its own.
//!
//! Latency in open loop runs from an operation's intended start, so any
//! lateness of the pacer itself is charged to the system measured. A tokio
//! timer fires on a millisecond tick, which made a quic-echo operation of
//! 0.8 ms look like 1.6 ms at half load. This pacer sleeps on its own
//! thread with the OS's sleep (tens of microseconds late, not a
//! millisecond), releases every slot that is due at once when it wakes
//! late, and records how late each slot was released: its own lag,
//! reported beside the latencies so a reader can tell the pacer's error
//! from the system's.
//!
//! Workers take released slots from a semaphore (one permit per slot, in
//! order), so a slot waits for a free worker when all are busy, and that
//! wait counts, as it should in open loop. After the last slot the pacer
//! releases one more permit: the worker that takes it finds the schedule
//! over and passes the permit on, so every worker stops once every slot
//! is taken, and no released slot is ever dropped.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Releases slots on a schedule; see the module doc.
pub struct Pacer {
    begin: Instant,
    rate: f64,
    /// Slots in the schedule: those due before its end.
    slots: u64,
    permits: Arc<Semaphore>,
    claimed: AtomicU64,
    lag: Arc<Mutex<Histogram<u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pacer {
    /// Starts releasing slots due from `begin` at `rate` per second until
    /// `end`.
    pub fn start(begin: Instant, end: Instant, rate: f64) -> Self {
        let due = |i: u64| begin + Duration::from_secs_f64(i as f64 / rate);
        let slots = (0..).find(|&i| due(i) >= end).unwrap_or(0);
        let permits = Arc::new(Semaphore::new(0));
        let lag = Arc::new(Mutex::new(
            Histogram::<u64>::new(3).expect("a histogram with 3 significant digits"),
        ));
        let thread = {
            let (permits, lag) = (permits.clone(), lag.clone());
            std::thread::Builder::new()
                .name("quire-bench-pacer".into())
                .spawn(move || release((begin, slots), rate, &permits, &lag))
                .expect("spawning the pacer thread")
        };
        Self {
            begin,
            rate,
            slots,
            permits,
            claimed: AtomicU64::new(0),
            lag,
            thread: Some(thread),
        }
    }

    /// Waits for the next released slot and returns when it was due;
    /// `None` once the schedule has ended.
    pub async fn next(&self) -> Option<Instant> {
        self.permits.acquire().await.ok()?.forget();
        let i = self.claimed.fetch_add(1, Ordering::Relaxed);
        if i >= self.slots {
            // The end token: pass it on to the next idle worker.
            self.permits.add_permits(1);
            return None;
        }
        Some(self.begin + Duration::from_secs_f64(i as f64 / self.rate))
    }

    /// How late the pacer released slots: (p50, p99, p99.9) in µs.
    pub fn lag_us(&mut self) -> (u64, u64, u64) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let h = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        (
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
        )
    }
}

/// The pacer thread: releases each of the `slots` slots when due, then
/// the end token.
fn release(
    (begin, slots): (Instant, u64),
    rate: f64,
    permits: &Semaphore,
    lag: &Mutex<Histogram<u64>>,
) {
    let mut local = Histogram::<u64>::new(3).expect("a histogram with 3 significant digits");
    let mut i: u64 = 0;
    while i < slots {
        let due = begin + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            // Never spins: on a machine the system under test shares, a
            // spinning pacer would take a core from it. The OS wakes the
            // thread some tens of µs late; the lag says how late.
            std::thread::sleep(due - now);
            continue;
        }
        // Every slot due by now goes at once.
        let mut released = 0;
        while i + released < slots {
            let due = begin + Duration::from_secs_f64((i + released) as f64 / rate);
            if due > now {
                break;
            }
            let _ = local.record((now - due).as_micros() as u64);
            released += 1;
        }
        permits.add_permits(released as usize);
        i += released;
    }
    permits.add_permits(1);
    *lag.lock().unwrap_or_else(|e| e.into_inner()) = local;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slot of the schedule is released, in order, and the
    /// schedule ends.
    #[tokio::test]
    async fn every_slot_is_released_then_the_schedule_ends() {
        let begin = Instant::now();
        let end = begin + Duration::from_millis(200);
        let mut pacer = Pacer::start(begin, end, 1000.0);
        let mut dues = Vec::new();
        while let Some(due) = pacer.next().await {
            assert!(
                Instant::now() + Duration::from_millis(1) >= due,
                "not early"
            );
            dues.push(due);
        }
        assert_eq!(dues.len(), 200, "one slot per ms for 200 ms");
        assert!(dues.windows(2).all(|w| w[0] < w[1]));
        let (p50, _, _) = pacer.lag_us();
        assert!(p50 < 10_000, "lag p50 {p50} µs");
    }
}
