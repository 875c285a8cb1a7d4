//! Running one workload: load the records, then closed- or open-loop
//! operations for a duration, latencies into HdrHistograms.
//!
//! Open loop: operation `i` is due at `start + i / rate`; its latency runs
//! from that intended start, not from when a worker got to it, so a stall
//! shows up in every operation it delayed (no coordinated omission).

use super::echo::EchoClient;
use super::keys::{record_key, KeyChooser};
use super::pacer::Pacer;
use super::{KindReport, Workload, WorkloadReport};
use hdrhistogram::Histogram;
use quire_client::Client;
use quire_shared::wire::{Reply, Request};
use quire_shared::{Context, Value, VersionVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the operations go to.
#[derive(Clone)]
pub enum Target {
    /// A Quire store through the SDK.
    Store {
        /// The client.
        client: Client,
        /// The store.
        store: String,
    },
    /// The quic-echo baseline: one call per operation, nothing behind it.
    Echo {
        /// A connection to the echo server.
        client: EchoClient,
    },
}

/// How the run phase paces operations.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Each worker starts its next operation when the last one ends.
    Closed,
    /// Operations are due at this many per second overall.
    Open {
        /// Operations per second.
        rate: f64,
    },
}

/// The parameters of one run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Which mix.
    pub workload: Workload,
    /// Records loaded and chosen from.
    pub records: u64,
    /// Value size in bytes.
    pub value_bytes: usize,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Length of the run phase.
    pub duration: Duration,
    /// Closed or open loop.
    pub pace: Pace,
    /// Uniform or zipfian keys.
    pub keys: KeyChooser,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Read,
    Update,
    ReadModifyWrite,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Update => "update",
            Kind::ReadModifyWrite => "rmw",
        }
    }
}

/// Contexts of the last write made per record (by the load or a run), so
/// updates replace instead of piling up siblings, as a real writer holding
/// a context does. Concurrent updates of one record still make siblings.
pub type Contexts = Arc<Mutex<HashMap<u64, Context>>>;

struct Outcome {
    siblings: usize,
}

async fn read(target: &Target, key: &[u8]) -> Result<(Outcome, Context), String> {
    match target {
        Target::Store { client, store } => {
            let r = client.get(store, key).await.map_err(|e| e.to_string())?;
            Ok((
                Outcome {
                    siblings: r.siblings.len(),
                },
                r.context,
            ))
        }
        Target::Echo { client } => {
            let req = Request::Get {
                store: "echo".into(),
                key: key.to_vec(),
                hint: None,
            };
            echo(client, &req).await?;
            Ok((Outcome { siblings: 1 }, Context::empty()))
        }
    }
}

async fn write(
    target: &Target,
    key: &[u8],
    value: Vec<u8>,
    context: &Context,
) -> Result<Context, String> {
    match target {
        Target::Store { client, store } => client
            .put(store, key, value, context)
            .await
            .map(|p| p.context)
            .map_err(|e| e.to_string()),
        Target::Echo { client } => {
            let req = Request::Put {
                store: "echo".into(),
                key: key.to_vec(),
                value: Value::bytes(value, 0),
                context: VersionVector::new(),
                hint: None,
            };
            echo(client, &req).await?;
            Ok(Context::empty())
        }
    }
}

