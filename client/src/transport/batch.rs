//! Requests to one node sent together on shared streams (protocol 9).
//!
//! Most of a small request's cost, on both ends, is its stream and its
//! packets: opening, flow-control credit, a packet each way, a wake-up.
//! Under load a client has many requests for the same node at once, so a
//! batcher per connection and class queues them and sends what is queued
//! as the frames of one stream, which the node answers in order. At most
//! [`BATCHES_IN_FLIGHT`] streams of a batcher are open at a time: while
//! they are, new requests wait in the queue and leave together with the
//! next stream. A request that finds a free stream leaves at once, alone,
//! so an idle client adds no delay.
//!
//! The data path's requests are batched, in two classes: reads (`Get`)
//! apart from writes (`Put`, `Replicate`), since a node answers a stream's
//! frames in order and a read must not wait for a write's fsync. Every
//! other request has a stream of its own, as before.
//!
//! Measured with the quic-echo baseline of `quire bench` (32 concurrent
//! gets on one connection), queueing behind at most 2 to 8 open streams
//! gave 112 000 to 124 000 echoes/s, against 47 000 with no limit on open
//! streams (nearly every request then left on a stream of its own).

use super::TransportError;
use quire_shared::wire::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

/// Streams a batcher keeps open at once; requests queue behind them.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Most requests in one batch: the node handles at most 64 of a stream's
/// frames at once.
const BATCH_REQUESTS_MAX: usize = 32;

/// Frames at least this large go on a stream of their own: batching saves
/// per-request costs that a large frame dwarfs, and a large value should
/// not hold small requests behind it.
pub const BATCH_FRAME_BYTES_MAX: usize = 16 << 10;

/// Which of a connection's batchers a request goes through, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `Get`.
    Read,
    /// `Put`, `Replicate`.
    Write,
}

impl Class {
    /// The class of `request` framed as `frame`, or `None` for a stream of
    /// its own.
    pub fn of(request: &Request, frame: &[u8]) -> Option<Self> {
        if frame.len() >= BATCH_FRAME_BYTES_MAX {
            return None;
        }
        match request {
            Request::Get { .. } => Some(Class::Read),
            Request::Put { .. } | Request::Replicate { .. } => Some(Class::Write),
            _ => None,
        }
    }
}

/// One request waiting for a batch.
struct Queued {
    frame: Vec<u8>,
    deadline: Instant,
    answer: oneshot::Sender<Result<Response, TransportError>>,
}

/// A connection's queue of one class of requests, and the task sending
/// it. The task ends when the batcher is dropped (with its connection).
pub struct Batcher {
    queue: mpsc::UnboundedSender<Queued>,
    addr: SocketAddr,
}

impl Batcher {
    /// Starts batching requests to `addr` over `quic`.
    pub fn start(quic: quinn::Connection, addr: SocketAddr) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(quic, addr, waiting));
        Self { queue, addr }
    }

    /// Sends `frame` with the next batch; its answer, or why none came.
    /// The caller bounds the wait; a request it gave up on before its
    /// batch left is not sent.
    pub async fn call(
        &self,
        frame: Vec<u8>,
        deadline: Instant,
    ) -> Result<Response, TransportError> {
        let (answer, answered) = oneshot::channel();
        let gone = || TransportError::Stream {
            addr: self.addr,
            reason: "connection closed".into(),
        };
        self.queue
            .send(Queued {
                frame,
                deadline,
                answer,
            })
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// The batcher's task: waits for a free stream, then takes the first
/// queued request and whatever else is queued, and sends them on it.
async fn send_batches(
    quic: quinn::Connection,
    addr: SocketAddr,
    mut waiting: mpsc::UnboundedReceiver<Queued>,
) {
    let streams = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(stream) = streams.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_REQUESTS_MAX {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Callers that gave up meanwhile are not sent.
        batch.retain(|q| !q.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        let quic = quic.clone();
        tokio::spawn(async move {
            send_batch(&quic, addr, batch).await;
            drop(stream);
        });
    }
}

/// Sends `batch` on one stream and hands each answer to its caller, in
/// order; a failure goes to every caller not yet answered. Gives up at
/// the latest of the callers' deadlines.
async fn send_batch(quic: &quinn::Connection, addr: SocketAddr, batch: Vec<Queued>) {
    let deadline = batch
        .iter()
        .map(|q| q.deadline)
        .max()
        .expect("a batch is never empty");
    let stream_err = |reason: String| TransportError::Stream { addr, reason };
    let mut waiting = batch.into_iter();
    let talk = async {
        // Opening waits while the node's stream limit is reached.
        let (mut send, mut recv) = quic
            .open_bi()
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        for queued in waiting.as_slice() {
            send.write_all(&queued.frame)
                .await
                .map_err(|e| stream_err(e.to_string()))?;
        }
        let _ = send.finish();
        for queued in waiting.by_ref() {
            let answer = super::read_answer(&mut recv, addr).await;
            let failed = answer.as_ref().err().cloned();
            let _ = queued.answer.send(answer);
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok::<_, TransportError>((send, recv))
    };
    match tokio::time::timeout_at(deadline, talk).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            for queued in waiting {
                let _ = queued.answer.send(Err(e.clone()));
            }
        }
        // Every caller has given up by now; dropping the streams resets
        // them, so the node stops on them too.
        Err(_) => {}
    }
}
