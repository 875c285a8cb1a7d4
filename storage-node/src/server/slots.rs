//! Connection slots: at most `limits.connections_max` connections in all,
//! and at most `limits.connections_per_peer_max` from one IP address.
//!
//! A peer at its cap that opens another connection has the oldest of its
//! *idle* connections (no request in flight for [`IDLE_GRACE`]) closed to
//! make room; only when every one of its connections is busy, or new, is
//! the new one refused. Without
//! this, a client that goes away without saying goodbye (a CLI process
//! that exits, a crashed service) holds its slots until the idle timeout,
//! and a host running many short-lived clients was refused after a
//! hundred or so of them (seen in tests/multihost_change.rs: cold `quire`
//! processes from one client host). A hostile peer gains nothing from it:
//! its own connections are the ones recycled. The node-wide cap never
//! evicts, so one peer's churn cannot close another peer's connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a connection must have had no request in flight before a
/// newer connection of its peer may take its slot. Long enough that a
/// connection is not recycled between its handshake and its first request
/// (a flood of new connections would otherwise recycle its own, costing
/// the node a handshake each), short next to the idle timeout that would
/// otherwise free an abandoned slot.
pub(crate) const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Connection slots of one node.
#[derive(Debug)]
pub(crate) struct Slots {
    total_max: u32,
    per_peer_max: u32,
    /// [`IDLE_GRACE`], or none in unit tests.
    grace: Duration,
    held: Mutex<Held>,
}

/// The connections held now: their count, and per peer address, theirs
/// oldest first (an address leaves with its last connection, so the map
/// holds at most `total_max` addresses).
#[derive(Debug, Default)]
struct Held {
    total: u32,
    peers: HashMap<IpAddr, Vec<Arc<Activity>>>,
}

/// What the slot table knows of one connection while it is served.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Requests (streams) being served now: 0 means idle.
    streams: AtomicU32,
    /// When the connection was admitted or last started or finished a
    /// request: idle for [`IDLE_GRACE`] since means evictable.
    active_at: Mutex<Instant>,
    /// Set once the slot was given to a newer connection of the peer.
    evicted: AtomicBool,
    /// Wakes the connection's task to close it.
    evict: Notify,
}

/// A connection's slot; freed when dropped (the connection's task ends).
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    peer: IpAddr,
    /// Shared with the slot table.
    pub(crate) activity: Arc<Activity>,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The node serves `connections_max` connections already.
    Full,
    /// This address holds `connections_per_peer_max` connections already,
    /// each with a request in flight.
    PeerFull,
}

impl Slots {
    /// Slots for `total_max` connections, `per_peer_max` per address.
    pub(crate) fn new(total_max: u32, per_peer_max: u32) -> Arc<Self> {
        Self::with_grace(total_max, per_peer_max, IDLE_GRACE)
    }

    fn with_grace(total_max: u32, per_peer_max: u32, grace: Duration) -> Arc<Self> {
        Arc::new(Self {
            total_max,
            per_peer_max,
            grace,
            held: Mutex::new(Held::default()),
        })
    }

    /// Why a new connection from `peer` would be refused now, if it would
    /// (nothing changes): checked before a peer proves its address, so an
    /// attempt that would be refused anyway costs no Retry round. A peer
    /// cannot make this refuse another: only connections the node holds
    /// count, and each was made from its own address.
    pub(crate) fn would_refuse(&self, peer: IpAddr) -> Option<Refused> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.peers.get(&peer).map_or(&[][..], Vec::as_slice);
        self.verdict(mine, held.total).err()
    }

    /// Whether a new connection of a peer holding `mine` may have a slot
    /// while the node holds `total`: yes, evicting the peer's connection at
    /// the index given (its oldest idle one, when it is at its cap), or why
    /// not.
    fn verdict(&self, mine: &[Arc<Activity>], total: u32) -> Result<Option<usize>, Refused> {
        if mine.len() >= self.per_peer_max as usize {
            let now = Instant::now();
            let idle = mine
                .iter()
                .position(|a| a.idle_since(now) >= self.grace)
                .ok_or(Refused::PeerFull)?;
            Ok(Some(idle))
        } else if total >= self.total_max {
            Err(Refused::Full)
        } else {
            Ok(None)
        }
    }

    /// A slot for a new connection from `peer`, evicting the peer's
    /// oldest idle connection if it is at its cap; or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Held { total, peers } = &mut *held;
        let mine = peers.entry(peer).or_default();
        match self.verdict(mine, *total) {
            Ok(Some(idle)) => {
                let old = mine.remove(idle);
                old.evicted.store(true, Ordering::Release);
                old.evict.notify_one();
                *total -= 1;
            }
            Ok(None) => {}
            Err(why) => {
                if mine.is_empty() {
                    peers.remove(&peer);
                }
                return Err(why);
            }
        }
        let activity = Arc::new(Activity {
            streams: AtomicU32::new(0),
            active_at: Mutex::new(Instant::now()),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        });
        mine.push(activity.clone());
        *total += 1;
        Ok(Slot {
            slots: self.clone(),
            peer,
            activity,
        })
    }
}

