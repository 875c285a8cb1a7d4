//! `quire bench`: YCSB-style workloads with honest tail latency.
//!
//! Workloads A (50% read / 50% update), B (95/5), C (read only) and F (50%
//! read / 50% read-modify-write), uniform or zipfian keys, closed loop or
//! open loop at a target rate, against an existing cluster or a fresh local
//! one, with baselines in the same run: the quic-echo transport ceiling and
//! any other (N, R, W), so figures can be read as ratios.
//!
//! # Layout
//!
//! - [`keys`]: uniform and zipfian key choice.
//! - [`run`]: load and run phases, HdrHistogram latencies.
//! - [`echo`]: the quic-echo baseline server.
//! - [`plot`]: the PNG latency chart.

pub mod echo;
pub mod keys;
pub mod pacer;
pub mod plot;
pub mod run;

use serde::Serialize;

/// A YCSB core workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// 50% reads, 50% updates.
    A,
    /// 95% reads, 5% updates.
    B,
    /// Reads only.
    C,
    /// 50% reads, 50% read-modify-writes (get, then put with its context).
    F,
}

impl Workload {
    /// Share of operations that are plain reads.
    pub fn read_share(self) -> f64 {
        match self {
            Workload::A | Workload::F => 0.5,
            Workload::B => 0.95,
            Workload::C => 1.0,
        }
    }

    /// The letter.
    pub fn name(self) -> &'static str {
        match self {
            Workload::A => "A",
            Workload::B => "B",
            Workload::C => "C",
            Workload::F => "F",
        }
    }
}

/// Figures for one kind of operation.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    /// `read`, `update` or `rmw`.
    pub kind: String,
    /// Operations completed (errors included).
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Throughput of this kind.
    pub ops_per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile, microseconds.
    pub p999_us: u64,
    /// Slowest, microseconds.
    pub max_us: u64,
}

/// Figures for one workload run.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    /// The workload letter.
    pub workload: String,
    /// `closed` or `open@RATE`.
    pub pace: String,
    /// All operations per second.
    pub ops_per_sec: f64,
    /// Failed operations.
    pub errors: u64,
    /// Reads that returned more than one sibling.
    pub siblings_seen: u64,
    /// Open loop: how late the pacer released operations, (p50, p99,
    /// p99.9) in µs, a figure of its own (latencies include it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacer_lag_us: Option<(u64, u64, u64)>,
    /// Per kind of operation.
    pub kinds: Vec<KindReport>,
}

/// Everything one `quire bench` invocation measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// What was measured against: `quire (n,r,w)`, `quic-echo`.
    pub target: String,
    /// Records loaded.
    pub records: u64,
    /// Value size.
    pub value_bytes: usize,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Worker threads of the benchmark's runtime (`--threads`), which
    /// runs the client and, for quic-echo, the server too: a figure
    /// depends on it, so each report names it.
    pub runtime_threads: usize,
    /// `uniform` or `zipfian`.
    pub distribution: String,
    /// How long loading took, seconds.
    pub load_secs: f64,
    /// Peak resident memory of each local node, bytes (local runs only).
    /// It counts the pages of LMDB's data file the node has touched
    /// through its map, which are the kernel's page cache.
    pub node_peak_memory_bytes: Vec<u64>,
    /// Each local node's own memory at the end (`RssAnon`: heap and
    /// stacks, not the mapped data file), bytes.
    pub node_heap_memory_bytes: Vec<u64>,
    /// Each local node's LMDB data file at the end, bytes.
    pub node_data_file_bytes: Vec<u64>,
    /// One entry per workload run.
    pub runs: Vec<WorkloadReport>,
}

/// Renders `report` as a table, line by line into `out`.
pub fn write_table(report: &BenchReport, out: &mut String) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "target {}: {} records of {} B, {} workers on {} runtime thread(s), {} keys, load {:.1} s",
        report.target,
        report.records,
        report.value_bytes,
        report.concurrency,
        report.runtime_threads,
        report.distribution,
        report.load_secs
    );
    let _ = writeln!(
        out,
        "{:<4} {:<12} {:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "wl", "pace", "op", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "errors", "siblings"
    );
    for run in &report.runs {
        for k in &run.kinds {
            let _ = writeln!(
                out,
                "{:<4} {:<12} {:<7} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
                run.workload,
                run.pace,
                k.kind,
                k.ops_per_sec,
                k.p50_us,
                k.p99_us,
                k.p999_us,
                k.max_us,
                k.errors,
                run.siblings_seen
            );
        }
        let _ = writeln!(
            out,
            "{:<4} {:<12} {:<7} {:>10.0}",
            run.workload, run.pace, "all", run.ops_per_sec
        );
        if let Some((p50, p99, p999)) = run.pacer_lag_us {
            let _ = writeln!(
                out,
                "{:<4} {:<12} {:<7} {:>10} {:>9} {:>9} {:>9}   (how late the pacer released operations)",
                run.workload, run.pace, "lag", "", p50, p99, p999
            );
        }
    }
    if !report.node_peak_memory_bytes.is_empty() {
        let mib: Vec<String> = report
            .node_peak_memory_bytes
            .iter()
            .map(|b| format!("{:.1} MiB", *b as f64 / (1 << 20) as f64))
            .collect();
        let _ = writeln!(out, "node peak memory: {}", mib.join(", "));
    }
    let mib = |bytes: &[u64]| {
        bytes
            .iter()
            .map(|b| format!("{:.1} MiB", *b as f64 / (1 << 20) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !report.node_heap_memory_bytes.is_empty() {
        let _ = writeln!(
            out,
            "node own memory (RssAnon, at the end): {}",
            mib(&report.node_heap_memory_bytes)
        );
    }
    if !report.node_data_file_bytes.is_empty() {
        let _ = writeln!(
            out,
            "node data file (data.mdb): {}",
            mib(&report.node_data_file_bytes)
        );
    }
}
