//! The data path of [`Client`]: get, put, delete and the status probe, and
//! what they return. Each builds a quorum machine for the key's targets and
//! lets the driver pump it over the transport.

use crate::client::Client;
use crate::clock::now_ms;
use crate::driver::drive;
use crate::error::ClientError;
use crate::quorum::get::GetMachine;
use crate::quorum::put::{PutMachine, PutRequest};
use crate::quorum::targets::{choose, spares, Target};
use crate::quorum::MachineError;
use crate::resolve::Sibling;
use quire_shared::limits::check_key;
use quire_shared::wire::{ErrorCode, Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{
    last_write_wins, ConflictPolicy, Context, Membership, NodeId, Object, StoreConfig, Value,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a get found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The live values (siblings): more than one means concurrent writes
    /// the application should reconcile. Tombstones are left out.
    pub siblings: Vec<Sibling>,
    /// Hand this back with the next write of the key so that it supersedes
    /// everything read here. Present even when the key is not found.
    pub context: Context,
}

impl GetResult {
    /// True when at least one live value exists.
    pub fn found(&self) -> bool {
        !self.siblings.is_empty()
    }

    /// The siblings' bytes.
    pub fn values(&self) -> Vec<&[u8]> {
        self.siblings.iter().map(|s| s.value.as_slice()).collect()
    }
}

/// What a put or delete did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// The live values the coordinator holds after this write: the value
    /// just written, plus any concurrent sibling it did not replace.
    pub siblings: Vec<Sibling>,
    /// The context covering exactly `siblings`. A follow-up write with it
    /// replaces all of them, so merge them first if there are several.
    pub context: Context,
    /// How many replicas acknowledged before the call returned.
    pub acknowledged: usize,
    /// Which nodes those were, coordinator first.
    pub stored_on: Vec<NodeId>,
}

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

/// The object's values that are not tombstones.
fn live_siblings(object: &quire_shared::Object) -> Vec<Sibling> {
    object
        .values()
        .filter_map(|v| {
            v.data.clone().map(|value| Sibling {
                value,
                timestamp_ms: v.timestamp_ms,
            })
        })
        .collect()
}

/// What a read of a store with `policy` returns of the synced `object`.
/// Replicas of a last-write-wins store may hold the newest value of each
/// coordinator that wrote concurrently (replication does not collapse:
/// see [`quire_shared::replica::replicate`]), so the reader keeps the
/// newest, tombstones included: a newer delete hides an older value. The
/// context is unchanged, so the next write replaces everything read.
fn read_as(policy: ConflictPolicy, object: Object) -> Object {
    match policy {
        ConflictPolicy::Siblings => object,
        ConflictPolicy::Lww => last_write_wins(&object),
    }
}

/// Where one request for a key goes, as this client sees the cluster now.
struct Plan {
    /// The membership the request was planned with (and reaches nodes by).
    doc: Arc<Membership>,
    /// The store's settings (`N`, `R`, `W`).
    config: StoreConfig,
    /// The key's first `N` healthy nodes (see [`choose`]).
    targets: Vec<Target>,
    /// The nodes that take a failed target's place, in order.
    spares: Vec<NodeId>,
}

impl Client {
    /// Plans a request for `key` in `store`: the same targets and spares
    /// for a get as for a put, so a read looks where a write under the
    /// same failures went. Refuses an unknown store or an invalid key.
    fn plan(&self, store: &str, key: &[u8]) -> Result<Plan, ClientError> {
        let doc = self.membership();
        let config = self.store_config(&doc, store)?;
        check_key(key).map_err(|(code, message)| ClientError::Invalid { code, message })?;
        let list = doc.preference_list(store, key, config.n as usize);
        let is_up = |n| self.inner.health.is_up(n);
        let targets = choose(&list, is_up);
        let spares = spares(&list, &targets, is_up);
        Ok(Plan {
            doc,
            config,
            targets,
            spares,
        })
    }

