//! The node's transfer slots (`limits.transfers_in_max`): the rules are
//! [`quire_shared::slots`]'s, kept here behind a lock on the node's
//! monotonic clock.

use quire_shared::slots::{Full, Slots};
use std::sync::Mutex;
use std::time::Instant;

/// The slots of this node.
#[derive(Debug)]
pub struct Inbound {
    started: Instant,
    slots: Mutex<Slots>,
}

impl Inbound {
    /// Slots for `limit` partitions at once (at least one).
    pub fn new(limit: u32) -> Self {
        Self {
            started: Instant::now(),
            slots: Mutex::new(Slots::new(limit)),
        }
    }

    /// Milliseconds since the node started: the slots' clock.
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes or renews the slot of `store`'s `partition` now.
    pub fn admit(&self, store: &str, partition: u32) -> Result<(), Full> {
        let now = self.now_ms();
        self.slots().admit(store, partition, now)
    }

    /// Frees the slot of `store`'s `partition`: its mark is done.
    pub fn finish(&self, store: &str, partition: u32) {
        self.slots().finish(store, partition);
    }

    /// Slots held now (for the metrics).
    pub fn held(&self) -> usize {
        let now = self.now_ms();
        self.slots().held(now)
    }
}
