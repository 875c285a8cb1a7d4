//! One request stream: its frame read within the deadline and byte
//! budgets, answered, and whether it earned a strike.

use super::budget::RequestBytes;
use super::{Shared, DEADLINE_STREAM_CODE};
use crate::handler::NodeState;
use crate::metrics::Outcome;
use quire_net::frame::{read_frame_capped, write_frame, FrameReadError};
use quire_net::identity::{IdentityError, Peer};
use quire_shared::wire::{request_payload_max, ErrorCode, FrameError, Request, Response};
use std::time::Duration;

/// Reads one request within the deadline and `bytes`' budgets, answers it
/// and finishes the stream. `bytes` is held until the answer is sent: the
/// request's bytes stay counted while it is handled, since the decoded
/// request holds them too. True if the frame was announced past its limit
/// or garbled (a strike against the connection, see `strikes`).
pub(super) async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut bytes: RequestBytes,
    shared: &Shared,
    (peer, principal): (std::net::SocketAddr, &Result<Peer, IdentityError>),
) -> bool {
    let state = &shared.state;
    let max = state.limits.frame_bytes_max;
    let read = tokio::time::timeout(
        shared.read_timeout,
        read_frame_capped::<Request, _>(&mut recv, max, &mut bytes, |kind| {
            request_payload_max(kind, max)
        }),
    )
    .await;
    let started = std::time::Instant::now();
    let struck = matches!(read, Ok(Err(FrameReadError::Frame(_))));
    let (kind, response) = match read {
        Ok(read) => answer(state, read, (peer, principal)).await,
        Err(_) => {
            // Tell the sender to stop: nothing more of this frame is read.
            let _ = recv.stop(DEADLINE_STREAM_CODE.into());
            let refusal = state.refusal(
                ErrorCode::Unavailable,
                format!(
                    "request frame not received whole within {} ms; cut off",
                    shared.read_timeout.as_millis()
                ),
            );
            (UNREADABLE, refusal)
        }
    };
    let outcome = match &response.result {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Refused(e.code),
    };
    state.metrics.request(kind, outcome, started);
    // A peer that never reads its answer must not hold the stream either.
    match tokio::time::timeout(shared.read_timeout, write_frame(&mut send, &response)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "client went away before the response"),
        Err(_) => {
            let _ = send.reset(DEADLINE_STREAM_CODE.into());
            tracing::debug!("client did not read its response in time; stream reset");
        }
    }
    drop(bytes);
    if struck {
        // The strike may close the connection: let the peer have its typed
        // answer first (acknowledged, or a moment for it).
        let _ = tokio::time::timeout(ANSWER_DELIVERED_WAIT, send.stopped()).await;
    }
    struck
}

/// How long a struck request's answer is given to be acknowledged
/// before the strike takes effect.
const ANSWER_DELIVERED_WAIT: Duration = Duration::from_millis(200);

/// The request kind metrics count a frame under when it could not be
/// read as a request (garbled, too large, cut short, too slow).
const UNREADABLE: &str = "unreadable";

/// The answer to a request frame as read: handled, or a typed refusal;
/// with the request's kind.
async fn answer(
    state: &NodeState,
    read: Result<Request, FrameReadError>,
    (peer, principal): (std::net::SocketAddr, &Result<Peer, IdentityError>),
) -> (&'static str, Response) {
    use tracing::Instrument as _;
    let request = match read {
        Ok(request) => request,
        Err(e) => return (UNREADABLE, unreadable(state, e)),
    };
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