    /// Reads `key` from `store`: every sibling, and the context to write
    /// with. Succeeds when `R` of the key's first `N` healthy nodes answer:
    /// home replicas, or stand-ins answering from the hints they hold for
    /// the home replicas that are down (a node that fails mid-read is
    /// replaced by the next one, as in a put).
    pub async fn get(&self, store: &str, key: &[u8]) -> Result<GetResult, ClientError> {
        match self.get_once(store, key).await {
            // The targets came from a stale membership document (a change
            // has moved the key): refresh it and read again, once.
            Err(ClientError::StaleMembership { message }) => {
                tracing::debug!(%message, "refreshing membership after a NotOwner refusal");
                self.refresh_membership().await;
                self.get_once(store, key).await
            }
            other => other,
        }
    }

    /// One read with the membership document held now.
    async fn get_once(&self, store: &str, key: &[u8]) -> Result<GetResult, ClientError> {
        let plan = self.plan(store, key)?;
        let machine = GetMachine::new(
            Instant::now(),
            store,
            key,
            &plan.targets,
            &plan.spares,
            plan.config.r as usize,
            self.request_timeout(),
        )?;
        let repairs = self.inner.read_repairs.clone();
        let outcome = drive(machine, self.calls(plan.doc), move |m: &GetMachine| {
            repairs.fetch_add(m.repairs() as u64, Ordering::Relaxed);
        })
        .await?;
        let object = read_as(plan.config.policy, outcome.object);
        Ok(GetResult {
            siblings: live_siblings(&object),
            context: Context::for_key(store, key, object.join()),
        })
    }

    /// Writes `value` under `key`. `context` is what the writer read
    /// (`GetResult::context`, or `Context::empty()` for a blind write):
    /// values it saw are replaced, values it did not see stay as siblings.
    /// Succeeds when `W` replicas have stored the write.
    pub async fn put(
        &self,
        store: &str,
        key: &[u8],
        value: Vec<u8>,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        self.write(store, key, Value::bytes(value, now_ms()), context)
            .await
    }

    /// Deletes `key`: writes a tombstone with `context`. Values the context
    /// has not seen survive (a concurrent add wins over a delete).
    pub async fn delete(
        &self,
        store: &str,
        key: &[u8],
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        self.write(store, key, Value::tombstone(now_ms()), context)
            .await
    }

    /// A put, started over once with a refreshed membership document when a
    /// node says it is not a home replica of the key (the targets came from
    /// a stale document).
    async fn write(
        &self,
        store: &str,
        key: &[u8],
        value: Value,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        context.check_key(store, key)?;
        let mut refreshed = false;
        loop {
            let plan = self.plan(store, key)?;
            let machine = PutMachine::new(
                Instant::now(),
                PutRequest {
                    store: store.to_string(),
                    key: key.to_vec(),
                    value: value.clone(),
                    context: context.clock().clone(),
                },
                &plan.targets,
                &plan.spares,
                plan.config.w as usize,
                self.request_timeout(),
                Duration::from_millis(self.inner.config.timeouts.attempt_ms),
            )?;
            let doc = plan.doc.clone();
            let outcome = match drive(machine, self.calls(plan.doc), |_: &PutMachine| {}).await {
                Err(MachineError::Rejected(ErrorCode::NotOwner, message)) if !refreshed => {
                    tracing::debug!(%message, "refreshing membership after a NotOwner refusal");
                    self.refresh_membership().await;
                    refreshed = true;
                    continue;
                }
                other => other?,
            };
            self.copy_to_incoming(&doc, store, key, &outcome.object);
            return Ok(PutResult {
                siblings: live_siblings(&outcome.object),
                context: Context::for_key(store, key, outcome.object.join()),
                acknowledged: outcome.stored_on.len(),
                stored_on: outcome.stored_on,
            });
        }
    }

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
    use super::*;
    use quire_shared::ActorId;

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

    #[test]
    fn an_lww_read_keeps_the_newest_value_even_a_tombstone() {
        let mut object = Object::new();
        object.event(ActorId(1), Value::bytes(b"old".to_vec(), 100));
        object.event(ActorId(2), Value::tombstone(200));
        let read = read_as(ConflictPolicy::Lww, object.clone());
        assert!(live_siblings(&read).is_empty(), "the newer delete wins");
        assert_eq!(read.join(), object.join(), "the context covers both");
        let read = read_as(ConflictPolicy::Siblings, object.clone());
        assert_eq!(
            live_siblings(&read).len(),
            1,
            "siblings: tombstones left out"
        );
    }
}
