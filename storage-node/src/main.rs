//! The `quire-node` binary: loads a config and serves until SIGTERM/SIGINT.
//! systemd units run this.

use clap::Parser;
use std::path::PathBuf;

/// A Quire storage node: versioned objects in LMDB, served over QUIC with
/// mutual TLS. Stops cleanly on SIGTERM or SIGINT.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Path of the node's TOML config (listen address, data directory, TLS
    /// files, limits).
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = quire_node::config::NodeConfig::load(&args.config)
        .map_err(quire_node::NodeError::from)
        .and_then(|config| {
            tokio::runtime::Runtime::new()
                .expect("starting the tokio runtime")
                .block_on(quire_node::run(config, quire_node::shutdown_signal()))
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire-node: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
