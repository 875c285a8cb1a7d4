//! The byte budgets of request frames being read: a pool per connection
//! for the head of each frame, and one node-wide pool for the rest.
//!
//! An authenticated peer is still a peer that may be broken or hostile;
//! these pools are what keeps one from making the node hold gigabytes of
//! half-sent frames, without holding anyone else's small requests up.

use quire_net::frame::PayloadBudget;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
