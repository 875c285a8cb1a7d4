//! The `quire-node` binary: loads a config and serves until SIGTERM/SIGINT.
//! systemd units run this.

use clap::Parser;
use quire_node::logging::LogFormat;
use std::path::PathBuf;

/// mimalloc instead of the system allocator, as in the `quire` binary
/// (which says why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Quire storage node: versioned objects in LMDB, served over QUIC with
/// mutual TLS. Stops cleanly on SIGTERM or SIGINT.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Path of the node's TOML config (listen address, data directory, TLS
    /// files, limits).
    #[arg(long, short)]
    config: PathBuf,
    /// How log lines are written on stderr (filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    quire_node::logging::init(args.log_format, "info");
    let result = quire_node::config::NodeConfig::load(&args.config)
        .map_err(quire_node::NodeError::from)
        .and_then(|config| {
            quire_node::runtime(&config)
                .expect("starting the tokio runtime")
                .block_on(async { quire_node::run(config, quire_node::shutdown_signal()).await })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
