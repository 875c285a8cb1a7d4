//! The `quire` command line: run a local cluster, read and write keys,
//! inspect the cluster. Every command takes `--json` for scripts.

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Quire: an always-writeable, Dynamo-style key-value store.
///
/// Start a local three-node cluster with `quire up`, then from another
/// terminal `quire put default cart apple` and `quire get default cart`.
/// Client commands find the cluster through a client config: `--config`,
/// else $QUIRE_CONFIG, else ./quire-local/client.toml (what `quire up`
/// writes).
#[derive(Parser)]
#[command(name = "quire", version, about, long_about)]
struct Cli {
    /// Config file: the client config for client commands, the node config
    /// for `quire node`.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local cluster: each node its own process on 127.0.0.1, until
    /// Ctrl-C. The first run creates DIR (CA, certificates, configs); later
    /// runs restart the same cluster with its data.
    Up {
        /// Number of nodes (default 3 for a new cluster; an existing one keeps
        /// its count).
        #[arg(long)]
        nodes: Option<usize>,
        /// The cluster directory.
        #[arg(long, default_value = "quire-local")]
        dir: PathBuf,
        /// Node K listens on port P+K-1 (default 7400 for a new cluster);
        /// 0 lets each node pick a free port.
        #[arg(long, value_name = "P")]
        base_port: Option<u16>,
    },
    /// Stop the nodes of a local cluster left running (e.g. after `quire up`
    /// was killed).
    Down {
        /// The cluster directory.
        #[arg(long, default_value = "quire-local")]
        dir: PathBuf,
    },
    /// Run one storage node from its config (`--config node.toml`); the same
    /// as the `quire-node` binary.
    Node,
    /// Write VALUE under KEY. Without --context the write is blind: it does
    /// not replace any value already there, they become siblings.
    Put {
        /// Store name.
        store: String,
        /// Key (UTF-8 text).
        key: String,
        /// Value (UTF-8 text).
        value: String,
        /// The context token from a `get` of this key: the write replaces
        /// the values that get returned.
        #[arg(long, value_name = "TOKEN")]
        context: Option<String>,
    },
    /// Read KEY: every sibling value and the context token to write with.
    Get {
        /// Store name.
        store: String,
        /// Key (UTF-8 text).
        key: String,
    },
    /// Delete KEY (writes a tombstone). Values the --context has not seen
    /// survive the delete.
    Delete {
        /// Store name.
        store: String,
        /// Key (UTF-8 text).
        key: String,
        /// The context token from a `get` of this key.
        #[arg(long, value_name = "TOKEN")]
        context: Option<String>,
    },
    /// Show the membership epoch, every node (up or down) and the stores.
    Status,
    /// Manage stores (named keyspaces with their own N, R, W and policy).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Deliver hints: objects that stand-ins hold for nodes that were down
    /// go home and are dropped from the stand-ins. Runs every few seconds
    /// until Ctrl-C, or one pass with --once.
    Maintain {
        /// One pass, print a summary, exit.
        #[arg(long)]
        once: bool,
        /// Pause between passes.
        #[arg(long, default_value_t = 2_000, value_name = "MS")]
        interval_ms: u64,
    },
    /// Measure throughput and tail latency with YCSB-style workloads (A:
    /// 50/50 read/update, B: 95/5, C: read only, F: read/read-modify-write),
    /// against the configured cluster or a fresh local one, with baselines.
    Bench(BenchArgs),
    /// Show KEY's partition and preference list, home replicas first.
    Locate {
        /// Store name.
        store: String,
        /// Key (UTF-8 text).
        key: String,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create a store. N replicas per key; a get waits for R answers, a put
    /// for W stored copies (R + W > N makes reads see the latest
    /// acknowledged write while no node fails).
    Create {
        /// Store name: 1 to 24 bytes of a-z, 0-9, '_' or '-'.
        name: String,
        /// Replicas per key.
        #[arg(long, default_value_t = 3)]
        n: u8,
        /// Answers a get waits for.
        #[arg(long, default_value_t = 2)]
        r: u8,
        /// Stored copies a put waits for.
        #[arg(long, default_value_t = 2)]
        w: u8,
        /// How concurrent writes are resolved: `siblings` keeps them all
        /// for the application, `lww` keeps the newest timestamp.
        #[arg(long, default_value = "siblings", value_parser = ["siblings", "lww"])]
        policy: String,
        /// `sync` fsyncs before a write is acknowledged; `buffered` flushes
        /// every 100 ms (node setting `storage.flush_interval_ms`): faster,
        /// and an OS crash or power loss may undo the last interval's
        /// acknowledged writes (a node process crash loses nothing).
        #[arg(long, default_value = "sync", value_parser = ["sync", "buffered"])]
        durability: String,
    },
}

/// Options of `quire bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated.
    #[arg(long, default_value = "a,b,c,f")]
    workloads: String,
    /// Key choice: `zipfian` (0.99, hot keys scattered) or `uniform`.
    #[arg(long, default_value = "zipfian", value_parser = ["zipfian", "uniform"])]
    distribution: String,
    /// Records loaded before the runs (and chosen from).
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Concurrent operations.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per workload run.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// `closed` (as fast as possible), `open` (at --rate, latency from each
    /// operation's intended start), or `both` (open at --rate, else at half
    /// the closed-loop throughput just measured).
    #[arg(long, default_value = "both", value_parser = ["closed", "open", "both"])]
    mode: String,
    /// Target operations per second for open loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Start a fresh cluster of this many local node processes (temporary
    /// directories, removed afterwards) instead of using --config.
    #[arg(long, value_name = "N")]
    local_nodes: Option<usize>,
    /// Also measure a store with these N,R,W (e.g. 1,1,1: the cost of
    /// replication against none).
    #[arg(long, value_name = "N,R,W")]
    store_nrw: Option<String>,
    /// Also measure a baseline: `quic-echo` (a bare QUIC server that
    /// answers at once: the transport's ceiling).
    #[arg(long, value_parser = ["quic-echo"])]
    baseline: Option<String>,
    /// Skip loading (the records are there from an earlier run).
    #[arg(long)]
    no_load: bool,
    /// Draw the latency percentiles per workload into this PNG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Seed of the operation mix and key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Node => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quire: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli.command, cli.config, cli.json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire: {e:#}");
            ExitCode::FAILURE
        }
    }
}
