//! How repair and transfers reach replicas: one request, one answer.
//!
//! The exchange, the scans and a transfer's pages are written against
//! [`Replicas`] rather than the SDK's transport, so the same code that
//! repairs or moves data in a cluster runs inside the deterministic
//! simulation (`crate::quorum::sim`), whose network loses, delays and
//! duplicates its messages. The SDK's implementation is [`Client`]'s: QUIC
//! with the request timeout, every answer fed to the failure detector.

use super::RepairReport;
use crate::client::Client;
use quire_shared::wire::{encode_frame, ErrorCode, Reply, Request, Response};
use quire_shared::{Member, NodeId};

/// Why a replica gave no usable reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NoReply {
    /// The node's refusal code, when it refused; `None` when it did not
    /// answer or answered with a malformed reply.
    pub(crate) code: Option<ErrorCode>,
    /// What happened, for reports and logs.
    pub(crate) message: String,
}

impl std::fmt::Display for NoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Something that can ask a replica one request.
pub(crate) trait Replicas {
    /// Sends `request` to `node` and waits for its answer: a reply that
    /// passed validation, or why there is none.
    async fn ask(&self, node: &Member, request: &Request) -> Result<Reply, NoReply>;

    /// [`Replicas::ask`] for repair: bytes sent and received counted in
    /// `report` where the implementation can count them.
    async fn call(
        &self,
        node: &Member,
        request: &Request,
        report: &mut RepairReport,
    ) -> Result<Reply, String> {
        let _ = report;
        self.ask(node, request).await.map_err(|e| e.message)
    }

    /// Whether `node` is believed up: a transfer scans healthy sources
    /// first.
    fn believed_up(&self, node: NodeId) -> bool {
        let _ = node;
        true
    }

    /// Wall-clock milliseconds, stamped on transfer progress records
    /// (read by other clients for rates).
    fn wall_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

impl Replicas for Client {
    async fn ask(&self, node: &Member, request: &Request) -> Result<Reply, NoReply> {
        self.call_counted(node, request, None).await
    }

    async fn call(
        &self,
        node: &Member,
        request: &Request,
        report: &mut RepairReport,
    ) -> Result<Reply, String> {
        self.repair_call(node, request, report).await
    }

    fn believed_up(&self, node: NodeId) -> bool {
        self.inner.health.is_up(node)
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
        self.call_counted(node, request, Some(report))
            .await
            .map_err(|e| e.message)
    }

    /// One request with the request timeout, observed by the failure
    /// detector; bytes counted in `report` if given.
    async fn call_counted(
        &self,
        node: &Member,
        request: &Request,
        report: Option<&mut RepairReport>,
    ) -> Result<Reply, NoReply> {
        let timeout = self.request_timeout();
        let answer = self.transport().call(&node.addr, request, timeout).await;
        self.observe(node.id, answer.as_ref());
        if let Some(report) = report {
            report.bytes += encode_frame(request).len() as u64;
            if let Ok(response) = answer.as_ref() {
                report.bytes += encode_frame(response).len() as u64;
            }
        }
        let failed = |code, message| Err(NoReply { code, message });
        match answer {
            Ok(Response { result: Ok(r), .. }) => r
                .validated()
                .or_else(|e| failed(None, format!("malformed reply: {e}"))),
            Ok(Response { result: Err(e), .. }) => failed(Some(e.code), e.to_string()),
            Err(e) => failed(None, e.to_string()),
        }
    }
}
