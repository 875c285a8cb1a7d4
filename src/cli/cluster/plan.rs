//! `quire cluster plan`: what the staged changes would move, before they
//! move it.

use super::{describe, Staged};
use crate::cli::output::{line, print, Report};
use crate::cli::ConfigArg;
use anyhow::bail;
use quire::shared::{Membership, NodeId, PreferenceList};
use quire_client::Client;
use serde::Serialize;
use std::collections::BTreeMap;

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

/// Bytes the transfers of `next` carry, estimated from each source's
/// `Stats`: a store's bytes on a node, spread over the partitions the node
/// is a home replica of in that store.
async fn estimate(client: &Client, now: &Membership, next: &Membership) -> u64 {
    let mut per_partition: BTreeMap<(NodeId, String), u64> = BTreeMap::new();
    let mut total = 0;
    for t in next.transfers() {
        let Some(&source) = t.from.first() else {
            continue;
        };
        let key = (source, t.store.clone());
        if !per_partition.contains_key(&key) {
            let bytes = match now.member(source) {
                Some(m) => client.node_stats(m).await.ok().and_then(|s| {
                    s.stores
                        .iter()
                        .find(|s| s.store == t.store)
                        .map(|s| s.bytes)
                }),
                None => None,
            };
            let n = now.store(&t.store).map_or(1, |s| usize::from(s.n));
            let held = (0..now.partitions)
                .filter(|&p| {
                    PreferenceList::walk(&now.owners, p, n)
                        .home()
                        .contains(&source)
                })
                .count()
                .max(1) as u64;
            per_partition.insert(key.clone(), bytes.unwrap_or(0) / held);
        }
        total += per_partition[&key];
    }
    total
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
        bytes_estimate: estimate(client, doc, &next).await,
    };
    staged.planned_on = Some(doc.version());
    staged.save(config)?;
    print(&report, json)
}
