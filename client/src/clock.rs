//! The SDK's wall clock: value timestamps and the tombstone grace of
//! reaping read it here, so a fault test can shift it.
//!
//! Nodes stamp last-write-wins values with their own clock (the client's
//! stamp is replaced), so a client's skew must change no outcome of a
//! write; reaping, however, compares a tombstone's age with this clock.
//! The shift is process-wide and only settable with feature `testing`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds added to the wall clock (signed); 0 outside fault tests.
static SKEW_MS: AtomicI64 = AtomicI64::new(0);

/// Wall-clock milliseconds since the Unix epoch (0 before it), shifted by
/// the test skew.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_add_signed(SKEW_MS.load(Ordering::Relaxed))
}

/// Shifts every client's clock in this process by `skew_ms` from now on:
/// fault tests use it to show that a client's clock decides no
/// last-write-wins race.
#[cfg(feature = "testing")]
pub fn set_skew_ms(skew_ms: i64) {
    SKEW_MS.store(skew_ms, Ordering::Relaxed);
}
