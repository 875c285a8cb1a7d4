//! The `Client`: the application's handle on a Quire cluster.
//!
//! It pulls membership from a seed, keeps the newest document it sees, and
//! runs the quorum machines for get, put and delete over one reused QUIC
//! connection per node.

use crate::config::ClientConfig;
use crate::config::TlsSource;
use crate::driver::{Background, Calls, NodeObserver};
use crate::error::ClientError;
use crate::health::Health;
use crate::metrics::ClientMetrics;
use crate::quorum::targets::Target;
use crate::speculate::Speculation;
use crate::transport::TransportError;
use crate::transport::{SetupError, Transport};
use quire_net::seal::Sealer;
use quire_net::tls::TlsMaterial;
use quire_shared::wire::{Reply, Request, Response, PROTOCOL_VERSION};
use quire_shared::{Membership, NodeId, PreferenceList, StoreConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Counters of one client, for operators and tests: a snapshot of the
/// same counters [`Client::register_metrics`] exports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Replicas sent a newer copy after a get found them missing or behind.
    pub read_repairs: u64,
    /// Times a node was taken for down after a failed call.
    pub nodes_marked_down: u64,
    /// Copies of puts stored on stand-ins for down home replicas.
    pub hints_written: u64,
    /// Gets, puts and deletes that failed for want of a quorum.
    pub quorum_failures: u64,
    /// Gets that asked more replicas because their first `R` answers
    /// were slower than this client's 99th percentile.
    pub speculative_reads: u64,
    /// Membership exchanges (a fetch or a push) started because an
    /// answer carried another epoch, whatever their outcome: about one
    /// per new epoch and per node behind, however many answers showed it.
    pub membership_exchanges: u64,
}

/// What every clone of a [`Client`] shares.
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) transport: Transport,
    /// Checks the seal of every document taken, and seals the ones this
    /// client makes.
    pub(crate) sealer: RwLock<Arc<Sealer>>,
    /// Where the identity comes from now: the config's at first, then
    /// whatever [`Client::replace_tls`] handed over.
    pub(crate) tls: RwLock<TlsSource>,
    pub(crate) membership: RwLock<Arc<Membership>>,
    /// Operation latency, quorum failures, read repairs, nodes marked
    /// down, hints written.
    pub(crate) metrics: ClientMetrics,
    /// When a get that asked `R` replicas asks the rest.
    pub(crate) speculation: Speculation,
    pub(crate) health: Health,
    pub(crate) background: Background,
    /// Whether a membership exchange started by an answer runs: a fetch
    /// (the node is ahead) or a push (it is behind). A new epoch
    /// shows in every answer at once (a commit, a flip): without these,
    /// each answer started its own fetch and verification, and a busy
    /// client sent hundreds in a millisecond, its gets queued behind
    /// them. Answers that disagree while one of their kind runs start
    /// none; the next answer after it ends starts another if still
    /// needed. Two flags, so that learning a newer document never waits
    /// behind pushing ours to a slow node: this one for fetches...
    pub(crate) fetching: AtomicBool,
    /// ...and this one for pushes.
    pub(crate) pushing: AtomicBool,
}

impl Inner {
    /// The flag of a running membership exchange: a push of ours to a
    /// node that is behind, or a fetch from one that is ahead.
    fn exchange_flag(&self, push: bool) -> &AtomicBool {
        if push {
            &self.pushing
        } else {
            &self.fetching
        }
    }
}

/// A handle on a cluster; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// The sealer for the identity in `tls`: the same material the
/// transport presents, loaded by the same rules.
pub(crate) fn load_sealer(tls: &TlsSource) -> Result<Sealer, SetupError> {
    Ok(Sealer::from_material(&TlsMaterial::load(tls)?)?)
}

/// Marks the running membership exchange of its kind (a push if true,
/// else a fetch: [`Inner::fetching`]) ended when dropped.
struct Exchanging(Client, bool);

