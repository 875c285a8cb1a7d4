//! The node's limit on partitions it receives at once in a membership
//! change (`limits.transfers_in_max`).
//!
//! Transfers are driven by clients, any number of them (every
//! application's maintenance, an operator's `quire cluster transfers
//! --wait --parallel 8`), so a limit kept by each client bounds nothing on
//! the node. The receiver keeps it instead, as Riak's `transfer_limit`
//! does per node: a partition holds a slot from its first `TransferPage`
//! until its last page is stored, and a page for a partition without a
//! slot is refused (`Unavailable`) while every slot is held. A client that
//! stopped mid-transfer (killed, say) lets its slot lapse after
//! [`SLOT_LEASE`] without a page; its transfer resumes from the
//! receiver's mark whenever a slot is free again.
//!
//! Only receivers are limited: a source serves its pages with plain
//! segment scans, the same reads anti-entropy makes, and the receiver's
//! writes (one transaction per page part, beside the foreground's) are
//! what a transfer costs a node most.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a slot stays held without a page.
pub const SLOT_LEASE: Duration = Duration::from_secs(10);

/// Every slot is held by another partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// Slots held (the limit).
    pub held: usize,
}

/// The slots of one node.
#[derive(Debug)]
pub struct Inbound {
    limit: usize,
    /// (store, partition) → when its latest page (or claim) came.
    held: Mutex<BTreeMap<(String, u32), Instant>>,
}

impl Inbound {
    /// Slots for `limit` partitions at once (at least one).
    pub fn new(limit: u32) -> Self {
        Self {
            limit: (limit as usize).max(1),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes or renews the slot of `store`'s `partition` at `now`, unless
    /// every slot is held by others.
    pub fn admit(&self, store: &str, partition: u32, now: Instant) -> Result<(), Full> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, last| now.saturating_duration_since(*last) < SLOT_LEASE);
        let slot = (store.to_owned(), partition);
        if !held.contains_key(&slot) && held.len() >= self.limit {
            return Err(Full { held: held.len() });
        }
        held.insert(slot, now);
        Ok(())
    }

    /// Frees the slot of `store`'s `partition`: its last page is stored.
    pub fn finish(&self, store: &str, partition: u32) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&(store.to_owned(), partition));
    }

    /// Slots held at `now` (for the metrics).
    pub fn held(&self, now: Instant) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.values()
            .filter(|last| now.saturating_duration_since(**last) < SLOT_LEASE)
            .count()
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_keeps_its_slot_and_others_wait_until_it_finishes() {
        let inbound = Inbound::new(2);
        let t = Instant::now();
        assert_eq!(inbound.admit("s", 1, t), Ok(()));
        assert_eq!(inbound.admit("s", 2, t), Ok(()));
        assert_eq!(inbound.admit("s", 3, t), Err(Full { held: 2 }));
        // Another store's partition of the same number is another slot.
        assert_eq!(inbound.admit("t", 1, t), Err(Full { held: 2 }));
        // A partition holding a slot is admitted again.
        assert_eq!(inbound.admit("s", 1, t + Duration::from_secs(1)), Ok(()));
        inbound.finish("s", 2);
        assert_eq!(inbound.held(t), 1);
        assert_eq!(inbound.admit("s", 3, t), Ok(()));
        assert_eq!(inbound.held(t), 2);
    }

    #[test]
    fn a_slot_without_pages_lapses_after_its_lease() {
        let inbound = Inbound::new(1);
        let t = Instant::now();
        assert_eq!(inbound.admit("s", 1, t), Ok(()));
        let before = t + SLOT_LEASE - Duration::from_millis(1);
        assert_eq!(inbound.admit("s", 2, before), Err(Full { held: 1 }));
        assert_eq!(inbound.held(t + SLOT_LEASE), 0);
        assert_eq!(inbound.admit("s", 2, t + SLOT_LEASE), Ok(()));
        // The lapsed transfer waits its turn like any other.
        assert_eq!(inbound.admit("s", 1, t + SLOT_LEASE), Err(Full { held: 1 }));
    }

    #[test]
    fn a_limit_of_zero_still_lets_one_transfer_move() {
        let inbound = Inbound::new(0);
        assert_eq!(inbound.limit(), 1);
        assert_eq!(inbound.admit("s", 1, Instant::now()), Ok(()));
    }
}
