//! `quire bench`: YCSB-style workloads against the configured cluster or a
//! fresh local one, with baselines measured in the same run.

use super::output::{print, Report};
use super::{connect, ConfigArg};
use anyhow::{anyhow, bail, Context as _};
use clap::ValueEnum;
use quire::bench::keys::KeyChooser;
use quire::bench::run::{
    load, read_contexts, run as run_workload, Contexts, Pace, RunSpec, Target,
};
use quire::bench::{write_table, BenchReport, Workload, WorkloadReport};
use quire::cluster::process::{anon_memory_bytes, peak_memory_bytes};
use quire::cluster::{ClusterBuilder, LocalCluster};
use quire::shared::{ConflictPolicy, Durability, StoreConfig, StoreLimits};
use quire::Client;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `quire bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        ignore_case = true,
        default_value = "a,b,c,f"
    )]
    workloads: Vec<Workload>,
    /// Key choice.
    #[arg(long, value_enum, default_value_t = Distribution::Zipfian)]
    distribution: Distribution,
    /// Records loaded before the runs (and chosen from).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Concurrent operations.
    #[arg(long, default_value_t = 32, value_parser = positive_usize)]
    concurrency: usize,
    /// Seconds per workload run.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Seconds of the first workload run as a warm-up, not recorded,
    /// before each target's measured runs: its connections open and its
    /// latency estimates settle first, so no run's tail is the client's
    /// own cold start.
    #[arg(long, default_value_t = 1)]
    warmup_s: u64,
    /// How operations are paced.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Target operations per second for open loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Start a fresh cluster of this many local node processes (temporary
    /// directories, removed afterwards) instead of using --config.
    #[arg(long, value_name = "N")]
    local_nodes: Option<usize>,
    /// Also measure a store with these N,R,W (e.g. 1,1,1: the cost of
    /// replication against none).
    #[arg(long, value_name = "N,R,W", value_parser = parse_nrw)]
    store_nrw: Option<Nrw>,
    /// Also measure a baseline.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Skip loading (the records are there from an earlier run). Against
    /// an existing cluster the records' contexts are read first either
    /// way, so updates replace values instead of adding siblings.
    #[arg(long)]
    no_load: bool,
    /// Draw the latency percentiles per workload into this PNG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Seed of the operation mix and key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of this process's async runtime (0: one per core).
    ///
    /// They run the Quire client and the quic-echo baseline, client and
    /// server alike (local nodes are processes of their own). With the
    /// nodes on the same cores (--local-nodes, `quire up`), fewer threads
    /// leave more of the cores to the nodes; docs/benchmarks.md has what
    /// one thread changed on 2 cores. A multi-thread runtime with N
    /// workers, unlike a node's `worker_threads = 1` (a current-thread
    /// runtime). At most 1024, as for a node.
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u16).range(0..=quire_node::config::WORKER_THREADS_MAX as i64))]
    threads: u16,
}

impl BenchArgs {
    /// The worker threads `--threads` asks for; `None` leaves tokio's
    /// default, one per core, so a run without the option measures what
    /// an application's default runtime would do.
    pub fn runtime_threads(&self) -> Option<usize> {
        (self.threads > 0).then_some(self.threads.into())
    }
}

/// `--distribution`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Distribution {
    /// Zipfian with theta 0.99: a few hot keys, scattered over the ring.
    Zipfian,
    /// Every record equally likely.
    Uniform,
}

impl Distribution {
    fn name(self) -> &'static str {
        match self {
            Distribution::Zipfian => "zipfian",
            Distribution::Uniform => "uniform",
        }
    }

    fn keys(self, records: u64) -> KeyChooser {
        match self {
            Distribution::Zipfian => KeyChooser::zipfian(records, 0.99),
            Distribution::Uniform => KeyChooser::uniform(records),
        }
    }
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// As fast as possible: each worker starts its next operation when the
    /// last one ends.
    Closed,
    /// At --rate, latency measured from each operation's intended start.
    Open,
    /// Closed, then open at --rate (else at half the closed-loop rate).
    Both,
}

/// `--baseline`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Baseline {
    /// A bare QUIC server that answers at once: the transport's ceiling.
    QuicEcho,
}

/// `--store-nrw`: replication settings of an extra store to measure.
#[derive(Clone, Copy, Debug)]
pub struct Nrw(u8, u8, u8);

fn parse_nrw(text: &str) -> Result<Nrw, String> {
    let parts: Vec<u8> = text
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| "takes N,R,W, e.g. 1,1,1".to_string())?;
    match parts[..] {
        [n, r, w] => Ok(Nrw(n, r, w)),
        _ => Err("takes three numbers N,R,W".into()),
    }
}

fn positive_usize(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) | Err(_) => Err("must be a positive number".into()),
        Ok(v) => Ok(v),
    }
}

impl Nrw {
    fn store(self) -> StoreConfig {
        StoreConfig {
            name: "bench_nrw".into(),
            n: self.0,
            r: self.1,
            w: self.2,
            durability: Durability::Sync,
            policy: ConflictPolicy::Siblings,
            limits: StoreLimits::default(),
        }
    }
}

/// Every report of one run; JSON is the list, text is a table per target.
#[derive(Serialize)]
#[serde(transparent)]
struct Reports(Vec<BenchReport>);

impl Report for Reports {
    fn text(&self, out: &mut String) {
        for r in &self.0 {
            write_table(r, out);
            out.push('\n');
        }
    }
}

/// The cluster under test: a throwaway local one, or the configured one
/// (with the extra store created if it is missing).
async fn cluster(
    args: &BenchArgs,
    extra: Option<&StoreConfig>,
    config: ConfigArg,
) -> anyhow::Result<(Client, Option<LocalCluster>)> {
    if let Some(n) = args.local_nodes {
        let exe = std::env::current_exe().context("cannot find the quire executable")?;
        let mut stores = vec![quire::admin::default_store(n)];
        stores.extend(extra.cloned());
        let cluster = ClusterBuilder::new(n)
            .processes(exe)
            .stores(stores)
            .start()
            .await?;
        let client = cluster.client().await?;
        return Ok((client, Some(cluster)));
    }
    let client = connect(config.clone()).await?;
    match extra {
        Some(store) if client.membership().store(&store.name).is_none() => {
            client.create_store(store.clone()).await?;
            client.close();
            // A fresh client of the same cluster learns the new store.
            Ok((connect(config).await?, None))
        }
        _ => Ok((client, None)),
    }
}

/// `quire bench`.
pub async fn bench(args: BenchArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let extra = args.store_nrw.map(Nrw::store);
    let (client, local) = cluster(&args, extra.as_ref(), config).await?;
    super::reload::on_sighup(client.clone());
    let mut targets: Vec<(String, Target)> = Vec::new();
    for store in ["default"]
        .into_iter()
        .map(String::from)
        .chain(extra.as_ref().map(|s| s.name.clone()))
    {
        if let Some(s) = client.membership().store(&store) {
            targets.push((
                format!("quire {} ({},{},{})", s.name, s.n, s.r, s.w),
                Target::Store {
                    client: client.clone(),
                    store: store.clone(),
                },
            ));
        }
    }
    let echo_dir = tempfile::tempdir()?;
    let mut _echo = None;
    if let Some(Baseline::QuicEcho) = args.baseline {
        let server =
            quire::bench::echo::EchoServer::start(echo_dir.path(), args.value_bytes).await?;
        targets.push((
            "quic-echo".into(),
            Target::Echo {
                client: server.client.clone(),
            },
        ));
        _echo = Some(server);
    }
    if targets.is_empty() {
        bail!("the cluster has no `default` store to measure");
    }
    let mut reports = Vec::new();
    for (name, target) in &targets {
        reports.push(measure(&args, name, target, json).await?);
    }
    if let (Some(cluster), Some(first)) = (&local, reports.first_mut()) {
        first.node_peak_memory_bytes = cluster
            .pids()
            .into_iter()
            .filter_map(peak_memory_bytes)
            .collect();
        first.node_heap_memory_bytes = cluster
            .pids()
            .into_iter()
            .filter_map(anon_memory_bytes)
            .collect();
        first.node_data_file_bytes = cluster
            .nodes
            .iter()
            .filter_map(|node| std::fs::metadata(node.data_dir().join("data.mdb")).ok())
            .map(|m| m.len())
            .collect();
    }
    print(&Reports(reports.clone()), json)?;
    if let Some(path) = &args.plot {
        quire::bench::plot::draw(&reports, path)?;
        if !json {
            println!("latency chart written to {}", path.display());
        }
    }
    client.close();
    drop(local);
    Ok(())
}

/// Loads the records into one target, then runs every workload against it.
async fn measure(
    args: &BenchArgs,
    name: &str,
    target: &Target,
    json: bool,
) -> anyhow::Result<BenchReport> {
    let progress = |what: String| {
        if !json {
            eprintln!("quire bench: {name}: {what}");
        }
    };
    let base = RunSpec {
        workload: Workload::C,
        records: args.records,
        value_bytes: args.value_bytes,
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration_s),
        pace: Pace::Closed,
        keys: args.distribution.keys(args.records),
    };
    let contexts = Contexts::default();
    // A fresh local cluster holds nothing; any other store may hold the
    // records of an earlier run, which updates must replace.
    if args.local_nodes.is_none() && matches!(target, Target::Store { .. }) {
        progress(format!("reading the contexts of {} records", args.records));
        let bar = quire::progress::bar("reading contexts", args.records);
        let found = read_contexts(target, &base, &contexts, &bar)
            .await
            .map_err(|e| anyhow!("{name}: {e}"))?;
        if args.no_load && found < args.records {
            eprintln!(
                "quire bench: {name}: --no-load, but only {found} of the {} records were found: \
                 reads of the others find nothing",
                args.records
            );
        }
    }
    let load_secs = if args.no_load {
        0.0
    } else {
        progress(format!("loading {} records", args.records));
        let bar = quire::progress::bar("loading", args.records);
        load(target, &base, &contexts, &bar)
            .await
            .map_err(|e| anyhow!("{name}: {e}"))?
            .as_secs_f64()
    };
    if let (Some(&workload), true) = (args.workloads.first(), args.warmup_s > 0) {
        progress(format!("warming up for {} s", args.warmup_s));
        let warmup = RunSpec {
            workload,
            duration: Duration::from_secs(args.warmup_s),
            ..base.clone()
        };
        let warm = run_workload(target, &warmup, args.seed ^ 0x5741_524d, &contexts).await;
        if warm.errors > 0 {
            // Not in the report, but not hidden either.
            eprintln!(
                "quire bench: {name}: {} of the warm-up's operations failed",
                warm.errors
            );
        }
    }
    let mut runs: Vec<WorkloadReport> = Vec::new();
    for &workload in &args.workloads {
        let mut spec = RunSpec {
            workload,
            ..base.clone()
        };
        let mut closed_rate = None;
        if args.mode != Mode::Open {
            progress(format!("workload {} closed loop", workload.name()));
            let r = run_workload(target, &spec, args.seed, &contexts).await;
            closed_rate = Some(r.ops_per_sec);
            runs.push(r);
        }
        if args.mode != Mode::Closed {
            let rate = args
                .rate
                .or(closed_rate.map(|r| r / 2.0))
                .ok_or_else(|| anyhow!("--mode open needs --rate"))?;
            progress(format!(
                "workload {} open loop at {rate:.0} ops/s",
                workload.name()
            ));
            spec.pace = Pace::Open {
                rate: rate.max(1.0),
            };
            runs.push(run_workload(target, &spec, args.seed, &contexts).await);
        }
    }
    Ok(BenchReport {
        target: name.to_string(),
        records: args.records,
        value_bytes: args.value_bytes,
        concurrency: args.concurrency,
        runtime_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        distribution: args.distribution.name().to_string(),
        load_secs,
        node_peak_memory_bytes: Vec::new(),
        node_heap_memory_bytes: Vec::new(),
        node_data_file_bytes: Vec::new(),
        runs,
    })
}