async fn echo(client: &EchoClient, req: &Request) -> Result<(), String> {
    let r = tokio::time::timeout(Duration::from_secs(3), client.call(req))
        .await
        .map_err(|_| "no answer from the echo server in 3 s".to_string())??;
    match r.result {
        Ok(Reply::Object(_) | Reply::Stored(_)) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// Writes every record once, `concurrency` at a time, keeping each
/// write's context in `contexts`. A record whose context is already in
/// `contexts` (see [`read_contexts`]) is replaced rather than given a
/// sibling.
pub async fn load(
    target: &Target,
    spec: &RunSpec,
    contexts: &Contexts,
    progress: &indicatif::ProgressBar,
) -> Result<Duration, String> {
    let started = Instant::now();
    let value_bytes = spec.value_bytes;
    let failures = for_each_record(
        target,
        spec,
        contexts,
        progress,
        move |target, i, known| async move {
            let value = vec![b'v'; value_bytes];
            let context = known.unwrap_or_else(Context::empty);
            write(&target, &record_key(i), value, &context)
                .await
                .map(Some)
        },
    )
    .await;
    failures.check(spec.records, "loads")?;
    Ok(started.elapsed())
}

/// Reads every record's context into `contexts`, `concurrency` at a time,
/// so that a load over records an earlier run left, or a run with
/// `--no-load`, replaces their values as a writer holding a context would
/// instead of adding a blind write's sibling at each update (which would
/// make every later read and write carry more values). Records not found
/// are left out; returns how many were found.
pub async fn read_contexts(
    target: &Target,
    spec: &RunSpec,
    contexts: &Contexts,
    progress: &indicatif::ProgressBar,
) -> Result<u64, String> {
    let failures = for_each_record(
        target,
        spec,
        contexts,
        progress,
        |target, i, _| async move {
            let (_, context) = read(&target, &record_key(i)).await?;
            Ok((!context.is_empty()).then_some(context))
        },
    )
    .await;
    failures.check(spec.records, "reads of the records' contexts")?;
    Ok(contexts.lock().unwrap_or_else(|e| e.into_inner()).len() as u64)
}

/// Failures of a pass over the records: how many, and the first one's
/// cause.
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    /// An error if more than 1 % of `records` failed.
    fn check(self, records: u64, what: &str) -> Result<(), String> {
        if self.count > records / 100 {
            let first = self.first.unwrap_or_default();
            return Err(format!(
                "{} of {records} {what} failed; the first: {first}",
                self.count
            ));
        }
        Ok(())
    }
}

/// Runs `op` once for every record, `spec.concurrency` at a time, with
/// the record's known context; keeps the context `op` returns and counts
/// its failures.
async fn for_each_record<F, Fut>(
    target: &Target,
    spec: &RunSpec,
    contexts: &Contexts,
    progress: &indicatif::ProgressBar,
    op: F,
) -> Failures
where
    F: Fn(Target, u64, Option<Context>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<Context>, String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let (target, next, errors) = (target.clone(), next.clone(), errors.clone());
            let (progress, contexts, op) = (progress.clone(), contexts.clone(), op.clone());
            let first_error = first_error.clone();
            let records = spec.records;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= records {
                        return;
                    }
                    let known = contexts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&i)
                        .cloned();
                    match op(target.clone(), i, known).await {
                        Ok(Some(ctx)) => {
                            contexts
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(i, ctx);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    }
                    progress.inc(1);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    progress.finish_and_clear();
    let first = first_error.lock().unwrap_or_else(|e| e.into_inner()).take();
    Failures {
        count: errors.load(Ordering::Relaxed),
        first,
    }
}

struct Recorder {
    histograms: HashMap<Kind, Histogram<u64>>,
    errors: HashMap<Kind, u64>,
    siblings_seen: u64,
}

impl Recorder {
    fn new() -> Self {
        Self {
            histograms: HashMap::new(),
            errors: HashMap::new(),
            siblings_seen: 0,
        }
    }

    fn record(&mut self, kind: Kind, latency: Duration, ok: bool) {
        let h = self.histograms.entry(kind).or_insert_with(|| {
            Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
        });
        let _ = h.record((latency.as_micros() as u64).clamp(1, 60_000_000));
        if !ok {
            *self.errors.entry(kind).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Recorder) {
        for (kind, h) in other.histograms {
            match self.histograms.get_mut(&kind) {
                Some(mine) => {
                    let _ = mine.add(&h);
                }
                None => {
                    self.histograms.insert(kind, h);
                }
            }
        }
        for (kind, e) in other.errors {
            *self.errors.entry(kind).or_default() += e;
        }
        self.siblings_seen += other.siblings_seen;
    }
}

async fn one_op(
    target: &Target,
    spec: &RunSpec,
    rng: &mut StdRng,
    contexts: &Contexts,
    rec: &mut Recorder,
    started: Instant,
) {
    let record = spec.keys.next(rng);
    let key = record_key(record);
    let is_read = rng.gen_bool(spec.workload.read_share());
    let kind = match (is_read, spec.workload) {
        (true, _) => Kind::Read,
        (false, Workload::F) => Kind::ReadModifyWrite,
        (false, _) => Kind::Update,
    };
    // Made for writes only: a read allocating a value it never sends would
    // charge the store measured with the benchmark's own work.
    let value = || vec![b'u'; spec.value_bytes];
    let result = match kind {
        Kind::Read => read(target, &key).await.map(|(o, _)| o.siblings),
        Kind::Update => {
            let ctx = contexts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&record)
                .cloned();
            let ctx = ctx.unwrap_or_else(Context::empty);
            write(target, &key, value(), &ctx).await.map(|c| {
                contexts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(record, c);
                1
            })
        }
        Kind::ReadModifyWrite => match read(target, &key).await {
            Ok((o, ctx)) => write(target, &key, value(), &ctx).await.map(|c| {
                contexts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(record, c);
                o.siblings
            }),
            Err(e) => Err(e),
        },
    };
    let ok = match result {
        Ok(siblings) => {
            if siblings > 1 {
                rec.siblings_seen += 1;
            }
            true
        }
        Err(_) => false,
    };
    rec.record(kind, started.elapsed(), ok);
}

/// The run phase.
pub async fn run(
    target: &Target,
    spec: &RunSpec,
    seed: u64,
    contexts: &Contexts,
) -> WorkloadReport {
    let begin = Instant::now();
    let end = begin + spec.duration;
    let pacer = match spec.pace {
        Pace::Closed => None,
        Pace::Open { rate } => Some(Arc::new(Pacer::start(begin, end, rate))),
    };
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|w| {
            let (target, spec, contexts, pacer) = (
                target.clone(),
                spec.clone(),
                contexts.clone(),
                pacer.clone(),
            );
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
                let mut rec = Recorder::new();
                loop {
                    let intended = match &pacer {
                        None => Instant::now(),
                        Some(pacer) => match pacer.next().await {
                            Some(due) => due,
                            None => break,
                        },
                    };
                    if intended >= end {
                        break;
                    }
                    one_op(&target, &spec, &mut rng, &contexts, &mut rec, intended).await;
                }
                rec
            })
        })
        .collect();
    let mut all = Recorder::new();
    for w in workers {
        if let Ok(rec) = w.await {
            all.merge(rec);
        }
    }
    let pacer_lag_us = pacer.and_then(Arc::into_inner).map(|mut p| p.lag_us());
    let elapsed = begin.elapsed().max(spec.duration);
    let mut kinds: Vec<KindReport> = all
        .histograms
        .iter()
        .map(|(kind, h)| KindReport {
            kind: kind.name().to_string(),
            ops: h.len(),
            errors: all.errors.get(kind).copied().unwrap_or(0),
            ops_per_sec: h.len() as f64 / elapsed.as_secs_f64(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        })
        .collect();
    kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
    let total: u64 = kinds.iter().map(|k| k.ops).sum();
    WorkloadReport {
        workload: spec.workload.name().to_string(),
        pace: match spec.pace {
            Pace::Closed => "closed".into(),
            Pace::Open { rate } => format!("open@{rate:.0}"),
        },
        ops_per_sec: total as f64 / elapsed.as_secs_f64(),
        errors: kinds.iter().map(|k| k.errors).sum(),
        siblings_seen: all.siblings_seen,
        pacer_lag_us,
        kinds,
    }
}
