//! One frame on a QUIC stream, read and written the same way by the client
//! and the node.
//!
//! The byte format lives in [`quire_shared::wire`], pure and testable
//! without a socket; this module only moves those bytes. What it pins down
//! is the order of a read: the header first, its length checked against
//! the receiver's limit, and only then the payload, into a buffer that grows
//! as bytes arrive, so a peer cannot make the receiver allocate by
//! announcing a huge frame (and then sending nothing, or sending slowly).
//!
//! [`write_frame`] writes one frame and finishes the sending side: a
//! stream of one request, or its answer. A stream may also carry several
//! frames in each direction (a client's batch of requests to one node,
//! answered in order); those are written as they are and finished once.

use quinn::{ReadExactError, RecvStream, SendStream, WriteError};
use quire_shared::wire::{
    decode_payload, encode_frame, payload_len, FrameError, FRAME_HEADER_BYTES,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a frame could not be read.
///
/// Callers branch on the split: [`Header`](Self::Header) and
/// [`Body`](Self::Body) mean the stream ended or broke (a network or peer
/// failure), [`Frame`](Self::Frame) means bytes arrived that are not an
/// acceptable frame (a peer speaking nonsense, or over the limit).
#[derive(Debug, thiserror::Error)]
pub enum FrameReadError {
    /// The stream ended or failed before the length prefix was complete.
    #[error("incomplete frame header: {0}")]
    Header(#[source] ReadExactError),
    /// The stream ended or failed before the payload the header announced.
    #[error("frame shorter than announced: {0}")]
    Body(#[source] ReadExactError),
    /// The announced length is over the limit (the payload was not read and
    /// the stream was stopped), or the payload does not decode.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Most bytes asked of the stream at a time while a payload arrives: the
/// buffer grows by what was received, never by what was announced.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Reads one frame of at most `max` payload bytes and decodes it.
///
/// A frame over `max` is never read: the stream is stopped so the peer
/// stops sending it, and [`FrameError::TooLarge`] is returned at once. A
/// frame within the limit costs memory only as its bytes arrive: a peer
/// that announces 16 MiB and sends nothing more has made the receiver
/// allocate nothing.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
    max: u32,
) -> Result<T, FrameReadError> {
    let payload = read_payload(recv, max, &mut Unbounded, |_| max).await?;
    Ok(decode_payload(&payload)?)
}

/// Memory a reader may take for payloads being assembled: awaited before
/// each chunk is taken off the stream, so that while it waits the unread
/// bytes stay in the peer's flow-control window, not in the reader's
/// memory.
pub trait PayloadBudget {
    /// Resolves once `bytes` more may be held (until the reader lets go
    /// of the frame).
    fn reserve(&mut self, bytes: usize) -> impl std::future::Future<Output = ()> + Send;
}

/// No budget beyond the frame limit: what the client uses for the one
/// answer it waits for on a stream.
struct Unbounded;

impl PayloadBudget for Unbounded {
    async fn reserve(&mut self, _bytes: usize) {}
}

/// Like [`read_frame`], holding the payload to `budget` as it arrives: the
/// node uses it to keep every request being assembled within one byte
/// budget shared by all connections.
pub async fn read_frame_within<T: DeserializeOwned, B: PayloadBudget>(
    recv: &mut RecvStream,
    max: u32,
    budget: &mut B,
) -> Result<T, FrameReadError> {
    read_frame_capped(recv, max, budget, |_| max).await
}

/// Like [`read_frame_within`], with a tighter limit chosen by the
/// payload's first byte (the message kind): `cap(first)` is checked as
/// soon as that byte arrives, and a frame announced past it is refused
/// ([`FrameError::TooLarge`], the stream stopped) without reading the
/// rest.
pub async fn read_frame_capped<T: DeserializeOwned, B: PayloadBudget>(
    recv: &mut RecvStream,
    max: u32,
    budget: &mut B,
    cap: impl Fn(u8) -> u32,
) -> Result<T, FrameReadError> {
    let payload = read_payload(recv, max, budget, cap).await?;
    Ok(decode_payload(&payload)?)
}

/// The header, its length checked against `max`, then the payload in
/// chunks of at most [`READ_CHUNK_BYTES`], each reserved first.
async fn read_payload<B: PayloadBudget>(
    recv: &mut RecvStream,
    max: u32,
    budget: &mut B,
    cap: impl Fn(u8) -> u32,
) -> Result<Vec<u8>, FrameReadError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut header)
        .await
        .map_err(FrameReadError::Header)?;
    let len = match payload_len(header, max) {
        Ok(len) => len,
        Err(e) => {
            // Already stopped or finished means nothing more will arrive.
            let _ = recv.stop(0u32.into());
            return Err(e.into());
        }
    };
    let mut payload = Vec::new();
    // Reserved at most one chunk ahead of what arrived; exactly `len` at
    // the end.
    let mut reserved = 0;
    while payload.len() < len {
        let want = (len - payload.len()).min(READ_CHUNK_BYTES);
        let need = payload.len() + want;
        if reserved < need {
            budget.reserve(need - reserved).await;
            reserved = need;
        }
        match recv.read_chunk(want, true).await {
            Ok(Some(chunk)) => {
                let first = payload.is_empty();
                payload.extend_from_slice(&chunk.bytes);
                if let Some(&kind) = payload.first().filter(|_| first) {
                    let max = cap(kind);
                    if len > max as usize {
                        let _ = recv.stop(0u32.into());
                        return Err(FrameError::TooLarge {
                            len: len as u64,
                            max,
                        }
                        .into());
                    }
                }
            }
            Ok(None) => {
                return Err(FrameReadError::Body(ReadExactError::FinishedEarly(
                    payload.len(),
                )))
            }
            Err(e) => return Err(FrameReadError::Body(ReadExactError::ReadError(e))),
        }
    }
    Ok(payload)
}

/// Encodes `msg` as one frame, writes it and finishes the stream.
pub async fn write_frame<T: Serialize>(send: &mut SendStream, msg: &T) -> Result<(), WriteError> {
    write_encoded(send, &encode_frame(msg)).await
}

/// Writes bytes already framed with [`encode_frame`] and finishes the
/// stream: for a frame encoded once and sent many times, or for tests that
/// send a deliberately broken frame.
pub async fn write_encoded(send: &mut SendStream, frame: &[u8]) -> Result<(), WriteError> {
    send.write_all(frame).await?;
    // Fails only when the stream is already finished or reset; either way
    // the peer has all it will get, and its answer (or silence) says how it
    // went.
    let _ = send.finish();
    Ok(())
}
