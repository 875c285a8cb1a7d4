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

/// Bytes at the start of each request frame taken from its connection's
/// own pool rather than the node-wide one: every ordinary request (a get,
/// a put of a small value) fits, so it never waits behind another peer's
/// large frames.
pub(crate) const FRAME_HEAD_BYTES: usize = 64 << 10;

/// Each connection's pool for the heads of its frames: room for 16 heads
/// of [`FRAME_HEAD_BYTES`], or a great many small requests. A connection
/// that fills it waits for its own requests, never for anyone else's.
pub(crate) const CONNECTION_HEAD_BYTES: usize = 1 << 20;

/// One request's share of the byte budgets: its frame's first
/// [`FRAME_HEAD_BYTES`] from its connection's pool, the rest from the
/// node-wide pool (`limits.request_bytes_in_flight_max`). It grows as the
/// frame arrives and is given back when the request is answered (dropped).
///
/// Why two pools: with one shared pool, a peer sending large frames slowly
/// holds all of it and every other peer's smallest request waits for it
/// (seen in the hostile-peer test: honest gets timed out). With the heads
/// apart, only frames larger than a head compete across connections.
pub(crate) struct RequestBytes {
    connection: Arc<Semaphore>,
    node: Arc<Semaphore>,
    taken: usize,
    held: Vec<OwnedSemaphorePermit>,
}

impl RequestBytes {
    /// A share of `connection`'s pool and `node`'s, holding nothing yet.
    pub(crate) fn new(connection: Arc<Semaphore>, node: Arc<Semaphore>) -> Self {
        Self {
            connection,
            node,
            taken: 0,
            held: Vec::new(),
        }
    }

    async fn take(&mut self, pool: Arc<Semaphore>, bytes: usize) {
        if bytes == 0 {
            return;
        }
        // Chunks are at most 64 KiB and each pool holds at least one chunk
        // (a frame, for the node's), so this completes once other requests
        // finish or time out. The pools are never closed.
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        if let Ok(permit) = pool.acquire_many_owned(n).await {
            self.held.push(permit);
        }
    }
}

impl PayloadBudget for RequestBytes {
    async fn reserve(&mut self, bytes: usize) {
        let head = bytes.min(FRAME_HEAD_BYTES.saturating_sub(self.taken));
        self.taken += bytes;
        self.take(self.connection.clone(), head).await;
        self.take(self.node.clone(), bytes - head).await;
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
    async fn frame_heads_come_from_the_connection_and_the_rest_from_the_node() {
        use std::time::Duration;
        let node = Arc::new(Semaphore::new(FRAME_HEAD_BYTES * 2));
        let busy = Arc::new(Semaphore::new(CONNECTION_HEAD_BYTES));
        // A large frame on a busy connection takes its head there and the
        // rest (all of the node's pool) from the node.
        let mut large = RequestBytes::new(busy.clone(), node.clone());
        large.reserve(FRAME_HEAD_BYTES).await;
        large.reserve(FRAME_HEAD_BYTES * 2).await;
        assert_eq!(node.available_permits(), 0);
        assert_eq!(
            busy.available_permits(),
            CONNECTION_HEAD_BYTES - FRAME_HEAD_BYTES
        );
        // A small request on another connection does not wait for it.
        let quiet = Arc::new(Semaphore::new(CONNECTION_HEAD_BYTES));
        let mut small = RequestBytes::new(quiet.clone(), node.clone());
        tokio::time::timeout(Duration::from_millis(50), small.reserve(300))
            .await
            .expect("a small request is not held behind a large one");
        // A second large frame waits for the node's pool until the first
        // is answered.
        let mut second = RequestBytes::new(quiet.clone(), node.clone());
        second.reserve(FRAME_HEAD_BYTES).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), second.reserve(1_000)).await;
        assert!(waiting.is_err(), "the node's pool is held by the first");
        drop(large);
        second.reserve(1_000).await;
        assert_eq!(node.available_permits(), FRAME_HEAD_BYTES * 2 - 1_000);
        drop((small, second));
        assert_eq!(quiet.available_permits(), CONNECTION_HEAD_BYTES);
    }
}
