//! The `Client`: the application's handle on a Quire cluster.
//!
//! It pulls membership from a seed, keeps the newest document it sees, and
//! runs the quorum machines for get, put and delete over one reused QUIC
//! connection per node.

use crate::config::ClientConfig;
use crate::driver::{drive, Calls, NodeObserver};
use crate::error::ClientError;
use crate::health::Health;
use crate::quorum::get::GetMachine;
use crate::quorum::put::{PutMachine, PutRequest};
use crate::quorum::targets::{choose, spares, Target};
use crate::resolve::Sibling;
use crate::store::Store;
use crate::transport::Transport;
use crate::transport::TransportError;
use quire_shared::limits::check_key;
use quire_shared::wire::{Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{Context, Membership, NodeId, PreferenceList, StoreConfig, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Counters of one client, for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Replicas sent a newer copy after a get found them missing or behind.
    pub read_repairs: u64,
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
}

struct Inner {
    config: ClientConfig,
    transport: Transport,
    membership: RwLock<Arc<Membership>>,
    read_repairs: Arc<AtomicU64>,
    health: Health,
}

/// A handle on a cluster; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
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

/// Probes down nodes with backoff until the client is dropped.
async fn probe_loop(inner: std::sync::Weak<Inner>) {
    let hello = Request::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: None,
    };
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let due = inner.health.due_probes(Instant::now());
        if due.is_empty() {
            continue;
        }
        let doc = inner
            .membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let timeout = Duration::from_millis(inner.config.timeouts.attempt_ms);
        for node in due {
            let Some(addr) = doc.member(node).map(|m| m.addr.clone()) else {
                inner.health.mark_up(node); // gone from the cluster
                continue;
            };
            let transport = inner.transport.clone();
            let weak = Arc::downgrade(&inner);
            let hello = hello.clone();
            tokio::spawn(async move {
                let answered = transport.call(&addr, &hello, timeout).await.is_ok();
                if let (true, Some(inner)) = (answered, weak.upgrade()) {
                    tracing::debug!(node = %node, "node back up");
                    inner.health.mark_up(node);
                }
            });
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Client {
    /// Sets up TLS and pulls membership from the first seed that answers.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let transport = Transport::new(&config.tls, &config.timeouts)?;
        let timeout = Duration::from_millis(config.timeouts.request_ms);
        let mut tried = Vec::new();
        let mut newest: Option<Membership> = None;
        for seed in &config.seeds {
            match transport.call(seed, &Request::GetMembership, timeout).await {
                Ok(Response {
                    result: Ok(Reply::Membership(Some(doc))),
                    ..
                }) => {
                    if newest.as_ref().is_none_or(|n| n.epoch < doc.epoch) {
                        newest = Some(doc);
                    }
                    // One answer is enough to start; newer epochs arrive
                    // with every response.
                    break;
                }
                Ok(Response {
                    result: Ok(Reply::Membership(None)),
                    ..
                }) => tried.push(format!("{seed}: no membership document yet")),
                Ok(other) => tried.push(format!("{seed}: unexpected answer {:?}", other.result)),
                Err(e) => tried.push(e.to_string()),
            }
        }
        let doc = newest.ok_or(ClientError::NoSeedReachable(tried))?;
        let client = Self {
            inner: Arc::new(Inner {
                config,
                transport,
                membership: RwLock::new(Arc::new(doc)),
                read_repairs: Arc::default(),
                health: Health::default(),
            }),
        };
        tokio::spawn(probe_loop(Arc::downgrade(&client.inner)));
        Ok(client)
    }

    /// Nodes this client currently believes down.
    pub fn down_nodes(&self) -> Vec<NodeId> {
        self.inner.health.down_nodes()
    }

    /// The replicas a request for `key` goes to now: the sloppy quorum's
    /// first `N` healthy nodes of the preference list.
    pub fn targets(&self, store: &str, key: &[u8]) -> Result<Vec<Target>, ClientError> {
        let list = self.locate(store, key)?;
        Ok(choose(&list, |n| self.inner.health.is_up(n)))
    }

    /// Feeds one call's result to failure detection and membership.
    pub(crate) fn observe(&self, node: NodeId, result: Result<&Response, &TransportError>) {
        (self.observer())(node, result)
    }

    fn calls(&self, membership: Arc<Membership>) -> Calls {
        Calls {
            transport: self.inner.transport.clone(),
            membership,
            observer: self.observer(),
            call_timeout: Duration::from_millis(self.inner.config.timeouts.attempt_ms),
        }
    }

    /// The newest membership document this client knows.
    pub fn membership(&self) -> Arc<Membership> {
        self.inner
            .membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.timeouts.request_ms)
    }

    fn store_config(&self, doc: &Membership, store: &str) -> Result<StoreConfig, ClientError> {
        doc.store(store)
            .cloned()
            .ok_or_else(|| ClientError::UnknownStore {
                store: store.to_string(),
                known: doc
                    .stores
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The partition and preference list of `key` in `store`, home replicas
    /// first.
    pub fn locate(&self, store: &str, key: &[u8]) -> Result<PreferenceList, ClientError> {
        let doc = self.membership();
        let config = self.store_config(&doc, store)?;
        Ok(doc.preference_list(store, key, config.n as usize))
    }

    /// Reacts to each call: a transport failure marks the node down; an
    /// answer marks it up, and its epoch may fetch a newer document from it
    /// or push ours to it. Membership spreads through clients.
    fn observer(&self) -> NodeObserver {
        let client = self.clone();
        Arc::new(
            move |node: NodeId, result: Result<&Response, &TransportError>| {
                let response = match result {
                    Ok(response) => response,
                    Err(e) => {
                        tracing::debug!(node = %node, error = %e, "node down");
                        client.inner.health.mark_down(node, Instant::now());
                        return;
                    }
                };
                client.inner.health.mark_up(node);
                let mine = client.membership();
                if response.epoch == mine.epoch {
                    return;
                }
                let Some(addr) = mine.member(node).map(|m| m.addr.clone()) else {
                    return;
                };
                let client = client.clone();
                let behind = response.epoch < mine.epoch;
                tokio::spawn(async move { client.exchange_membership(&addr, behind).await });
            },
        )
    }

    async fn exchange_membership(&self, addr: &str, push: bool) {
        let t = &self.inner.transport;
        let timeout = self.request_timeout();
        if push {
            let doc = (*self.membership()).clone();
            let _ = t
                .call(addr, &Request::PutMembership { membership: doc }, timeout)
                .await;
            return;
        }
        if let Ok(Response {
            result: Ok(Reply::Membership(Some(doc))),
            ..
        }) = t.call(addr, &Request::GetMembership, timeout).await
        {
            self.adopt(doc);
        }
    }

    /// Keeps `doc` if it is valid, of our cluster and newer than ours.
    fn adopt(&self, doc: Membership) {
        let mut current = self
            .inner
            .membership
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if doc.cluster_id == current.cluster_id
            && doc.epoch > current.epoch
            && doc.validate().is_ok()
        {
            tracing::info!(epoch = doc.epoch, "adopted newer membership");
            *current = Arc::new(doc);
        }
    }

    /// Reads `key` from `store`: every sibling, and the context to write
    /// with. Succeeds when `R` home replicas answer.
    pub async fn get(&self, store: &str, key: &[u8]) -> Result<GetResult, ClientError> {
        let doc = self.membership();
        let config = self.store_config(&doc, store)?;
        check_key(key).map_err(|(code, message)| ClientError::Invalid { code, message })?;
        let list = doc.preference_list(store, key, config.n as usize);
        let targets = choose(&list, |n| self.inner.health.is_up(n));
        let machine = GetMachine::new(
            Instant::now(),
            store,
            key,
            &targets,
            config.r as usize,
            self.request_timeout(),
        )?;
        let repairs = self.inner.read_repairs.clone();
        let outcome = drive(machine, self.calls(doc), move |m: &GetMachine| {
            repairs.fetch_add(m.repairs() as u64, Ordering::Relaxed);
        })
        .await?;
        Ok(GetResult {
            siblings: live_siblings(&outcome.object),
            context: Context(outcome.object.join()),
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

    async fn write(
        &self,
        store: &str,
        key: &[u8],
        value: Value,
        context: &Context,
    ) -> Result<PutResult, ClientError> {
        let doc = self.membership();
        let config = self.store_config(&doc, store)?;
        check_key(key).map_err(|(code, message)| ClientError::Invalid { code, message })?;
        let list = doc.preference_list(store, key, config.n as usize);
        let is_up = |n| self.inner.health.is_up(n);
        let targets = choose(&list, is_up);
        let spares = spares(&list, &targets, is_up);
        let machine = PutMachine::new(
            Instant::now(),
            PutRequest {
                store: store.to_string(),
                key: key.to_vec(),
                value,
                context: context.0.clone(),
            },
            &targets,
            &spares,
            config.w as usize,
            self.request_timeout(),
            Duration::from_millis(self.inner.config.timeouts.attempt_ms),
        )?;
        let outcome = drive(machine, self.calls(doc), |_: &PutMachine| {}).await?;
        Ok(PutResult {
            siblings: live_siblings(&outcome.object),
            context: Context(outcome.object.join()),
            acknowledged: outcome.stored_on.len(),
            stored_on: outcome.stored_on,
        })
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

    /// A handle on `store` that reconciles siblings with the store's
    /// policy from the membership document (see [`Store::with_resolver`]).
    pub fn store(&self, store: &str) -> Result<Store, ClientError> {
        let config = self.store_config(&self.membership(), store)?;
        Ok(Store::new(self.clone(), config))
    }

    /// This client's counters.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            read_repairs: self.inner.read_repairs.load(Ordering::Relaxed),
        }
    }

    /// The config this client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The underlying transport, for admin requests to single nodes.
    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// Closes connections to every node.
    pub fn close(&self) {
        self.inner.transport.close();
    }
}
