//! The SDK's metrics, for an application to export next to its own.
//!
//! An application linking the SDK is the only place that sees what its
//! requests went through: how long each took, how often a quorum was out
//! of reach, which nodes it took for down, how many hints and read
//! repairs its requests caused. [`ClientMetrics`] keeps those as
//! `prometheus-client` metrics (the crate the nodes serve theirs with), and
//! [`crate::Client::register_metrics`] adds them to the application's own
//! registry, under the prefix `quire_client`.
//!
//! Cost per operation: one histogram observation (prometheus-client's own
//! short lock inside the histogram) and a few relaxed atomic adds. Every
//! labelled series is created up front, so an operation never takes the
//! label map's lock. [`crate::ClientStats`] reads the same counters.

use crate::client::{Client, ClientStats};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write as _;
use std::time::Duration;

/// The kind of a data operation, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum OperationKind {
    /// [`crate::Client::get`].
    Get,
    /// [`crate::Client::put`].
    Put,
    /// [`crate::Client::delete`].
    Delete,
}

/// How an operation ended, as a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// It returned `Ok`.
    Ok,
    /// It returned an error.
    Error,
}

/// Label values in lower case, as Prometheus users expect
/// (`kind="get"`).
impl EncodeLabelValue for OperationKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

impl OperationKind {
    /// The kind's name in labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::Get => "get",
            OperationKind::Put => "put",
            OperationKind::Delete => "delete",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        })
    }
}

/// Labels of the latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    kind: OperationKind,
    outcome: Outcome,
}

/// Labels of the per-kind counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: OperationKind,
}

const KINDS: [OperationKind; 3] = [
    OperationKind::Get,
    OperationKind::Put,
    OperationKind::Delete,
];

/// The series of one operation kind, resolved once so the hot path never
/// looks a label set up.
#[derive(Clone)]
struct KindSeries {
    /// Operations finished: the histograms' counts, readable without
    /// prometheus-client's test-only accessors.
    finished: Counter,
    ok: Histogram,
    error: Histogram,
    quorum_failures: Counter,
}

/// Latency buckets: 0.5 ms doubling to about 8 s, which spans a local
/// read to a request that waited out several attempt timeouts.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The SDK's metrics; every clone of a [`crate::Client`] shares one set.
#[derive(Clone)]
pub struct ClientMetrics {
    latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    quorum_failures: Family<KindLabels, Counter>,
    series: [KindSeries; 3],
    pub(crate) read_repairs: Counter,
    pub(crate) speculative_reads: Counter,
    pub(crate) membership_exchanges: Counter,
    pub(crate) nodes_marked_down: Counter,
    pub(crate) hints_written: Counter,
}

impl Default for ClientMetrics {
    fn default() -> Self {
        let latency: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let quorum_failures = Family::<KindLabels, Counter>::default();
        // One statement per series: a guard of `get_or_create` lives to
        // the end of its statement, and creating the next series while it
        // is held would wait on it forever.
        let series = KINDS.map(|kind| {
            let labels = |outcome| OperationLabels { kind, outcome };
            let ok = latency.get_or_create(&labels(Outcome::Ok)).clone();
            let error = latency.get_or_create(&labels(Outcome::Error)).clone();
            let quorum = quorum_failures.get_or_create(&KindLabels { kind }).clone();
            KindSeries {
                finished: Counter::default(),
                ok,
                error,
                quorum_failures: quorum,
            }
        });
        Self {
            latency,
            quorum_failures,
            series,
            read_repairs: Counter::default(),
            speculative_reads: Counter::default(),
            membership_exchanges: Counter::default(),
            nodes_marked_down: Counter::default(),
            hints_written: Counter::default(),
        }
    }
}

impl ClientMetrics {
    fn series(&self, kind: OperationKind) -> &KindSeries {
        &self.series[kind as usize]
    }

