//! One request stream: its frames read within the deadline and byte
//! budgets, answered in order, and whether it earned a strike.
//!
//! A stream carries one request frame, or several when the client batches
//! requests to this node (protocol 9): under load a client queues what it
//! has for a node and sends it on one stream, which costs both ends one
//! stream and a few packets instead of one of each per request. Each
//! frame is handled while the next is read (at most
//! [`FRAMES_IN_FLIGHT`] at once) and answered as soon as it and every
//! frame before it are: answers keep the order of the requests, so the
//! client needs no ids to match them.

use super::budget::RequestBytes;
use super::{Shared, DEADLINE_STREAM_CODE};
use crate::handler::NodeState;
use crate::metrics::Outcome;
use futures_util::stream::{FuturesOrdered, StreamExt};
use quinn::{ReadExactError, RecvStream, SendStream};
use quire_net::frame::{read_frame_capped, FrameReadError};
use quire_net::identity::{IdentityError, Peer};
use quire_shared::wire::{
    encode_frame, request_payload_max, ErrorCode, FrameError, Request, Response,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Requests of one stream being handled at once: past it the node reads no
/// further frame until an answer is written, and the client's further
/// frames wait in flow control.
pub(super) const FRAMES_IN_FLIGHT: usize = 64;

/// What reading the next frame of a stream gave.
enum Next {
    /// A frame, read or refused as unreadable, with the bytes it holds.
    Frame(Result<Request, FrameReadError>, RequestBytes),
    /// The client finished its side before another frame began.
    End,
    /// The frame did not arrive within the deadline.
    CutOff,
}

/// Reads the next frame of `recv` within `shared`'s deadline, its bytes
/// counted in `bytes`; hands `recv` back for the next.
async fn next_frame(
    mut recv: RecvStream,
    mut bytes: RequestBytes,
    shared: &Shared,
) -> (RecvStream, Next) {
    let max = shared.state.limits.frame_bytes_max;
    let read = tokio::time::timeout(
        shared.read_timeout,
        read_frame_capped::<Request, _>(&mut recv, max, &mut bytes, |kind| {
            request_payload_max(kind, max)
        }),
    )
    .await;
    let next = match read {
        Ok(Err(FrameReadError::Header(ReadExactError::FinishedEarly(0)))) => Next::End,
        Ok(read) => Next::Frame(read, bytes),
        Err(_) => Next::CutOff,
    };
    (recv, next)
}

/// Serves the request frames of one stream (see the module doc) and
/// finishes it once the client has finished its side and every request
/// read is handled (and answered, while the client still takes answers). Each frame's bytes are counted from `heads` (its connection's
/// pool) and the node's pool until its answer is written: the decoded
/// request holds them too. True if a frame was announced past its limit or
/// garbled (a strike against the connection, see `strikes`); nothing more
/// is read from the stream then.
pub(super) async fn serve_stream(
    mut send: SendStream,
    recv: RecvStream,
    heads: Arc<Semaphore>,
    shared: &Shared,
    (peer, principal): (std::net::SocketAddr, &Result<Peer, IdentityError>),
) -> bool {
    let state = &shared.state;
    let budget = || RequestBytes::new(heads.clone(), shared.request_bytes.clone());
    let mut reading = Some(Box::pin(next_frame(recv, budget(), shared)));
    let mut answers = FuturesOrdered::new();
    let mut frames = 0usize;
    let mut struck = false;
    // Set once the client stops taking answers: requests already read
    // still run to their end (a write may commit), unanswered.
    let mut gone = false;
    loop {
        tokio::select! {
            biased;
            Some((kind, response, started, bytes)) = answers.next(), if !answers.is_empty() => {
                let response: Response = response;
                let outcome = match &response.result {
                    Ok(_) => Outcome::Ok,
                    Err(e) => Outcome::Refused(e.code),
                };
                state.metrics.request(kind, outcome, started);
                if !gone && !write_answer(&mut send, &response, shared).await {
                    gone = true;
                    reading = None;
                }
                drop::<RequestBytes>(bytes);
            }
            (recv, next) = async { reading.as_mut().expect("polled only while reading").await },
                if reading.is_some() && answers.len() < FRAMES_IN_FLIGHT =>
            {
                reading = None;
                let read = match next {
                    Next::End => {
                        if frames == 0 {
                            // Finished before a whole header: as unusable as a
                            // garbled frame, and the client may still read why.
                            let e = FrameReadError::Header(ReadExactError::FinishedEarly(0));
                            answers.push_back(answer_unreadable(state, e, budget()));
                        }
                        continue;
                    }
                    Next::CutOff => {
                        let mut recv = recv;
                        // Tell the sender to stop: nothing more is read.
                        let _ = recv.stop(DEADLINE_STREAM_CODE.into());
                        if frames == 0 {
                            answers.push_back(cut_off(state, shared.read_timeout, budget()));
                        }
                        continue;
                    }
                    Next::Frame(read, bytes) => (read, bytes),
                };
                frames += 1;
                let (read, bytes) = read;
                match read {
                    Ok(request) => {
                        answers.push_back(Box::pin(async move {
                            let started = Instant::now();
                            let (kind, response) = answer(state, request, (peer, principal)).await;
                            (kind, response, started, bytes)
                        }));
                        reading = Some(Box::pin(next_frame(recv, budget(), shared)));
                    }
                    Err(e) => {
                        // Garbled or too large: a strike. A frame cut short
                        // is none (honest clients go away mid-request).
                        struck |= matches!(e, FrameReadError::Frame(_));
                        answers.push_back(answer_unreadable(state, e, bytes));
                    }
                }
            }
            else => break,
        }
    }
    let _ = send.finish();
    if struck {
        // The strike may close the connection: let the peer have its typed
        // answer first (acknowledged, or a moment for it).
        let _ = tokio::time::timeout(ANSWER_DELIVERED_WAIT, send.stopped()).await;
    }
    struck
}

/// An answer to go back in order: the request's kind, the response, when
/// its handling began, and the bytes its frame holds until it is written.
type Answer<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = (&'static str, Response, Instant, RequestBytes)>
            + Send
            + 'a,
    >,
>;

/// The answer to a frame that did not read as a request.
fn answer_unreadable<'a>(
    state: &'a NodeState,
    e: FrameReadError,
    bytes: RequestBytes,
) -> Answer<'a> {
    let response = unreadable(state, e);
    Box::pin(async move { (UNREADABLE, response, Instant::now(), bytes) })
}

