//! A node's transfer slots: the partitions it receives at once in a
//! membership change (`limits.transfers_in_max`).
//!
//! Transfers are driven by clients, any number of them (every
//! application's maintenance, an operator's `quire cluster transfers
//! --wait --parallel 8`), so a limit kept by each client bounds nothing on
//! the node. The receiver keeps it instead, as Riak's `transfer_limit`
//! does per node: a partition holds a slot from its first `TransferPage`
//! until its mark is done, and a page for a partition without a slot is
//! refused while every slot is held. A client that stopped mid-transfer
//! (killed, say) lets its slot lapse after [`SLOT_LEASE_MS`] without a
//! page; its transfer resumes from the receiver's mark whenever a slot is
//! free again.
//!
//! Pure rules on a clock given in milliseconds: the node keeps them behind
//! a lock, the simulation in its node model.

use std::collections::BTreeMap;

/// How long a slot stays held without a page, in milliseconds.
pub const SLOT_LEASE_MS: u64 = 10_000;

/// Every slot is held by another partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// Slots held (the limit).
    pub held: usize,
}

/// The slots of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slots {
    limit: usize,
    /// (store, partition) → when its latest page (or claim) came.
    held: BTreeMap<(String, u32), u64>,
}

impl Slots {
    /// Slots for `limit` partitions at once (at least one).
    pub fn new(limit: u32) -> Self {
        Self {
            limit: (limit as usize).max(1),
            held: BTreeMap::new(),
        }
    }

    /// Takes or renews the slot of `store`'s `partition` at `now_ms`,
    /// unless every slot is held by others.
    pub fn admit(&mut self, store: &str, partition: u32, now_ms: u64) -> Result<(), Full> {
        self.held
            .retain(|_, last| now_ms.saturating_sub(*last) < SLOT_LEASE_MS);
        let slot = (store.to_owned(), partition);
        if !self.held.contains_key(&slot) && self.held.len() >= self.limit {
            return Err(Full {
                held: self.held.len(),
            });
        }
        self.held.insert(slot, now_ms);
        Ok(())
    }

    /// Frees the slot of `store`'s `partition`: its mark is done.
    pub fn finish(&mut self, store: &str, partition: u32) {
        self.held.remove(&(store.to_owned(), partition));
    }

    /// Slots held at `now_ms`.
    pub fn held(&self, now_ms: u64) -> usize {
        self.held
            .values()
            .filter(|last| now_ms.saturating_sub(**last) < SLOT_LEASE_MS)
            .count()
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Frees every slot (the node restarted: slots live in memory).
    pub fn clear(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_keeps_its_slot_and_others_wait_until_it_finishes() {
        let mut slots = Slots::new(2);
        assert_eq!(slots.admit("s", 1, 0), Ok(()));
        assert_eq!(slots.admit("s", 2, 0), Ok(()));
        assert_eq!(slots.admit("s", 3, 0), Err(Full { held: 2 }));
        // Another store's partition of the same number is another slot.
        assert_eq!(slots.admit("t", 1, 0), Err(Full { held: 2 }));
        // A partition holding a slot is admitted again.
        assert_eq!(slots.admit("s", 1, 1_000), Ok(()));
        slots.finish("s", 2);
        assert_eq!(slots.held(0), 1);
        assert_eq!(slots.admit("s", 3, 0), Ok(()));
        assert_eq!(slots.held(0), 2);
    }

    #[test]
    fn a_slot_without_pages_lapses_after_its_lease() {
        let mut slots = Slots::new(1);
        assert_eq!(slots.admit("s", 1, 0), Ok(()));
        assert_eq!(
            slots.admit("s", 2, SLOT_LEASE_MS - 1),
            Err(Full { held: 1 })
        );
        assert_eq!(slots.held(SLOT_LEASE_MS), 0);
        assert_eq!(slots.admit("s", 2, SLOT_LEASE_MS), Ok(()));
        // The lapsed transfer waits its turn like any other.
        assert_eq!(slots.admit("s", 1, SLOT_LEASE_MS), Err(Full { held: 1 }));
    }

    #[test]
    fn a_limit_of_zero_still_lets_one_transfer_move() {
        let mut slots = Slots::new(0);
        assert_eq!(slots.limit(), 1);
        assert_eq!(slots.admit("s", 1, 0), Ok(()));
    }
}