    /// Records one operation that started at `started` and ended with
    /// `result`.
    pub(crate) fn observe<T>(
        &self,
        kind: OperationKind,
        started: std::time::Instant,
        result: &Result<T, crate::ClientError>,
    ) {
        let quorum = matches!(result, Err(crate::ClientError::Quorum(_)));
        self.operation(kind, started.elapsed(), result.is_ok(), quorum);
    }

    /// Records one finished operation.
    pub(crate) fn operation(&self, kind: OperationKind, took: Duration, ok: bool, quorum: bool) {
        let series = self.series(kind);
        let histogram = if ok { &series.ok } else { &series.error };
        histogram.observe(took.as_secs_f64());
        series.finished.inc();
        if quorum {
            series.quorum_failures.inc();
        }
    }

    /// Operations of `kind` finished so far, successful or not.
    pub fn operations(&self, kind: OperationKind) -> u64 {
        self.series(kind).finished.get()
    }

    /// Operations of `kind` that failed for want of a quorum.
    pub fn quorum_failures(&self, kind: OperationKind) -> u64 {
        self.series(kind).quorum_failures.get()
    }

    /// Adds every metric to `registry` (names prefixed `quire_client_`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("quire_client");
        r.register_with_unit(
            "operation_duration",
            "Time from call to answer of SDK data operations, by kind and outcome",
            Unit::Seconds,
            self.latency.clone(),
        );
        r.register(
            "quorum_failures",
            "SDK operations that failed because too few replicas answered",
            self.quorum_failures.clone(),
        );
        r.register(
            "read_repairs",
            "Replicas sent a newer copy after a get found them missing or behind",
            self.read_repairs.clone(),
        );
        r.register(
            "speculative_reads",
            "Gets that asked more replicas because their first R answers were slower than the client's 99th percentile",
            self.speculative_reads.clone(),
        );
        r.register(
            "membership_exchanges",
            "Membership exchanges (a fetch or a push) started because an answer carried another epoch",
            self.membership_exchanges.clone(),
        );
        r.register(
            "nodes_marked_down",
            "Times this client took a node for down after a failed call",
            self.nodes_marked_down.clone(),
        );
        r.register(
            "hints_written",
            "Copies of puts stored on stand-ins for down home replicas (hinted handoff)",
            self.hints_written.clone(),
        );
    }
}

impl Client {
    /// Adds this client's metrics to the application's `registry`, so one
    /// `/metrics` endpoint serves both (names prefixed `quire_client_`).
    /// Every clone of the client shares the same metrics: register once.
    ///
    /// ```no_run
    /// # async fn example(client: quire_client::Client) {
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// client.register_metrics(&mut registry);
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// # }
    /// ```
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.metrics.register(registry);
    }

    /// This client's metrics, to read them in code.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.inner.metrics
    }

    /// This client's counters.
    pub fn stats(&self) -> ClientStats {
        let m = &self.inner.metrics;
        ClientStats {
            read_repairs: m.read_repairs.get(),
            speculative_reads: m.speculative_reads.get(),
            membership_exchanges: m.membership_exchanges.get(),
            nodes_marked_down: m.nodes_marked_down.get(),
            hints_written: m.hints_written.get(),
            quorum_failures: KINDS.iter().map(|&k| m.quorum_failures(k)).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn operations_land_in_their_series_and_in_the_text_format() {
        let m = ClientMetrics::default();
        m.operation(OperationKind::Get, Duration::from_millis(3), true, false);
        m.operation(OperationKind::Put, Duration::from_millis(9), false, true);
        m.hints_written.inc_by(2);
        assert_eq!(m.operations(OperationKind::Get), 1);
        assert_eq!(m.operations(OperationKind::Put), 1);
        assert_eq!(m.operations(OperationKind::Delete), 0);
        assert_eq!(m.quorum_failures(OperationKind::Put), 1);
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "quire_client_operation_duration_seconds_count{kind=\"get\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("quire_client_quorum_failures_total{kind=\"put\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("quire_client_hints_written_total 2"),
            "{text}"
        );
    }
}
