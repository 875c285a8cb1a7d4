//! The checkers: what must hold in every world, whatever its faults.
//!
//! While the world runs, after every input:
//!
//! - the machines' own invariants (`debug_assert!`s: no node counted
//!   twice, no more answers than replicas, one outcome), live in the debug
//!   builds `cargo test` runs;
//! - every request goes where it may ([`request_fits`]): a home replica
//!   without a hint, an incoming replica a plain copy of a put's object,
//!   anyone else only as a stand-in for a home replica;
//! - a successful put was stored by `W` distinct nodes, each of which
//!   really stored an object covering the acknowledged one
//!   ([`put_outcome`]); a successful get is the sync of `R` real answers
//!   ([`get_outcome`]); each operation decides once, by its deadline, and
//!   never hangs (in `ops.rs`);
//! - no dot is issued twice, and a replica's copy never goes back in time
//!   (in `history.rs` and `node.rs`).
//!
//! Once faults have stopped and repair has run:
//!
//! - every home replica of a key holds the same DVVSet, and no hint is
//!   left undelivered ([`converged`]);
//! - a membership change has flipped, and no node holds a copy of a
//!   partition it no longer owns ([`no_stray_copies`]);
//! - in a siblings store, no acknowledged write is lost: its value is
//!   there, or a write that had seen it replaced it, or a fault that loses
//!   data destroyed every copy of it ([`writes_survive`]). A
//!   last-write-wins store may drop acknowledged writes by design; they
//!   are counted, not failed.

use super::client::Op;
use super::history::{dots_of, History};
use super::node::{Key, SimNode};
use super::runner::Stats;
use super::trace::{ShowOpt, N};
use crate::quorum::get::GetOutcome;
use crate::quorum::put::PutOutcome;
use quire_shared::wire::Request;
use quire_shared::{ConflictPolicy, Membership, NodeId, Object, PreferenceList};
use std::collections::BTreeMap;

/// True when `node` may be sent `request` for a key with `list` (the
/// list its operation was planned with) and `incoming` replicas: home
/// replicas are asked plainly, incoming ones get plain `Replicate`s (a
/// put's copies while a change moves the key), other nodes are asked only
/// as stand-ins for a home replica.
pub fn request_fits(
    (list, incoming): (&PreferenceList, &[NodeId]),
    node: NodeId,
    request: &Request,
) -> Result<(), String> {
    if incoming.contains(&node) {
        return match request {
            Request::Replicate { hint: None, .. } => Ok(()),
            other => Err(format!(
                "{} sent to incoming replica {}",
                other.kind(),
                N(node)
            )),
        };
    }
    let hint = match request {
        Request::Get { hint, .. } | Request::Put { hint, .. } | Request::Replicate { hint, .. } => {
            *hint
        }
        other => return Err(format!("a machine sent {}", other.kind())),
    };
    let home = list.home();
    match hint {
        None if home.contains(&node) => Ok(()),
        Some(h) if !home.contains(&node) && home.contains(&h) => Ok(()),
        _ => Err(format!(
            "{} {} sent to {} with hint {:?}, home replicas {:?}",
            request.kind(),
            if hint.is_some() {
                "as a stand-in"
            } else {
                "plainly"
            },
            N(node),
            hint.map(|h| h.get()),
            home.iter().map(|n| n.get()).collect::<Vec<_>>()
        )),
    }
}

/// A successful put was stored by at least `w` distinct nodes, and each
/// one it names answered a request of this put with a copy covering the
/// acknowledged object.
pub fn put_outcome(op: &Op, out: &PutOutcome, w: usize) -> Result<(), String> {
    let nodes = &out.stored_on;
    if (1..nodes.len()).any(|i| nodes[..i].contains(&nodes[i])) {
        return Err(format!("a node acknowledged twice: {nodes:?}"));
    }
    if nodes.len() < w {
        return Err(format!("put succeeded with {} acks for W={w}", nodes.len()));
    }
    for &node in nodes {
        let stored = op.stored.iter().any(|(n, held)| {
            *n == node && (out.object.less(held) || out.object.equal_history(held))
        });
        if !stored {
            return Err(format!(
                "put counted {} as storing what it never stored",
                N(node)
            ));
        }
    }
    Ok(())
}