/// The answer to a first frame not received within the deadline.
fn cut_off<'a>(state: &'a NodeState, deadline: Duration, bytes: RequestBytes) -> Answer<'a> {
    let response = state.refusal(
        ErrorCode::Unavailable,
        format!(
            "request frame not received whole within {} ms; cut off",
            deadline.as_millis()
        ),
    );
    Box::pin(async move { (UNREADABLE, response, Instant::now(), bytes) })
}

/// Writes one answer, without finishing the stream; false if the client
/// went away or did not read it within the deadline (the stream is then
/// reset: a peer that never reads its answers must not hold it).
async fn write_answer(send: &mut SendStream, response: &Response, shared: &Shared) -> bool {
    let frame = encode_frame(response);
    match tokio::time::timeout(shared.read_timeout, send.write_all(&frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client went away before the response");
            false
        }
        Err(_) => {
            let _ = send.reset(DEADLINE_STREAM_CODE.into());
            tracing::debug!("client did not read its response in time; stream reset");
            false
        }
    }
}

/// How long a struck request's answer is given to be acknowledged
/// before the strike takes effect.
const ANSWER_DELIVERED_WAIT: Duration = Duration::from_millis(200);

/// The request kind metrics count a frame under when it could not be
/// read as a request (garbled, too large, cut short, too slow).
const UNREADABLE: &str = "unreadable";

/// The answer to a request, handled or refused, with its kind.
async fn answer(
    state: &NodeState,
    request: Request,
    (peer, principal): (std::net::SocketAddr, &Result<Peer, IdentityError>),
) -> (&'static str, Response) {
    use tracing::Instrument as _;
    let kind = request.kind();
    // At debug level: a span per request costs too much on the data path
    // to be on by default; `RUST_LOG=quire_node=debug` turns it on, and
    // every event of the request then carries these fields.
    let span = tracing::debug_span!(
        "request",
        kind,
        %peer,
        node = %state.identity.node_id,
        principal = tracing::field::Empty,
        store = tracing::field::Empty,
        partition = tracing::field::Empty,
    );
    if !span.is_disabled() {
        if let Ok(p) = principal {
            span.record("principal", tracing::field::display(&p.principal));
        }
        use quire_shared::access::Scope;
        if let Scope::Read(store) | Scope::Write(store) = request.scope() {
            span.record("store", store);
        }
        if let Some(partition) = partition_of(state, &request) {
            span.record("partition", partition);
        }
    }
    let response = async {
        tracing::trace!("request");
        match principal {
            Ok(peer) => state.handle(request, peer).await,
            Err(e) => state.refusal(ErrorCode::Forbidden, e.to_string()),
        }
    }
    .instrument(span)
    .await;
    (kind, response)
}

/// The partition a request is about, for its span: named in it, or its
/// key's under the node's membership.
fn partition_of(state: &NodeState, request: &Request) -> Option<u32> {
    match request {
        Request::Get { store, key, .. }
        | Request::Put { store, key, .. }
        | Request::Replicate { store, key, .. }
        | Request::DeleteIfEqual { store, key, .. } => {
            Some(state.membership()?.partition_of(store, key))
        }
        Request::MerkleRoot { partition, .. }
        | Request::MerkleSegments { partition, .. }
        | Request::ScanSegment { partition, .. }
        | Request::TransferState { partition, .. }
        | Request::TransferPage { partition, .. }
        | Request::DropPartition { partition, .. } => Some(*partition),
        _ => None,
    }
}

/// The refusal of a frame that did not read as a request.
fn unreadable(state: &NodeState, e: FrameReadError) -> Response {
    match e {
        // read_frame has already stopped the stream: the body is not read.
        FrameReadError::Frame(FrameError::TooLarge { len, max }) => state.refusal(
            ErrorCode::FrameTooLarge,
            format!("request frame of {len} bytes exceeds the node's limit of {max}"),
        ),
        FrameReadError::Frame(FrameError::Malformed(message)) => {
            state.refusal(ErrorCode::Malformed, message)
        }
        // A request cut short is as unusable as a garbled one; the client
        // may still be there to read why.
        e @ (FrameReadError::Header(_) | FrameReadError::Body(_)) => {
            state.refusal(ErrorCode::Malformed, e.to_string())
        }
    }
}
