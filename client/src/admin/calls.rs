//! The two admin requests to a single node that forming and changing the
//! cluster share: read a node's document, offer one to every member.

use crate::transport::Transport;
use quire_shared::wire::{ErrorCode, Reply, Request, Response};
use quire_shared::{Membership, MembershipVersion};
use std::time::Duration;

/// How long one admin request to one node may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(3_000);

/// The document the node at `addr` holds, if it answers with one.
pub(super) async fn stored_document(transport: &Transport, addr: &str) -> Option<Membership> {
    match transport
        .call(addr, &Request::GetMembership, CALL_TIMEOUT)
        .await
    {
        Ok(Response {
            result: Ok(Reply::Membership(doc)),
            ..
        }) => doc,
        _ => None,
    }
}

/// Why one node did not take an offered document.
#[derive(Debug)]
pub(super) enum Refusal {
    /// It holds another document than the change's base.
    Conflict(String),
    /// This client's identity may not change the cluster.
    Forbidden(String),
    /// Anything else: unreachable, invalid, another cluster.
    Other(String),
}

/// Offers `doc` to every member (as a change built on `base`, or as gossip
/// without); returns each member's address and whether it now holds it.
pub(super) async fn push_membership(
    transport: &Transport,
    doc: &Membership,
    base: Option<MembershipVersion>,
) -> Vec<(String, Result<(), Refusal>)> {
    let mut out = Vec::new();
    for m in &doc.members {
        let request = Request::PutMembership {
            membership: Box::new(doc.clone()),
            base,
        };
        let result = match transport.call(&m.addr, &request, CALL_TIMEOUT).await {
            Ok(Response {
                result: Ok(Reply::MembershipEpoch(epoch)),
                ..
            }) if epoch >= doc.epoch => Ok(()),
            Ok(Response { result: Err(e), .. }) if e.code == ErrorCode::EpochConflict => {
                Err(Refusal::Conflict(e.message))
            }
            Ok(Response { result: Err(e), .. }) if e.code == ErrorCode::Forbidden => {
                Err(Refusal::Forbidden(e.message))
            }
            Ok(Response { result: Err(e), .. }) => Err(Refusal::Other(e.to_string())),
            Ok(Response {
                result: Ok(Reply::MembershipEpoch(epoch)),
                ..
            }) => Err(Refusal::Other(format!(
                "the node kept its document of epoch {epoch}"
            ))),
            Ok(Response { result: Ok(_), .. }) => Err(Refusal::Other(
                "answered with something other than the epoch it holds".into(),
            )),
            Err(e) => Err(Refusal::Other(e.to_string())),
        };
        out.push((m.addr.clone(), result));
    }
    out
}