impl Drop for Exchanging {
    fn drop(&mut self) {
        self.0
            .inner
            .exchange_flag(self.1)
            .store(false, Ordering::Release);
    }
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

impl Client {
    /// Sets up TLS and pulls membership from the first seed that answers.
    /// Seeds are asked in order, but one that has not answered within
    /// 250 ms does not hold up the next: a dead first seed costs that, not
    /// the connect timeout.
    ///
    /// ```no_run
    /// use quire_client::{Client, ClientConfig};
    ///
    /// # async fn example() -> Result<(), quire_client::ClientError> {
    /// let config = ClientConfig::load("quire-local/client.toml".as_ref())?;
    /// let client = Client::connect(config).await?;
    /// // ... requests; before a short-lived program exits:
    /// client.settle(std::time::Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let transport = Transport::new(&config.tls, &config.timeouts)?;
        let sealer = load_sealer(&config.tls)?;
        let timeout = Duration::from_millis(config.timeouts.request_ms);
        let doc =
            crate::seeds::first_document(&transport, &config.seeds, sealer.verifier(), timeout)
                .await?;
        transport.expect_members(&doc);
        let client = Self {
            inner: Arc::new(Inner {
                tls: RwLock::new(config.tls.clone()),
                transport,
                sealer: RwLock::new(Arc::new(sealer)),
                membership: RwLock::new(Arc::new(doc)),
                metrics: ClientMetrics::default(),
                speculation: Speculation::new(Duration::from_millis(config.timeouts.attempt_ms)),
                health: Health::default(),
                background: Background::default(),
                fetching: AtomicBool::new(false),
                pushing: AtomicBool::new(false),
                config,
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
    /// first `N` healthy nodes of the preference list, planned as a get or
    /// put plans them (while a change moves the key, incoming replicas
    /// stand in for no one).
    pub fn targets(&self, store: &str, key: &[u8]) -> Result<Vec<Target>, ClientError> {
        Ok(self.plan(store, key)?.planned.targets)
    }

    /// Feeds one call's result to failure detection and membership.
    pub(crate) fn observe(&self, node: NodeId, result: Result<&Response, &TransportError>) {
        (self.observer())(node, result)
    }

    pub(crate) fn calls(&self, membership: Arc<Membership>) -> Calls {
        Calls {
            transport: self.inner.transport.clone(),
            membership,
            observer: self.observer(),
            call_timeout: Duration::from_millis(self.inner.config.timeouts.attempt_ms),
            background: self.inner.background.clone(),
        }
    }

    /// Waits (at most `limit`) until the work requests do after returning
    /// is done: replication past `W` and read repair. A process about to
    /// exit calls this, or its last put may reach only `W` replicas and its
    /// last get repairs nothing.
    pub async fn settle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.inner.background.idle()).await;
    }

    /// The newest membership document this client knows.
    pub fn membership(&self) -> Arc<Membership> {
        self.inner
            .membership
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.timeouts.request_ms)
    }

    pub(crate) fn store_config(
        &self,
        doc: &Membership,
        store: &str,
    ) -> Result<StoreConfig, ClientError> {
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
                    // Heard from but slow: the request failed, the node
                    // is up; marking it down would send everyone's
                    // requests elsewhere for one slow fsync.
                    Err(TransportError::Slow(_)) => return,
                    Err(e) => {
                        tracing::debug!(node = %node, error = %e, "node down");
                        if client.inner.health.mark_down(node, Instant::now()) {
                            client.inner.metrics.nodes_marked_down.inc();
                        }
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
                let behind = response.epoch < mine.epoch;
                if client
                    .inner
                    .exchange_flag(behind)
                    .swap(true, Ordering::AcqRel)
                {
                    return; // one is running; a later answer retries
                }
                client.inner.metrics.membership_exchanges.inc();
                // Made before the task: cleared however the exchange ends,
                // even if the task is dropped unpolled with its runtime,
                // so the next answer may start one.
                let running = Exchanging(client.clone(), behind);
                tokio::spawn(async move { running.0.exchange_membership(&addr, behind).await });
            },
        )
    }

