//! What a node tells Prometheus: requests by kind and outcome, their
//! latency, the writer's batches and fsyncs, its queue, what the node holds
//! per store, hints per home node, transfers (and the slots they hold),
//! connections and handshake failures, and the build.
//!
//! The crate is `prometheus-client`, the Prometheus project's own Rust
//! client: an explicit registry instead of a global one (a test can run
//! several nodes in one process, each with its own), typed label sets, a
//! Prometheus text encoder and no HTTP stack or runtime of its own (the
//! node serves `/metrics` itself, see [`http`]). The SDK uses the same
//! crate, so an application registers the SDK's metrics next to its own.
//!
//! Counters and histograms are updated on the request path (atomics);
//! what needs storage (objects and bytes per store, hints held, transfer
//! progress) is read at scrape time, a full pass over the node's keys, so
//! it is cached for [`TOTALS_MAX_AGE`] and a fast scraper cannot make the
//! node scan more often than that.

pub mod http;

use crate::handler::NodeState;
use crate::writer::WriterStats;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use quire_shared::wire::ErrorCode;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long totals read from storage (objects, bytes, hints, transfers)
/// are reused before a scrape reads them again.
pub const TOTALS_MAX_AGE: Duration = Duration::from_secs(30);

/// How a request ended: answered, or refused with a typed code.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused (or failed) with this code.
    Refused(ErrorCode),
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => encoder.write_str("ok"),
            Outcome::Refused(code) => write!(encoder, "{code:?}"),
        }
    }
}

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    outcome: Outcome,
}

/// Labels of a latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Labels naming a reason (refused connections, failed handshakes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Labels naming a store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabel {
    store: String,
}

/// Labels naming a home node (hints held for it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

/// Labels of the build-info metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    protocol: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets: 50 µs to about 3.3 s, doubling.
pub(crate) fn latency() -> Histogram {
    Histogram::new(exponential_buckets(50e-6, 2.0, 17))
}

/// Every metric of one node, and the registry that encodes them.
pub struct NodeMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<KindLabel>,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabel, Counter>,
    handshake_failures: Family<ReasonLabel, Counter>,
    queue_depth: Gauge,
    queue_bytes: Gauge,
    store_objects: Family<StoreLabel, Gauge>,
    store_bytes: Family<StoreLabel, Gauge>,
    store_tombstones: Family<StoreLabel, Gauge>,
    data_file_bytes: Gauge,
    hints_held: Family<TargetLabel, Gauge>,
    merkle_roots: Counter,
    connection_pauses: Counter,
    connections_struck_off: Counter,
    transfer_keys: Family<StoreLabel, Gauge>,
    transfer_bytes: Family<StoreLabel, Gauge>,
    transfers_receiving: Gauge,
    totals_read: Mutex<Option<Instant>>,
}

