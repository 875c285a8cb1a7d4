//! [`Client::status`]: which members answer, and at which epoch; what
//! `quire status` shows.

use crate::client::Client;
use quire_shared::wire::{Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::NodeId;
use std::time::Duration;

/// One node as seen by [`Client::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node id.
    pub id: NodeId,
    /// Address.
    pub addr: String,
    /// Whether it answered a `Hello` in time.
    pub up: bool,
    /// The node's membership epoch when it answered.
    pub epoch: Option<u64>,
}

impl Client {
    /// Asks every member for a `Hello`; a node that does not answer within
    /// the connect timeout is reported down.
    pub async fn status(&self) -> Vec<NodeStatus> {
        let doc = self.membership();
        let timeout = Duration::from_millis(self.inner.config.timeouts.connect_ms.max(500));
        let hello = Request::Hello {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: Some(doc.cluster_id),
        };
        let calls = doc.members.iter().map(|m| {
            let t = self.inner.transport.clone();
            let hello = hello.clone();
            let m = m.clone();
            async move {
                let answer = t.call(&m.addr, &hello, timeout).await;
                let (up, epoch) = match answer {
                    Ok(Response {
                        epoch,
                        result: Ok(Reply::Hello { node_id, .. }),
                    }) if node_id == m.id => (true, Some(epoch)),
                    _ => (false, None),
                };
                NodeStatus {
                    id: m.id,
                    addr: m.addr,
                    up,
                    epoch,
                }
            }
        });
        let mut out = Vec::new();
        for call in calls.map(tokio::spawn).collect::<Vec<_>>() {
            if let Ok(s) = call.await {
                out.push(s);
            }
        }
        out
    }
}
