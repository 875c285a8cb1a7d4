//! A cluster on this machine: `up`, `down`, and `node` (one storage node in
//! the foreground, as the systemd unit runs it).

use super::output::{line, print, Report};
use super::{ConfigArg, CLIENT_CONFIG_DEFAULT};
use anyhow::{anyhow, Context as _};
use quire::local::{self, UpOptions};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `quire up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Number of nodes (default 3 for a new cluster; an existing one keeps
    /// its count).
    #[arg(long)]
    nodes: Option<usize>,
    /// The cluster directory.
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
    /// Node K listens on port P+K-1 (default 7400 for a new cluster); 0
    /// lets each node pick a free port.
    #[arg(long, value_name = "P")]
    base_port: Option<u16>,
}

/// `quire down`.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// The cluster directory.
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
}

/// What `down` prints.
#[derive(Serialize)]
struct Stopped {
    ok: bool,
    stopped: usize,
    #[serde(skip)]
    dir: PathBuf,
}

impl Report for Stopped {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "stopped {} node process(es) of {}",
                self.stopped,
                self.dir.display()
            ),
        );
    }
}

/// `quire down`.
pub fn down(args: DownArgs, json: bool) -> anyhow::Result<()> {
    let stopped = local::down(&args.dir)?;
    print(
        &Stopped {
            ok: true,
            stopped,
            dir: args.dir,
        },
        json,
    )
}

/// `quire node`.
pub async fn node(args: NodeArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    if let Some(NodeCommand::New(new)) = args.command {
        return node_new(new, json);
    }
    let path = config.ok_or_else(|| anyhow!("`quire node` needs --config NODE.toml"))?;
    let node_config = quire_node::config::NodeConfig::load(&path)?;
    if let Some(NodeCommand::Compact) = args.command {
        let (dir, map_size) = (node_config.data_dir, node_config.storage.map_size_bytes);
        let done = tokio::task::spawn_blocking(move || {
            quire_node::storage::compact::compact(&dir, map_size)
        })
        .await??;
        return print(&Compaction(done), json);
    }
    // On a runtime of its own, with the threads its config asks for; this
    // command's runtime only waits for it.
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let runtime = quire_node::runtime(&node_config)?;
        runtime.block_on(quire_node::run(node_config, quire_node::shutdown_signal()))?;
        Ok(())
    })
    .await??;
    Ok(())
}

/// `quire node [new]`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: Option<NodeCommand>,
}

/// `quire node new`.
#[derive(clap::Subcommand, Debug)]
pub enum NodeCommand {
    /// Create the next node of a local cluster: DIR/node-K with a
    /// certificate from the cluster CA and a node.toml on 127.0.0.1 at the
    /// cluster's base port + K - 1. It is neither started nor joined:
    /// start it (`quire node --config DIR/node-K/node.toml`, or a later
    /// `quire up --dir DIR`), then `quire cluster join ADDR`.
    New(NewNodeArgs),
    /// Rewrite a stopped node's data file (`--config NODE.toml`) with full
    /// pages, giving the space it does not need back to the file system.
    ///
    /// LMDB never shrinks its file: space freed by deletes, or by
    /// partitions dropped after a membership change, is otherwise only
    /// reused. The copy is written in key order, checked against the data
    /// file record by record, and then replaces it; an interruption leaves
    /// the old file as it was. Needs free disk space for the copy, up to
    /// the data file's size. Refused while the node (or another process)
    /// has the LMDB environment open, and when run as another user than
    /// its owner. Same as `quire-node --config NODE.toml compact`.
    Compact,
}

/// What `node compact` prints.
#[derive(Serialize)]
#[serde(transparent)]
struct Compaction(quire_node::storage::compact::Compacted);

impl Report for Compaction {
    fn text(&self, out: &mut String) {
        line(out, format_args!("{}", self.0));
    }
}

/// `quire node new`.
#[derive(clap::Args, Debug)]
pub struct NewNodeArgs {
    /// The cluster directory.
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
    /// The zone to join it with (printed in the join command).
    #[arg(long, default_value = "local")]
    zone: String,
    /// The weight to join it with (printed in the join command).
    #[arg(long, default_value_t = 1)]
    weight: u32,
}

/// What `node new` prints.
#[derive(Serialize)]
struct NewNode {
    config: String,
    addr: String,
    join: String,
}

impl Report for NewNode {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!("created {} (listens on {})", self.config, self.addr),
        );
        line(
            out,
            format_args!(
                "start it: quire node --config {}   (or restart `quire up`)",
                self.config
            ),
        );
        line(out, format_args!("then:     {}", self.join));
    }
}

fn node_new(args: NewNodeArgs, json: bool) -> anyhow::Result<()> {
    let layout = quire::cluster::layout::Layout::new(&args.dir);
    let (k, addr) = layout.add_node()?;
    let report = NewNode {
        config: layout.node_config(k).display().to_string(),
        addr: addr.to_string(),
        join: format!(
            "quire cluster join {addr} --zone {} --weight {}",
            args.zone, args.weight
        ),
    };
    print(&report, json)
}

/// A member as `up` announces it.
#[derive(Serialize)]
struct MemberView {
    id: String,
    addr: String,
}

/// What `up` prints once every node serves.
#[derive(Serialize)]
struct Ready {
    ready: bool,
    epoch: u64,
    nodes: Vec<MemberView>,
    client_config: String,
    #[serde(skip)]
    stores: Vec<String>,
    #[serde(skip)]
    export: Option<String>,
}

impl Report for Ready {
    fn text(&self, out: &mut String) {
        let addrs: Vec<&str> = self.nodes.iter().map(|m| m.addr.as_str()).collect();
        line(
            out,
            format_args!(
                "quire: cluster ready: {} nodes ({}), epoch {}",
                self.nodes.len(),
                addrs.join(", "),
                self.epoch
            ),
        );
        for s in &self.stores {
            line(out, format_args!("  store {s}"));
        }
        if let Some(path) = &self.export {
            line(out, format_args!("  clients: export QUIRE_CONFIG={path}"));
        }
        line(
            out,
            format_args!("  try: quire put default hello world && quire get default hello"),
        );
        line(
            out,
            format_args!(
                "  Ctrl-C stops every node; `quire up` again restarts them with their data."
            ),
        );
    }
}

/// `quire up`: runs until Ctrl-C.
pub async fn up(args: UpArgs, json: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the quire executable")?;
    let options = UpOptions {
        dir: args.dir.clone(),
        nodes: args.nodes,
        base_port: args.base_port,
        exe,
    };
    let ready = |doc: &quire::Membership, layout: &quire::cluster::layout::Layout| {
        let client_config = layout.client_config();
        let export = (client_config != Path::new(CLIENT_CONFIG_DEFAULT)).then(|| {
            std::path::absolute(&client_config)
                .unwrap_or(client_config.clone())
                .display()
                .to_string()
        });
        let ready = Ready {
            ready: true,
            epoch: doc.epoch,
            nodes: doc
                .members
                .iter()
                .map(|m| MemberView {
                    id: m.id.to_string(),
                    addr: m.addr.clone(),
                })
                .collect(),
            client_config: client_config.display().to_string(),
            stores: doc
                .stores
                .iter()
                .map(|s| format!("{} (n={}, r={}, w={})", s.name, s.n, s.r, s.w))
                .collect(),
            export,
        };
        if let Err(e) = print(&ready, json) {
            eprintln!("quire: {e:#}");
        }
    };
    local::up(options, quire_node::shutdown_signal(), ready).await?;
    if !json {
        println!("quire: stopped every node of {}", args.dir.display());
    }
    Ok(())
}
