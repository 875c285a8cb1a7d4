//! What each `quire` command does and prints, one module per command group.
//!
//! # Layout
//!
//! - [`data`][data]: `put`, `get`, `delete`, `locate`.
//! - [`admin`][admin]: `status`, `store create`, `maintain`.
//! - [`access`][access]: `cert issue`, `grant`, `revoke`.
//! - [`local`][local]: `up`, `down`, `node`.
//! - [`repair`][repair]: `repair` (anti-entropy).
//! - [`bench`][bench]: `bench`.
//! - [`output`][output]: one printer for text and `--json`.

pub mod access;
pub mod admin;
pub mod bench;
pub mod cluster;
pub mod data;
pub mod expiry;
pub mod issue;
pub mod local;
pub mod output;
pub mod reload;
pub mod repair;
pub mod rotate_ca;

use anyhow::bail;
use clap::Subcommand;
use quire::{Client, ClientConfig};
use std::path::PathBuf;

/// Where client commands look for a config when neither `--config` nor
/// `$QUIRE_CONFIG` names one.
pub const CLIENT_CONFIG_DEFAULT: &str = "quire-local/client.toml";

/// The global `--config FILE`, if given.
pub type ConfigArg = Option<PathBuf>;

/// Every `quire` command.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a local cluster: each node its own process on 127.0.0.1, until
    /// Ctrl-C. The first run creates DIR (CA, certificates, configs); later
    /// runs restart the same cluster with its data.
    Up(local::UpArgs),
    /// Stop the nodes of a local cluster left running (e.g. after `quire up`
    /// was killed), including nodes started by hand with their
    /// `DIR/node-K/node.toml`.
    Down(local::DownArgs),
    /// Run one storage node from its config (`--config node.toml`); the same
    /// as the `quire-node` binary. `quire node new` creates the next node
    /// of a local cluster; `quire node compact` rewrites a stopped node's
    /// data file with full pages.
    Node(local::NodeArgs),
    /// Write VALUE under KEY. Without --context the write is blind: it does
    /// not replace any value already there, they become siblings.
    Put(data::PutArgs),
    /// Read KEY: every sibling value and the context token to write with.
    Get(data::GetArgs),
    /// Delete KEY (writes a tombstone). Without --context the key is read
    /// first and what the read returned is deleted; values written
    /// concurrently, which that read did not see, survive the delete.
    Delete(data::DeleteArgs),
    /// Show the membership epoch, every node (up or down) and the stores.
    Status,
    /// Manage stores (named keyspaces with their own N, R, W and policy).
    #[command(subcommand)]
    Store(admin::StoreCommand),
    /// Deliver hints: objects that stand-ins hold for nodes that were down
    /// go home and are dropped from the stand-ins. Runs every few seconds
    /// until Ctrl-C, or one pass with --once.
    Maintain(admin::MaintainArgs),
    /// Anti-entropy: the home replicas of every partition compare Merkle
    /// digests and exchange only the keys that differ, so replicas that
    /// missed writes converge without the keys being read. Runs every
    /// minute until Ctrl-C, or one pass with --once.
    Repair(repair::RepairArgs),
    /// Measure throughput and tail latency with YCSB-style workloads (A:
    /// 50/50 read/update, B: 95/5, C: read only, F: read/read-modify-write),
    /// against the configured cluster or a fresh local one, with baselines.
    Bench(bench::BenchArgs),
    /// Show KEY's partition and preference list, home replicas first.
    Locate(data::KeyArgs),
    /// Change the cluster's members: stage joins, leaves, replacements and
    /// reweights, `plan` to see what moves, `commit` to start it,
    /// `transfers` to watch the data move.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Certificates: issue identities (node, client, admin) from the
    /// cluster CA, or revoke one.
    #[command(subcommand)]
    Cert(access::CertCommand),
    /// Let a client identity read (--read) or read and write (--write) a
    /// store. Admin only.
    Grant(access::GrantArgs),
    /// Take a client identity's access to a store away. Admin only.
    Revoke(access::RevokeArgs),
}

impl Command {
    /// Worker threads the command's runtime should have, if it says
    /// (`quire bench --threads`); else one per core.
    pub fn runtime_threads(&self) -> Option<usize> {
        match self {
            Command::Bench(args) => args.runtime_threads(),
            _ => None,
        }
    }
}

/// Runs one command.
pub async fn run(command: Command, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => local::up(args, json).await,
        Command::Down(args) => local::down(args, json),
        Command::Node(args) => local::node(args, config, json).await,
        Command::Put(args) => data::put(args, config, json).await,
        Command::Get(args) => data::get(args, config, json).await,
        Command::Delete(args) => data::delete(args, config, json).await,
        Command::Locate(args) => data::locate(args, config, json).await,
        Command::Status => admin::status(config, json).await,
        Command::Store(command) => admin::store(command, config, json).await,
        Command::Maintain(args) => admin::maintain(args, config, json).await,
        Command::Repair(args) => repair::repair(args, config, json).await,
        Command::Bench(args) => bench::bench(args, config, json).await,
        Command::Cluster(command) => cluster::cluster(command, config, json).await,
        Command::Cert(command) => access::cert(command, config, json).await,
        Command::Grant(args) => access::grant(args, config, json).await,
        Command::Revoke(args) => access::revoke(args, config, json).await,
    }
}

/// The client config file in use: `--config`, else `$QUIRE_CONFIG`, else
/// the local cluster's.
fn client_config_path(flag: ConfigArg) -> PathBuf {
    flag.or_else(|| std::env::var_os("QUIRE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(CLIENT_CONFIG_DEFAULT))
}

/// A fresh client from `--config`, else `$QUIRE_CONFIG`, else the local
/// cluster's config.
pub async fn connect(flag: ConfigArg) -> anyhow::Result<Client> {
    let path = client_config_path(flag);
    if !path.exists() {
        bail!(
            "no client config at {}: start a local cluster with `quire up`, or pass --config FILE or set QUIRE_CONFIG",
            path.display()
        );
    }
    let config = ClientConfig::load(&path)?;
    Ok(Client::connect(config).await?)
}
