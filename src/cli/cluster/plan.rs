//! `quire cluster plan`: what the staged changes would move, before they
//! move it.

use super::{describe, Staged};
use crate::cli::output::{line, print, Report};
use crate::cli::ConfigArg;
use anyhow::bail;
use quire::shared::Membership;
use quire_client::Client;
use serde::Serialize;

/// A partition changing owner.
#[derive(Serialize)]
struct Move {
    partition: u32,
    from: String,
    to: String,
}

/// A node before and after the change.
#[derive(Serialize)]
struct NodePlan {
    id: String,
    addr: String,
    state: &'static str,
    partitions_now: usize,
    partitions_after: usize,
}

/// What `plan` prints.
#[derive(Serialize)]
struct Plan {
    /// The epoch planned on (a commit needs the cluster still there).
    epoch: u64,
    changes: Vec<String>,
    moves: Vec<Move>,
    nodes: Vec<NodePlan>,
    /// (store, partition, incoming replica) copies to make.
    transfers: usize,
    /// Bytes those copies carry, estimated from each source's totals
    /// (`Stats`) spread evenly over the partitions it holds.
    bytes_estimate: u64,
}

impl Report for Plan {
    fn text(&self, out: &mut String) {
        line(out, format_args!("plan on epoch {}:", self.epoch));
        for c in &self.changes {
            line(out, format_args!("  {c}"));
        }
        for m in &self.moves {
            line(
                out,
                format_args!("partition {:>5}: {} -> {}", m.partition, m.from, m.to),
            );
        }
        for n in &self.nodes {
            line(
                out,
                format_args!(
                    "node {}  {:<21}  {:<7}  {} -> {} partitions",
                    n.id, n.addr, n.state, n.partitions_now, n.partitions_after
                ),
            );
        }
        line(
            out,
            format_args!(
                "{} partitions change owner; {} transfers, about {} bytes to move; `quire cluster commit` starts it",
                self.moves.len(),
                self.transfers,
                self.bytes_estimate
            ),
        );
    }
}

/// `quire cluster plan`: shows the plan and records what it was made on.
pub(crate) async fn plan(
    client: &Client,
    doc: &Membership,
    config: &ConfigArg,
    json: bool,
) -> anyhow::Result<()> {
    let mut staged = Staged::load(config)?;
    if staged.changes.is_empty() {
        bail!("nothing is staged: stage changes with `quire cluster join|leave|replace|reweight`");
    }
    let next = doc.plan(&staged.changes)?;
    let moves = match &next.pending {
        Some(p) => doc
            .owners
            .iter()
            .zip(&p.owners)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| Move {
                partition: i as u32,
                from: a.to_string(),
                to: b.to_string(),
            })
            .collect(),
        None => Vec::new(),
    };
    let nodes = next
        .members
        .iter()
        .map(|m| {
            let (now, after) = next.partitions_owned(m.id);
            NodePlan {
                id: m.id.to_string(),
                addr: m.addr.clone(),
                state: next.state_of(m.id).name(),
                partitions_now: now,
                partitions_after: after,
            }
        })
        .collect();
    let report = Plan {
        epoch: doc.epoch,
        changes: staged.changes.iter().map(describe).collect(),
        moves,
        nodes,
        transfers: next.transfers().len(),
        bytes_estimate: client.estimate_transfer_bytes(&next).await,
    };
    staged.planned_on = Some(doc.version());
    staged.save(config)?;
    print(&report, json)
}
