//! The `quire-node` binary: loads a config and serves until SIGTERM/SIGINT
//! (systemd units run this), or compacts a stopped node's data file.

use clap::{CommandFactory as _, Parser};
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
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// How log lines are written on stderr (filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Without a command the node serves.
#[derive(clap::Subcommand)]
enum Command {
    /// Rewrite the stopped node's data file with full pages, giving the
    /// space it does not need back to the file system.
    ///
    /// LMDB never shrinks its file: space freed by deletes, or by
    /// partitions dropped after a membership change, is otherwise only
    /// reused. The copy is written in key order, checked against the data
    /// file record by record, and then replaces it; an interruption leaves
    /// the old file as it was. Needs free disk space for the copy, up to
    /// the data file's size. Refused while the node (or another process)
    /// has the LMDB environment open, and when run as another user than
    /// its owner.
    Compact,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Some(path) = args.config else {
        Args::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--config <CONFIG> is required",
            )
            .exit()
    };
    quire_node::logging::init(args.log_format, "info");
    let config = match quire_node::config::NodeConfig::load(&path) {
        Ok(config) => config,
        Err(e) => return failed(quire_node::NodeError::from(e)),
    };
    let result = match args.command {
        None => quire_node::runtime(&config)
            .expect("starting the tokio runtime")
            .block_on(async { quire_node::run(config, quire_node::shutdown_signal()).await }),
        Some(Command::Compact) => compact(&config),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

fn compact(config: &quire_node::config::NodeConfig) -> Result<(), quire_node::NodeError> {
    eprintln!("quire-node: compacting {} ...", config.data_dir.display());
    let done =
        quire_node::storage::compact::compact(&config.data_dir, config.storage.map_size_bytes)?;
    println!("{done}");
    Ok(())
}

fn failed(e: quire_node::NodeError) -> std::process::ExitCode {
    eprintln!("quire-node: {e}");
    std::process::ExitCode::FAILURE
}
