//! The `quire` command line: run a local cluster, read and write keys,
//! inspect the cluster. Every command takes `--json` for scripts.

mod cli;

/// mimalloc instead of the system allocator, for the nodes and the CLI
/// (an application linking the SDK chooses its own). The data path
/// allocates and frees a few buffers per request at both ends: in a
/// profile of the benchmark client glibc's malloc and free took about
/// 16 % of its CPU, and with mimalloc workload C ran 1.1 to 1.3x faster in
/// three alternating rounds (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use cli::Command;
use quire_node::logging::LogFormat;
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
    /// How log lines are written on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Node(_) => "info",
        _ => "warn",
    };
    quire_node::logging::init(cli.log_format, default_level);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.command.runtime_threads() {
        builder.worker_threads(threads);
    }
    let runtime = match builder.build() {
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