/// A successful get heard at least `r` distinct nodes, each answer one
/// that node really gave this get, and its object is their sync.
pub fn get_outcome(op: &Op, out: &GetOutcome, r: usize) -> Result<(), String> {
    let nodes: Vec<NodeId> = out.replies.iter().map(|(n, _)| *n).collect();
    if (1..nodes.len()).any(|i| nodes[..i].contains(&nodes[i])) {
        return Err(format!("a node counted twice: {nodes:?}"));
    }
    if nodes.len() < r {
        return Err(format!(
            "get succeeded with {} answers for R={r}",
            nodes.len()
        ));
    }
    for (node, copy) in &out.replies {
        if !op.read.iter().any(|(n, c)| n == node && c == copy) {
            return Err(format!("get reports an answer {} never gave", N(*node)));
        }
    }
    let synced = out
        .replies
        .iter()
        .filter_map(|(_, o)| o.as_ref())
        .fold(Object::new(), |acc, o| acc.sync(o));
    if out.object != synced {
        return Err("get's object is not the sync of its answers".into());
    }
    Ok(())
}

/// Every home replica of each key holds the same copy, and no node holds
/// a hint. Returns each key's converged copy.
pub fn converged(
    nodes: &[SimNode],
    lists: &BTreeMap<Key, PreferenceList>,
) -> Result<BTreeMap<Key, Option<Object>>, String> {
    let mut finals = BTreeMap::new();
    for (key, list) in lists {
        let copies: Vec<(NodeId, Option<&Object>)> = list
            .home()
            .iter()
            .map(|&n| (n, nodes[n.get() as usize - 1].disk.data.get(key)))
            .collect();
        if copies.iter().any(|(_, c)| *c != copies[0].1) {
            let shown: Vec<String> = copies
                .iter()
                .map(|(n, c)| format!("{} {}", N(*n), ShowOpt(*c)))
                .collect();
            return Err(format!(
                "home replicas of {} differ after repair: {}",
                String::from_utf8_lossy(key),
                shown.join("; ")
            ));
        }
        finals.insert(key.clone(), copies[0].1.cloned());
    }
    for node in nodes {
        if let Some(((home, key), _)) = node.disk.hints.iter().next() {
            return Err(format!(
                "{} still holds a hint of {} for {} after repair",
                N(node.id),
                String::from_utf8_lossy(key),
                N(*home)
            ));
        }
    }
    Ok(finals)
}

/// After a membership change flipped and old copies were dropped, no
/// node holds a key it is not a home replica of.
pub fn no_stray_copies(nodes: &[SimNode], doc: &Membership) -> Result<(), String> {
    let n = usize::from(doc.stores[0].n);
    for node in nodes {
        for key in node.disk.data.keys() {
            let partition = doc.partition_of(super::STORE, key);
            if !doc.is_home_or_incoming(node.id, partition, n) {
                return Err(format!(
                    "{} still holds {} after its partition moved away (epoch {})",
                    N(node.id),
                    String::from_utf8_lossy(key),
                    doc.epoch
                ));
            }
        }
    }
    Ok(())
}

/// No acknowledged write of a siblings store is lost (see the module
/// doc); counts what became of each acknowledged write.
pub fn writes_survive(
    history: &History,
    finals: &BTreeMap<Key, Option<Object>>,
    policy: ConflictPolicy,
    stats: &mut Stats,
) -> Result<(), String> {
    for (id, w) in history.writes.iter().enumerate() {
        let Some(dot) = w.acked else { continue };
        stats.acked += 1;
        let empty = Object::new();
        let last = finals[&w.key].as_ref().unwrap_or(&empty);
        if let Some((_, value)) = dots_of(last).find(|(d, _)| *d == dot) {
            if value.data != w.value.data {
                return Err(format!("w{id}'s dot holds another value at the end"));
            }
            stats.present += 1;
            continue;
        }
        let covered = last.join().get(dot.0) >= dot.1;
        if covered && history.superseded(&w.key, dot) {
            stats.superseded += 1;
        } else if history.lost(&w.key, dot) {
            stats.lost_to_faults += 1;
        } else if policy == ConflictPolicy::Lww {
            stats.lww_discarded += 1;
        } else {
            return Err(format!(
                "acknowledged write w{id} (client c{}, key {}, dot a{}:{}) is lost: the final copy {} {}",
                w.client,
                String::from_utf8_lossy(&w.key),
                dot.0.get(),
                dot.1,
                ShowOpt(Some(last)),
                if covered {
                    "has seen its dot, but no write replaced it"
                } else {
                    "has never seen its dot"
                }
            ));
        }
    }
    Ok(())
}