impl Activity {
    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.streams.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    fn touch(&self) {
        *self.active_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long the connection has had no request in flight (zero while it
    /// has one).
    fn idle_since(&self, now: Instant) -> Duration {
        if self.streams.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        now.saturating_duration_since(*self.active_at.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Resolves once the slot was given to a newer connection of the peer.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// A request in flight on a connection (see [`Activity::busy`]).
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.activity.evicted.load(Ordering::Acquire) {
            // Already out of the table, and uncounted, since its eviction.
            return;
        }
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        let Held { total, peers } = &mut *held;
        if let Some(mine) = peers.get_mut(&self.peer) {
            if let Some(at) = mine.iter().position(|a| Arc::ptr_eq(a, &self.activity)) {
                mine.remove(at);
                *total -= 1;
            }
            if mine.is_empty() {
                peers.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn would_refuse_says_what_admit_would_and_changes_nothing() {
        let slots = Slots::with_grace(3, 2, Duration::from_secs(3600));
        assert_eq!(slots.would_refuse(ip("10.0.0.1")), None);
        let a = slots.admit(ip("10.0.0.1")).unwrap();
        let _b = slots.admit(ip("10.0.0.1")).unwrap();
        // At its cap, every connection busy (too young to be idle).
        assert_eq!(slots.would_refuse(ip("10.0.0.1")), Some(Refused::PeerFull));
        assert_eq!(slots.would_refuse(ip("10.0.0.1")), Some(Refused::PeerFull));
        assert_eq!(slots.would_refuse(ip("10.0.0.2")), None);
        let _c = slots.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(slots.would_refuse(ip("10.0.0.3")), Some(Refused::Full));
        assert_eq!(slots.admit(ip("10.0.0.3")).unwrap_err(), Refused::Full);
        drop(a);
        assert_eq!(slots.would_refuse(ip("10.0.0.1")), None);
        assert_eq!(slots.would_refuse(ip("10.0.0.3")), None);
        // A peer at its cap with an idle connection would be let in.
        let quick = Slots::with_grace(3, 1, Duration::ZERO);
        let _d = quick.admit(ip("10.0.0.4")).unwrap();
        assert_eq!(quick.would_refuse(ip("10.0.0.4")), None);
    }

    #[test]
    fn slots_are_capped_in_all_and_per_peer_and_come_back() {
        let slots = Slots::new(3, 2);
        let s1 = slots.admit(ip("127.0.0.1")).unwrap();
        let _busy1 = s1.activity.busy();
        let s2 = slots.admit(ip("127.0.0.1")).unwrap();
        let _busy2 = s2.activity.busy();
        assert_eq!(
            slots.admit(ip("127.0.0.1")).unwrap_err(),
            Refused::PeerFull,
            "every connection of the peer is busy"
        );
        let _s3 = slots.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(slots.admit(ip("127.0.0.3")).unwrap_err(), Refused::Full);
        drop(s1);
        let _s4 = slots.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(slots.admit(ip("127.0.0.4")).unwrap_err(), Refused::Full);
    }

    #[test]
    fn a_peer_at_its_cap_recycles_its_oldest_idle_connection() {
        let slots = Slots::with_grace(10, 2, Duration::ZERO);
        let oldest = slots.admit(ip("127.0.0.1")).unwrap();
        let busy = slots.admit(ip("127.0.0.1")).unwrap();
        let _guard = busy.activity.busy();
        let newest = slots
            .admit(ip("127.0.0.1"))
            .expect("the idle one makes room");
        assert!(oldest.activity.evicted.load(Ordering::Acquire));
        assert!(!busy.activity.evicted.load(Ordering::Acquire));
        // Dropping the evicted slot frees nothing twice.
        drop(oldest);
        assert_eq!(slots.held.lock().unwrap().total, 2);
        drop((busy, newest));
        let held = slots.held.lock().unwrap();
        assert_eq!(held.total, 0);
        assert!(held.peers.is_empty());
    }

    #[test]
    fn a_connection_within_its_grace_is_not_recycled() {
        let slots = Slots::new(10, 1);
        let _new = slots.admit(ip("127.0.0.1")).unwrap();
        assert_eq!(slots.admit(ip("127.0.0.1")).unwrap_err(), Refused::PeerFull);
    }

    #[tokio::test]
    async fn an_evicted_connection_is_woken() {
        let slots = Slots::with_grace(10, 1, Duration::ZERO);
        let old = slots.admit(ip("127.0.0.1")).unwrap();
        let _new = slots.admit(ip("127.0.0.1")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), old.activity.evicted())
            .await
            .expect("told to close");
    }
}