impl NodeMetrics {
    /// A registry with every node metric, prefixed `quire_node_`; the
    /// writer's histograms are `writer`'s own (its thread observes them).
    pub fn new(writer: &WriterStats) -> Self {
        let mut registry = Registry::with_prefix("quire_node");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by kind and outcome (ok, or the refusal's code)",
            requests.clone(),
        );
        let request_seconds = HistogramFamily::<KindLabel>::new_with_constructor(latency);
        registry.register(
            "request_seconds",
            "Time from a request decoded to its answer ready, by kind",
            request_seconds.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections being served",
            connections_open.clone(),
        );
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused before their handshake, by the cap they hit",
            connections_refused.clone(),
        );
        let handshake_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "handshake_failures",
            "Connections that failed their TLS handshake or named no identity, by reason",
            handshake_failures.clone(),
        );
        registry.register(
            "writer_batch_writes",
            "Writes per committed writer batch (one transaction: an fsync of its pages, and one of its meta page when it holds a sync write)",
            writer.batch_writes.clone(),
        );
        registry.register(
            "writer_fsync_seconds",
            "Time of each meta-page fsync made before acknowledging sync writes (the commit's own fsync of its pages is not counted here)",
            writer.fsync_seconds.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "writer_queue_depth",
            "Writes queued for the writer thread",
            queue_depth.clone(),
        );
        let queue_bytes = Gauge::default();
        registry.register(
            "writer_queue_bytes",
            "Bytes of writes queued or being committed",
            queue_bytes.clone(),
        );
        let store_objects = Family::<StoreLabel, Gauge>::default();
        registry.register(
            "store_objects",
            "Keys held per store, tombstoned ones included (read at most every 30 s)",
            store_objects.clone(),
        );
        let store_bytes = Family::<StoreLabel, Gauge>::default();
        registry.register(
            "store_bytes",
            "Bytes of the records held per store (read at most every 30 s)",
            store_bytes.clone(),
        );
        let store_tombstones = Family::<StoreLabel, Gauge>::default();
        registry.register(
            "store_tombstones",
            "Keys whose only values are tombstones, per store (read at most every 30 s)",
            store_tombstones.clone(),
        );
        let data_file_bytes = Gauge::default();
        registry.register(
            "data_file_bytes",
            "Size of the LMDB data file; well above the sum of store_bytes (the values held), `quire-node compact` gives part of the difference back (read at most every 30 s)",
            data_file_bytes.clone(),
        );
        let hints_held = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "hints_held",
            "Hints this node holds as a stand-in, per home node (read at most every 30 s)",
            hints_held.clone(),
        );
        let merkle_roots = Counter::default();
        registry.register(
            "merkle_roots",
            "Merkle roots served: one per anti-entropy exchange or transfer check",
            merkle_roots.clone(),
        );
        let connection_pauses = Counter::default();
        registry.register(
            "connection_pauses",
            "Connections paused for a request frame announced past its limit or garbled",
            connection_pauses.clone(),
        );
        let connections_struck_off = Counter::default();
        registry.register(
            "connections_struck_off",
            "Connections closed for too many request frames past their limit or garbled in a row",
            connections_struck_off.clone(),
        );
        let transfer_keys = Family::<StoreLabel, Gauge>::default();
        registry.register(
            "transfer_keys",
            "Keys received by transfers of the pending membership change, per store",
            transfer_keys.clone(),
        );
        let transfer_bytes = Family::<StoreLabel, Gauge>::default();
        registry.register(
            "transfer_bytes",
            "Bytes received by transfers of the pending membership change, per store",
            transfer_bytes.clone(),
        );
        let transfers_receiving = Gauge::default();
        registry.register(
            "transfers_receiving",
            "Partitions holding one of the node's transfer slots (at most limits.transfers_in_max)",
            transfers_receiving.clone(),
        );
        registry.register(
            "build",
            "The node's version and wire protocol",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                protocol: quire_shared::wire::PROTOCOL_VERSION.to_string(),
            }),
        );
        Self {
            registry,
            requests,
            request_seconds,
            connections_open,
            connections_refused,
            handshake_failures,
            queue_depth,
            queue_bytes,
            store_objects,
            store_bytes,
            store_tombstones,
            data_file_bytes,
            hints_held,
            merkle_roots,
            connection_pauses,
            connections_struck_off,
            transfer_keys,
            transfer_bytes,
            transfers_receiving,
            totals_read: Mutex::new(None),
        }
    }

    /// Counts one answered request of `kind` and its time since `started`.
    pub fn request(&self, kind: &'static str, outcome: Outcome, started: Instant) {
        self.requests
            .get_or_create(&RequestLabels { kind, outcome })
            .inc();
        self.request_seconds
            .get_or_create(&KindLabel { kind })
            .observe(started.elapsed().as_secs_f64());
    }

    /// A connection is being served until the returned guard drops.
    pub fn connection_open(&self) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }

    /// Counts a connection refused before its handshake.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a failed handshake (or a certificate naming nobody).
    pub fn handshake_failed(&self, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a strike against a connection: paused, or `closed`.
    pub fn struck(&self, closed: bool) {
        if closed {
            self.connections_struck_off.inc();
        } else {
            self.connection_pauses.inc();
        }
    }

    /// Counts a Merkle root served.
    pub fn merkle_root_served(&self) {
        self.merkle_roots.inc();
    }

    /// Merkle roots served since the node started (for `Stats`).
    pub fn merkle_roots_served(&self) -> u64 {
        self.merkle_roots.get()
    }

    /// The whole registry in the Prometheus text format, with the gauges
    /// read from `state` first.
    pub fn render(&self, state: &NodeState) -> String {
        self.refresh(state);
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Reads the gauges: the writer's queue every scrape, storage totals
    /// when the last read is older than [`TOTALS_MAX_AGE`].
    fn refresh(&self, state: &NodeState) {
        let (depth, bytes) = state.writer.queued();
        self.queue_depth.set(depth as i64);
        self.queue_bytes.set(bytes as i64);
        let receiving = state.inbound.held();
        self.transfers_receiving.set(receiving as i64);
        {
            let mut read = self.totals_read.lock().unwrap_or_else(|e| e.into_inner());
            if read.is_some_and(|at| at.elapsed() < TOTALS_MAX_AGE) {
                return;
            }
            *read = Some(Instant::now());
        }
        match state.storage.stats() {
            Ok(stats) => {
                for (store, s) in &stats.stores {
                    let label = StoreLabel {
                        store: store.clone(),
                    };
                    self.store_objects
                        .get_or_create(&label)
                        .set(s.objects as i64);
                    self.store_bytes.get_or_create(&label).set(s.bytes as i64);
                    self.store_tombstones
                        .get_or_create(&label)
                        .set(s.tombstones as i64);
                }
                self.hints_held.clear();
                for (target, n) in &stats.hints {
                    let label = TargetLabel {
                        target: target.to_string(),
                    };
                    self.hints_held.get_or_create(&label).set(*n as i64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading storage totals for metrics failed"),
        }
        match state.storage.data_file_bytes() {
            Ok(bytes) => {
                self.data_file_bytes.set(bytes as i64);
            }
            Err(e) => tracing::warn!(error = %e, "reading the data file's size failed"),
        }
        self.transfer_keys.clear();
        self.transfer_bytes.clear();
        if let Some(received) = state.transfers_received() {
            for (store, (keys, bytes)) in received {
                let label = StoreLabel { store };
                self.transfer_keys.get_or_create(&label).set(keys as i64);
                self.transfer_bytes.get_or_create(&label).set(bytes as i64);
            }
        }
    }
}

/// Holds one open connection in the gauge; drop it when the connection ends.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