    /// Asks the members, one at a time, for their document until one is
    /// newer than ours (or every member was asked): after a node refused a
    /// write because our document is stale, and between transfer steps.
    /// Members this client believes down are skipped: asking one costs a
    /// connect timeout, on every call (a dead machine being replaced would
    /// slow each transfer step by it); the probe loop finds it when it is
    /// back.
    pub(crate) async fn refresh_membership(&self) {
        let before = self.membership();
        for m in &before.members {
            if !self.inner.health.is_up(m.id) {
                continue;
            }
            self.exchange_membership(&m.addr, false).await;
            if self.membership().supersedes(&before) {
                return;
            }
        }
    }

    async fn exchange_membership(&self, addr: &str, push: bool) {
        let t = &self.inner.transport;
        let timeout = self.request_timeout();
        if push {
            let doc = (*self.membership()).clone();
            let _ = t
                .call(
                    addr,
                    &Request::PutMembership {
                        membership: Box::new(doc),
                        base: None,
                    },
                    timeout,
                )
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

    /// Keeps `doc` if it is valid, of our cluster, supersedes ours (see
    /// [`Membership::supersedes`]: the same rule as the nodes') and may
    /// follow it (`Verifier::verify_successor`: the nodes' rule too).
    /// The checks run before the write lock is taken, so that gets, which
    /// read the membership on every call, do not wait for a signature
    /// check; they run again under the lock only if another document was
    /// adopted meanwhile.
    fn adopt(&self, doc: Membership) {
        let held = self.membership();
        if !self.may_follow(&doc, &held) {
            return;
        }
        let mut current = self
            .inner
            .membership
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current, &held) && !self.may_follow(&doc, &current) {
            return;
        }
        tracing::info!(epoch = doc.epoch, "adopted newer membership");
        self.inner.transport.expect_members(&doc);
        *current = Arc::new(doc);
    }

    /// Whether `doc` may take the place of `held`: same cluster, newer
    /// by the nodes' rule, valid, sealed by an admin `held` does not
    /// revoke (the cheap checks first).
    fn may_follow(&self, doc: &Membership, held: &Membership) -> bool {
        if doc.cluster_id != held.cluster_id || !doc.supersedes(held) || doc.validate().is_err() {
            return false;
        }
        match self.sealer().verifier().verify_successor(doc, Some(held)) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(epoch = doc.epoch, error = %e, "refused a membership document");
                false
            }
        }
    }

    /// The config this client was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// When the certificate of the node at `addr` expires (Unix seconds),
    /// once this client has a connection to it: `quire status` warns
    /// about certificates close to their end.
    pub fn node_certificate_not_after(&self, addr: &str) -> Option<i64> {
        self.inner.transport.peer_not_after(addr)
    }

    /// Seals documents this client makes, and checks others' seals.
    pub(crate) fn sealer(&self) -> Arc<Sealer> {
        self.inner
            .sealer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the certificate, key and CA bundle again (a rotation of
    /// files): new connections present the new certificate and trust the
    /// new bundle, documents are signed and checked with them; requests in
    /// flight finish on the connections they started on. On an error
    /// nothing changes. An identity held as PEM in memory is not re-read
    /// from anywhere: hand the new one to [`Client::replace_tls`].
    pub fn reload_tls(&self) -> Result<(), ClientError> {
        let tls = self
            .inner
            .tls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.replace_tls(tls)
    }

    /// Switches to another identity or CA bundle: for an application that
    /// holds its certificate and key as PEM in memory (from a secret
    /// store) and is handed new ones at rotation, or that moves to files.
    /// Takes effect as [`Client::reload_tls`] does; on an error (a key
    /// that does not match, a certificate that names no identity) nothing
    /// changes. [`Client::config`] still shows what the client started
    /// with.
    pub fn replace_tls(&self, tls: TlsSource) -> Result<(), ClientError> {
        let sealer = load_sealer(&tls)?;
        self.inner.transport.reload_tls(&tls)?;
        *self.inner.sealer.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sealer);
        *self.inner.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
        tracing::info!("loaded the client's certificate, key and CA bundle");
        Ok(())
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
