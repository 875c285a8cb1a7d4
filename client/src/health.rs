//! Failure detection, local to this client (Dynamo §4.8: no global view is
//! needed; each client learns from its own requests).
//!
//! A node whose request fails in transport (no connection, no answer in
//! time, broken stream) is marked down; any answer marks it up again. Down
//! nodes are skipped when choosing replicas, so requests do not each wait
//! on them, and a probe asks them with backoff whether they are back.

use quire_shared::NodeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First wait before a down node is probed.
pub const PROBE_BACKOFF_INITIAL: Duration = Duration::from_millis(100);

/// Longest wait between probes of a down node.
pub const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
struct Down {
    next_probe: Instant,
    backoff: Duration,
}

/// Which nodes this client believes down.
///
/// Every request asks whether its replicas are up and every answer marks
/// its node up, so the common case (no node down) is answered from one
/// atomic count without taking the lock.
#[derive(Debug, Default)]
pub struct Health {
    down: Mutex<HashMap<NodeId, Down>>,
    /// Entries in `down`, written only under its lock.
    down_count: AtomicUsize,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Down>> {
        self.down.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request to `node` failed in transport. True when this marked it
    /// down (it was up until now), so it is counted once per outage.
    pub fn mark_down(&self, node: NodeId, now: Instant) -> bool {
        let mut down = self.lock();
        if down.contains_key(&node) {
            return false;
        }
        down.insert(
            node,
            Down {
                next_probe: now + PROBE_BACKOFF_INITIAL,
                backoff: PROBE_BACKOFF_INITIAL,
            },
        );
        self.down_count.store(down.len(), Ordering::Release);
        true
    }

    /// `node` answered.
    pub fn mark_up(&self, node: NodeId) {
        if self.down_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut down = self.lock();
        down.remove(&node);
        self.down_count.store(down.len(), Ordering::Release);
    }

    /// True unless `node` is marked down.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.down_count.load(Ordering::Acquire) == 0 || !self.lock().contains_key(&node)
    }

    /// Nodes marked down.
    pub fn down_nodes(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.lock().keys().copied().collect();
        v.sort();
        v
    }

    /// Down nodes due for a probe at `now`; each one's next probe is pushed
    /// back (doubling, up to [`PROBE_BACKOFF_MAX`]).
    pub fn due_probes(&self, now: Instant) -> Vec<NodeId> {
        let mut due = Vec::new();
        for (node, d) in self.lock().iter_mut() {
            if d.next_probe <= now {
                due.push(*node);
                d.backoff = (d.backoff * 2).min(PROBE_BACKOFF_MAX);
                d.next_probe = now + d.backoff;
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_nodes_are_probed_with_backoff_and_come_back_on_an_answer() {
        let h = Health::default();
        let t0 = Instant::now();
        assert!(h.mark_down(NodeId(7), t0), "newly down");
        assert!(!h.is_up(NodeId(7)));
        assert!(h.due_probes(t0).is_empty(), "not before the first backoff");
        assert_eq!(h.due_probes(t0 + PROBE_BACKOFF_INITIAL), vec![NodeId(7)]);
        // Next probe waits twice as long.
        let t1 = t0 + PROBE_BACKOFF_INITIAL;
        assert!(h.due_probes(t1 + PROBE_BACKOFF_INITIAL).is_empty());
        assert_eq!(
            h.due_probes(t1 + PROBE_BACKOFF_INITIAL * 2),
            vec![NodeId(7)]
        );
        // Marking down again does not reset the backoff, nor count twice.
        assert!(!h.mark_down(NodeId(7), t1));
        h.mark_up(NodeId(7));
        assert!(h.is_up(NodeId(7)));
        assert!(h.down_nodes().is_empty());
    }
}
