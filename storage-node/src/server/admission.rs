//! What the node lets in: connection slots (in all and per peer address)
//! and the byte budget of request frames being read.
//!
//! An authenticated peer is still a peer that may be broken or hostile.
//! These caps are what keeps one of them from taking every connection
//! slot, or from making the node hold gigabytes of half-sent frames.

use quire_net::frame::PayloadBudget;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection slots: at most `total_max` connections, and at most
/// `per_peer_max` from one IP address.
#[derive(Debug)]
pub(crate) struct Admission {
    total_max: u32,
    per_peer_max: u32,
    /// Connections held now, per peer address; the sum is checked against
    /// `total_max`. Entries leave when their last connection does, so the
    /// map holds at most `total_max` addresses.
    held: Mutex<(u32, HashMap<IpAddr, u32>)>,
}

/// A connection slot; freed when dropped (the connection's task ends).
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    peer: IpAddr,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The node serves `connections_max` connections already.
    Full,
    /// This address holds `connections_per_peer_max` connections already.
    PeerFull,
}

impl Admission {
    /// Slots for `total_max` connections, `per_peer_max` per address.
    pub(crate) fn new(total_max: u32, per_peer_max: u32) -> Arc<Self> {
        Arc::new(Self {
            total_max,
            per_peer_max,
            held: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for a connection from `peer`, or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_peer) = &mut *held;
        if *total >= self.total_max {
            return Err(Refused::Full);
        }
        let mine = per_peer.entry(peer).or_insert(0);
        if *mine >= self.per_peer_max {
            return Err(Refused::PeerFull);
        }
        *mine += 1;
        *total += 1;
        Ok(Slot {
            admission: self.clone(),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .admission
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (total, per_peer) = &mut *held;
        *total = total.saturating_sub(1);
        if let Some(mine) = per_peer.get_mut(&self.peer) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

/// One request's share of the node-wide byte budget
/// (`limits.request_bytes_in_flight_max`): grows as the request's frame
/// arrives and is given back when the request is answered (dropped).
pub(crate) struct RequestBytes {
    pool: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl RequestBytes {
    /// A share of `pool`, holding nothing yet.
    pub(crate) fn new(pool: Arc<Semaphore>) -> Self {
        Self { pool, held: None }
    }
}

impl PayloadBudget for RequestBytes {
    async fn reserve(&mut self, bytes: usize) {
        // Chunks are at most 64 KiB and the pool at least one frame, so
        // this always completes once other requests finish or time out.
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        // The pool is never closed; a closed one would only mean no bound.
        if let Ok(permit) = self.pool.clone().acquire_many_owned(n).await {
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_all_and_per_peer_and_come_back() {
        let a = Admission::new(3, 2);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = a.admit(one).unwrap();
        let _s2 = a.admit(one).unwrap();
        assert_eq!(a.admit(one).unwrap_err(), Refused::PeerFull);
        let _s3 = a.admit(two).unwrap();
        assert_eq!(a.admit(two).unwrap_err(), Refused::Full);
        drop(s1);
        let _s4 = a.admit(one).unwrap();
        assert_eq!(a.admit(one).unwrap_err(), Refused::Full);
    }

    #[tokio::test]
    async fn request_bytes_are_given_back_when_the_request_is_done() {
        let pool = Arc::new(Semaphore::new(100));
        let mut first = RequestBytes::new(pool.clone());
        first.reserve(60).await;
        first.reserve(30).await;
        assert_eq!(pool.available_permits(), 10);
        let mut second = RequestBytes::new(pool.clone());
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), second.reserve(20)).await;
        assert!(waiting.is_err(), "20 bytes do not fit while 90 are held");
        drop(first);
        second.reserve(20).await;
        assert_eq!(pool.available_permits(), 80);
    }
}
