//! The order a round starts its transfers in, learning how many each
//! receiver takes at once.
//!
//! A node receives at most `limits.transfers_in_max` partitions at once
//! (2 by default), and the client does not know the setting. Started
//! blindly, `--parallel 8` into one new node asked it for 8 slots at a
//! time and had most refused (513 refusals for 192 transfers in one
//! join). So a refusal sets the receiver's cap to the transfers of this
//! round still under way to it (at least one), and no more than that run
//! to it at once from then on; the others wait in the queue, and so does
//! the refused one, to be tried again when one of ours ends. Only a
//! transfer refused while none of ours runs to its receiver (the slots
//! are another client's) is left for the next round.

use quire_shared::NodeId;
use quire_shared::Transfer;
use std::collections::{HashMap, VecDeque};

/// A round's transfers not yet started.
#[derive(Debug, Default)]
pub(crate) struct TransferQueue {
    ready: VecDeque<Transfer>,
    /// Transfers held back for a receiver at its cap.
    held: HashMap<NodeId, Vec<Transfer>>,
    /// Receivers with a transfer of this round under way, and how many.
    running: HashMap<NodeId, usize>,
    /// Receivers that refused a slot: how many run to each at once.
    cap: HashMap<NodeId, usize>,
}

impl TransferQueue {
    /// A queue of `transfers`, in their order.
    pub(crate) fn new(transfers: Vec<Transfer>) -> Self {
        Self {
            ready: transfers.into(),
            ..Self::default()
        }
    }

    /// The next transfer to start, if one may start now (counted as
    /// running until [`TransferQueue::ended`]).
    pub(crate) fn start_next(&mut self) -> Option<Transfer> {
        while let Some(t) = self.ready.pop_front() {
            let running = self.running.get(&t.to).copied().unwrap_or(0);
            if self.cap.get(&t.to).is_some_and(|&cap| running >= cap) {
                self.held.entry(t.to).or_default().push(t);
                continue;
            }
            *self.running.entry(t.to).or_default() += 1;
            return Some(t);
        }
        None
    }

    /// Transfer `t` ended; `refused` if its receiver had no free slot for
    /// it, which caps the receiver at the transfers still under way to it
    /// (at least one). A refused transfer is queued again if one of ours
    /// to that receiver is under way (its end frees a slot), else handed
    /// back: the round reports it waiting. Transfers held back for the
    /// receiver are ready again (those over its cap are held back again
    /// when their turn comes).
    pub(crate) fn ended(&mut self, t: Transfer, refused: bool) -> Option<Transfer> {
        let to = t.to;
        let left = self.running.get_mut(&to).map_or(0, |n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == 0 {
            self.running.remove(&to);
        }
        let mut waiting = None;
        if refused {
            let cap = self.cap.entry(to).or_insert(usize::MAX);
            *cap = (*cap).min(left).max(1);
            if left > 0 {
                self.held.entry(to).or_default().push(t);
                return None;
            }
            waiting = Some(t);
        }
        if let Some(held) = self.held.remove(&to) {
            // Back at the front: they were next when held back.
            for t in held.into_iter().rev() {
                self.ready.push_front(t);
            }
        }
        waiting
    }

    /// Transfers not yet started (ready or held back).
    pub(crate) fn pending(&self) -> usize {
        self.ready.len() + self.held.values().map(Vec::len).sum::<usize>()
    }

    /// Receivers currently holding transfers back.
    #[cfg(test)]
    fn held_back(&self) -> std::collections::HashSet<NodeId> {
        self.held.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn t(partition: u32, to: u64) -> Transfer {
        Transfer {
            store: "s".into(),
            partition,
            to: NodeId(to),
            from: vec![NodeId(1)],
        }
    }

    #[test]
    fn a_refusal_caps_the_receiver_at_what_is_still_under_way() {
        let mut q = TransferQueue::new((0..6).map(|p| t(p, 4)).chain([t(9, 5)]).collect());
        let started: Vec<Transfer> = (0..4).map(|_| q.start_next().unwrap()).collect();
        let parts: Vec<u32> = started.iter().map(|t| t.partition).collect();
        assert_eq!(parts, [0, 1, 2, 3]);
        // Two of the four are refused: node 4 takes two at once, and the
        // two refused go back to be tried again.
        let mut started = started.into_iter();
        assert!(q.ended(started.next().unwrap(), true).is_none());
        assert!(q.ended(started.next().unwrap(), true).is_none());
        assert_eq!(q.cap.get(&NodeId(4)), Some(&2));
        // Node 4's next transfers wait; node 5's goes ahead.
        assert_eq!(q.start_next().unwrap().partition, 9);
        assert!(q.start_next().is_none());
        assert_eq!(q.held_back(), HashSet::from([NodeId(4)]));
        assert_eq!(q.pending(), 4);
        // Each time one of node 4's ends, one more starts, and no more:
        // the two refused first, then the rest in order.
        let mut next = started.map(Some).chain([Some(t(0, 4)), Some(t(1, 4))]);
        for expected in [0, 1, 4, 5] {
            let ending = next.next().flatten().unwrap();
            assert!(q.ended(ending, false).is_none());
            assert_eq!(q.start_next().unwrap().partition, expected);
            assert!(q.start_next().is_none());
        }
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn a_refusal_with_nothing_of_ours_under_way_is_left_for_the_next_round() {
        // The slots are another client's: the refused transfer is handed
        // back, and one at a time is still tried.
        let mut q = TransferQueue::new(vec![t(0, 4), t(1, 4), t(2, 4)]);
        let a = q.start_next().unwrap();
        assert_eq!(q.ended(a, true).map(|t| t.partition), Some(0));
        let b = q.start_next().unwrap();
        assert_eq!(b.partition, 1);
        assert!(q.start_next().is_none());
        assert_eq!(q.ended(b, true).map(|t| t.partition), Some(1));
        assert_eq!(q.start_next().unwrap().partition, 2);
    }

    #[test]
    fn every_transfer_ends_once_whatever_the_refusals() {
        let all: Vec<Transfer> = (0..40).map(|p| t(p, 4 + u64::from(p % 3))).collect();
        let mut q = TransferQueue::new(all);
        let (mut done, mut left_over) = (Vec::new(), Vec::new());
        let mut running: VecDeque<Transfer> = VecDeque::new();
        let mut i = 0u32;
        loop {
            while running.len() < 8 {
                let Some(t) = q.start_next() else { break };
                running.push_back(t);
            }
            let Some(next) = running.pop_front() else {
                break;
            };
            i += 1;
            let refused = i % 3 == 0;
            let p = next.partition;
            match q.ended(next, refused) {
                Some(w) => left_over.push(w.partition),
                None if !refused => done.push(p),
                None => {}
            }
        }
        done.extend(left_over);
        done.sort_unstable();
        assert_eq!(done, (0..40).collect::<Vec<_>>());
        assert_eq!(q.pending(), 0);
    }
}
