//! Virtual time and the network between clients and nodes.
//!
//! A world's future is one [`Agenda`]: events ordered by time, then by the
//! order they were scheduled, so two events at the same millisecond keep a
//! fixed order and a seed replays exactly. Time is whole milliseconds since
//! the world began; nothing reads a clock.
//!
//! The [`Network`] decides each message's fate when it is sent: lost,
//! delivered after a random delay (random delays are what reorder
//! messages), or delivered twice. Requests and replies are treated alike.
//! A request takes effect on its node when it is delivered, which may be
//! long after its sender gave up on it: the sender's timeout says nothing
//! about whether the write happened. Partitions cut chosen clients off
//! from chosen nodes; a message crossing a cut when it arrives is lost,
//! in either direction.

use super::rng::Rng;
use quire_shared::wire::{Reply, Request};
use quire_shared::NodeId;
use std::collections::BTreeMap;

use crate::quorum::NodeFailure;

/// Events in time order; ties keep the order they were scheduled in.
pub struct Agenda<E> {
    /// `(at_ms, sequence)` → event.
    queue: BTreeMap<(u64, u64), E>,
    /// Scheduling order, the tie-breaker.
    seq: u64,
}

impl<E> Agenda<E> {
    /// An empty agenda.
    pub fn new() -> Self {
        Self {
            queue: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Schedules `event` at `at_ms`.
    pub fn push(&mut self, at_ms: u64, event: E) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), event);
    }

    /// When the next event is due, if any.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.keys().next().map(|&(at, _)| at)
    }

    /// Takes the next event.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.queue.pop_first().map(|((at, _), e)| (at, e))
    }

    /// Events scheduled.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

/// What travels: a request to a node, or a node's answer.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Client to node.
    Request(Request),
    /// Node to client: the reply or the node's refusal.
    Reply(Result<Reply, NodeFailure>),
}

/// One message between a client and a node (either way).
#[derive(Clone, Debug)]
pub struct Message {
    /// The call it belongs to.
    pub call: u64,
    /// The client end.
    pub client: usize,
    /// The node end.
    pub node: NodeId,
    /// What it carries.
    pub payload: Payload,
}

/// How unkind a world's network is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Chance that a message is lost.
    pub drop: f64,
    /// Chance that a message arrives twice.
    pub duplicate: f64,
    /// Longest ordinary delay.
    pub delay_ms_max: u64,
    /// Chance that a message is slow: up to three times the longest
    /// ordinary delay, so it arrives after its sender gave up.
    pub slow: f64,
    /// Chance that a request to a down node fails at once (a refused
    /// connection) rather than going unanswered until the call times out.
    pub fast_fail: f64,
    /// Chance that a node refuses a write as too large (as a node with a
    /// lower value limit would during a config roll-out): a refusal every
    /// replica would give, which must not be retried elsewhere, nor undo
    /// a put that already succeeded.
    pub refuse: f64,
    /// Chance that an answer arrives garbled: the driver's check of every
    /// reply (`Reply::validated`) turns it into that node's failure.
    pub garble: f64,
}

impl Faults {
    /// After the faults stop: every message arrives, in well under a
    /// call's timeout, once.
    pub const QUIET: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        delay_ms_max: 40,
        slow: 0.0,
        fast_fail: 0.0,
        refuse: 0.0,
        garble: 0.0,
    };
}

/// The network's state: its faults and the current partition.
pub struct Network {
    /// How unkind it is now.
    pub faults: Faults,
    /// `(client, node)` pairs that cannot reach each other.
    cut: Vec<(usize, NodeId)>,
    /// Messages lost so far (for the run's statistics).
    pub dropped: u64,
    /// Messages duplicated so far.
    pub duplicated: u64,
}

impl Network {
    /// A network with `faults` and no partition.
    pub fn new(faults: Faults) -> Self {
        Self {
            faults,
            cut: Vec::new(),
            dropped: 0,
            duplicated: 0,
        }
    }

    /// The delays after which copies of a message sent now arrive: none
    /// (lost), one, or two (duplicated).
    pub fn delays(&mut self, rng: &mut Rng) -> impl Iterator<Item = u64> {
        let f = self.faults;
        let one = |rng: &mut Rng| {
            let max = if rng.chance(f.slow) {
                f.delay_ms_max * 3 + 1
            } else {
                f.delay_ms_max
            };
            rng.between(0, max)
        };
        let first = if rng.chance(f.drop) {
            self.dropped += 1;
            None
        } else {
            Some(one(rng))
        };
        let second = if rng.chance(f.duplicate) {
            self.duplicated += 1;
            Some(one(rng))
        } else {
            None
        };
        [first, second].into_iter().flatten()
    }

    /// True unless a partition separates `client` from `node`.
    pub fn reachable(&self, client: usize, node: NodeId) -> bool {
        !self.cut.contains(&(client, node))
    }

    /// Cuts each of `clients` off from each of `nodes` (on top of any cut
    /// already in place).
    pub fn partition(&mut self, clients: &[usize], nodes: &[NodeId]) {
        for &c in clients {
            for &n in nodes {
                if self.reachable(c, n) {
                    self.cut.push((c, n));
                }
            }
        }
    }

    /// True while some partition is in place.
    pub fn partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agenda_orders_by_time_then_by_scheduling() {
        let mut a = Agenda::new();
        a.push(5, "late");
        a.push(1, "first");
        a.push(1, "second");
        assert_eq!(a.next_at(), Some(1));
        assert_eq!(a.len(), 3);
        let order: Vec<_> = std::iter::from_fn(|| a.pop()).collect();
        assert_eq!(order, vec![(1, "first"), (1, "second"), (5, "late")]);
    }

    #[test]
    fn a_network_loses_duplicates_and_cuts_as_told() {
        let mut rng = Rng::new(1);
        let mut calm = Network::new(Faults::QUIET);
        for _ in 0..100 {
            let d: Vec<u64> = calm.delays(&mut rng).collect();
            assert!(d.len() == 1 && d[0] <= Faults::QUIET.delay_ms_max);
        }
        let lossy = Faults {
            drop: 1.0,
            duplicate: 1.0,
            ..Faults::QUIET
        };
        let mut net = Network::new(lossy);
        assert_eq!(net.delays(&mut rng).count(), 1, "lost, and its twin not");
        assert_eq!((net.dropped, net.duplicated), (1, 1));
        net.partition(&[0], &[NodeId(2), NodeId(3)]);
        assert!(!net.reachable(0, NodeId(2)) && net.reachable(1, NodeId(2)));
        assert!(net.partitioned());
        net.heal();
        assert!(net.reachable(0, NodeId(3)) && !net.partitioned());
    }
}
