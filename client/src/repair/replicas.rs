//! How repair reaches replicas: one request, one answer.
//!
//! The exchange and the scans are written against [`Replicas`] rather
//! than the SDK's transport, so the same code that repairs a cluster runs
//! inside the deterministic simulation (`crate::quorum::sim`), whose
//! network loses, delays and duplicates its messages. The SDK's
//! implementation is [`Client`]'s: QUIC with the request timeout, every
//! answer fed to the failure detector.

use super::RepairReport;
use crate::client::Client;
use quire_shared::wire::{encode_frame, Reply, Request, Response};
use quire_shared::Member;

/// Something that can ask a replica one repair request.
pub(crate) trait Replicas {
    /// Sends `request` to `node` and waits for its answer: a reply that
    /// passed validation, or why there is none (no answer, a refusal, a
    /// malformed reply). Bytes sent and received are counted in `report`.
    async fn call(
        &self,
        node: &Member,
        request: &Request,
        report: &mut RepairReport,
    ) -> Result<Reply, String>;
}

impl Replicas for Client {
    async fn call(
        &self,
        node: &Member,
        request: &Request,
        report: &mut RepairReport,
    ) -> Result<Reply, String> {
        self.repair_call(node, request, report).await
    }
}

impl Client {
    /// One request of an exchange, its bytes (request and answer frames)
    /// counted in `report`.
    pub(crate) async fn repair_call(
        &self,
        node: &Member,
        request: &Request,
        report: &mut RepairReport,
    ) -> Result<Reply, String> {
        let timeout = self.request_timeout();
        let answer = self.transport().call(&node.addr, request, timeout).await;
        self.observe(node.id, answer.as_ref());
        report.bytes += encode_frame(request).len() as u64;
        match answer {
            Ok(response) => {
                report.bytes += encode_frame(&response).len() as u64;
                match response {
                    Response { result: Ok(r), .. } => {
                        r.validated().map_err(|e| format!("malformed reply: {e}"))
                    }
                    Response { result: Err(e), .. } => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
