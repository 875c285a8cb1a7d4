//! [`Client::status`]: which members answer, at which epoch, where they
//! serve metrics and how far their clocks are from ours; what `quire
//! status` shows.

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
    /// Where it serves Prometheus metrics, e.g.
    /// `http://127.0.0.1:7001/metrics`, when it answered and serves them.
    pub metrics: Option<String>,
    /// How far the node's clock is ahead of this client's (negative:
    /// behind), in ms, estimated from its answer (off by at most half the
    /// round trip); `None` when it did not answer.
    pub clock_offset_ms: Option<i64>,
}

/// The URL to scrape a node's metrics at: its metrics address, with the
/// member address's host when the node listens on every interface.
fn metrics_url(metrics: std::net::SocketAddr, member_addr: &str) -> String {
    let host = if metrics.ip().is_unspecified() {
        member_addr
            .rsplit_once(':')
            .map_or(member_addr, |(host, _)| host)
            .to_string()
    } else {
        match metrics.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    format!("http://{host}:{}/metrics", metrics.port())
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
                let sent_ms = crate::clock::now_ms();
                let answer = t.call(&m.addr, &hello, timeout).await;
                let heard_ms = crate::clock::now_ms();
                let (up, epoch, metrics, clock_offset_ms) = match answer {
                    Ok(Response {
                        epoch,
                        result:
                            Ok(Reply::Hello {
                                node_id,
                                metrics,
                                clock_ms,
                                ..
                            }),
                    }) if node_id == m.id => (
                        true,
                        Some(epoch),
                        metrics.map(|at| metrics_url(at, &m.addr)),
                        // The node read its clock between send and answer:
                        // take the middle.
                        Some(clock_ms as i64 - (sent_ms / 2 + heard_ms / 2) as i64),
                    ),
                    _ => (false, None, None, None),
                };
                NodeStatus {
                    id: m.id,
                    addr: m.addr,
                    up,
                    epoch,
                    metrics,
                    clock_offset_ms,
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

#[cfg(test)]
mod tests {
    use super::metrics_url;

    #[test]
    fn metrics_urls_name_a_reachable_host() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            metrics_url(at("127.0.0.1:7001"), "127.0.0.1:7001"),
            "http://127.0.0.1:7001/metrics"
        );
        assert_eq!(
            metrics_url(at("0.0.0.0:9100"), "db-1.example:7000"),
            "http://db-1.example:9100/metrics"
        );
        assert_eq!(
            metrics_url(at("[::1]:9100"), "[::1]:7000"),
            "http://[::1]:9100/metrics"
        );
    }
}
