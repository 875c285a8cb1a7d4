//! `quire cluster form ADDR...`: the first membership document of a
//! cluster whose nodes run on hosts of their own.
//!
//! `quire up` forms its local cluster itself. On hosts, the operator
//! starts each node (its `node.toml` names the cluster id from `quire cert
//! init`) and then forms the cluster from the admin's machine: each node
//! is asked who it is (`Hello`), and the document, signed with the admin's
//! key, goes to every node. A node configured for another cluster refuses
//! it; forming again with the same nodes changes nothing.

use crate::cli::output::{line, print, Report};
use quire::admin::{form_cluster, NewCluster, PARTITIONS_DEFAULT};
use quire::cluster::layout::Layout;
use quire::ClientConfig;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long each node has to answer.
const NODE_WAIT: Duration = Duration::from_secs(30);

/// `quire cluster form`.
#[derive(clap::Args, Debug)]
pub struct FormArgs {
    /// Every node's address (HOST:PORT), as clients will reach it.
    #[arg(required = true, value_name = "ADDR")]
    addrs: Vec<String>,
    /// The operator's directory from `quire cert init` (the cluster id is
    /// read from its cluster.toml).
    #[arg(long, default_value = "quire-local")]
    dir: PathBuf,
    /// Partitions of the ring: a power of two, fixed for the cluster's
    /// life.
    #[arg(long, default_value_t = PARTITIONS_DEFAULT)]
    partitions: u32,
}

/// What `cluster form` prints.
#[derive(Serialize)]
struct Formed {
    ok: bool,
    cluster_id: String,
    epoch: u64,
    members: Vec<FormedMember>,
    stores: Vec<String>,
}

#[derive(Serialize)]
struct FormedMember {
    id: String,
    addr: String,
}

impl Report for Formed {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "cluster {} formed at epoch {}: {} nodes, stores {}",
                self.cluster_id,
                self.epoch,
                self.members.len(),
                self.stores.join(", ")
            ),
        );
        for m in &self.members {
            line(out, format_args!("node {}  {}", m.id, m.addr));
        }
    }
}

/// Forms the cluster with the admin identity of `config`.
pub async fn form(args: FormArgs, config: PathBuf, json: bool) -> anyhow::Result<()> {
    let layout = Layout::new(&args.dir);
    let Some(file) = layout.read()? else {
        anyhow::bail!(
            "{} holds no cluster (no cluster.toml): make one with `quire cert init --dir DIR --seed ADDR`",
            args.dir.display()
        );
    };
    if !args.partitions.is_power_of_two() {
        anyhow::bail!(
            "--partitions must be a power of two, not {}",
            args.partitions
        );
    }
    let config = ClientConfig::load(&config)?;
    let new = NewCluster {
        stores: Vec::new(),
        partitions: args.partitions,
    };
    let doc = form_cluster(&config, file.id()?, &args.addrs, new, NODE_WAIT).await?;
    print(
        &Formed {
            ok: true,
            cluster_id: doc.cluster_id.to_string(),
            epoch: doc.epoch,
            members: doc
                .members
                .iter()
                .map(|m| FormedMember {
                    id: m.id.to_string(),
                    addr: m.addr.clone(),
                })
                .collect(),
            stores: doc.stores.iter().map(|s| s.name.clone()).collect(),
        },
        json,
    )
}
