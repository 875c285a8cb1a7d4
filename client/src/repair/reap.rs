//! Tombstone reaping, run after a partition's exchange: deleted keys that
//! every home replica holds identically, past the store's grace period,
//! are removed from each of them.
//!
//! The rules are [`quire_shared::reap`]'s; this file asks the nodes. Phase
//! one ([`Client::plan_reaping`]) scans every home replica's tombstone-only
//! keys of the partition and keeps the keys [`reap::decide`] allows: a
//! home replica that does not answer, or whose scan does not finish,
//! blocks the whole partition, and so does a membership change moving
//! the partition (its incoming replicas are not yet home). Phase two
//! ([`Client::reap`]) sends `DeleteIfEqual` with the object seen to each home replica in turn;
//! a replica written to since keeps the key, and the key's reaping stops
//! there (the replicas already asked get the write back from the next
//! exchange; those not asked yet keep their tombstone).
//!
//! Cost: nothing when no home replica holds a tombstone in the partition
//! (each node keeps the count beside its Merkle segments and sends it with
//! the root). Otherwise one scan of the partition on each home replica:
//! the node reads every key of the partition but answers with the
//! tombstones only, so the bytes grow with the tombstones, not the data.

use super::scan::scan;
use super::{homes, RepairReport};
use crate::client::Client;
use quire_shared::reap;
use quire_shared::wire::{Reply, Request};
use quire_shared::{Member, Object};
use std::collections::BTreeMap;

/// The keys of one (store, partition) that phase one found reapable, and
/// the object each home replica was seen to hold for each.
#[derive(Clone, Debug, Default)]
pub struct ReapPlan {
    /// Store name.
    store: String,
    /// The home replicas that agreed, in preference-list order.
    homes: Vec<Member>,
    /// `(key, object)` in key order.
    keys: Vec<(Vec<u8>, Object)>,
}

impl ReapPlan {
    /// The keys phase two will ask the home replicas to remove.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(k, _)| k.as_slice())
    }

    /// The home replicas phase two asks, in this order.
    pub fn homes(&self) -> &[Member] {
        &self.homes
    }

    /// True when there is nothing to reap.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Client {
    /// Phase one of reaping `store`'s `partition` at wall-clock time
    /// `now_ms`: the tombstone-only keys every home replica holds
    /// identically, the newest tombstone older than the store's
    /// `tombstone_grace_ms`. Empty when a home replica could not be
    /// scanned (reported in `report.unreachable`) or the store is unknown.
    pub async fn plan_reaping(
        &self,
        store: &str,
        partition: u32,
        now_ms: u64,
        report: &mut RepairReport,
    ) -> ReapPlan {
        let doc = self.membership();
        let Some(config) = doc.store(store).cloned() else {
            return ReapPlan::default();
        };
        let homes = homes(&doc, &config, partition);
        let n = usize::from(config.n);
        // While a membership change moves the partition, its incoming
        // replicas may hold an older copy of a deleted key; reaping the
        // home replicas' tombstones then would let that copy come back.
        if homes.len() < n || !doc.incoming(partition, n).is_empty() {
            return ReapPlan::default();
        }
        let mut held: BTreeMap<Vec<u8>, Vec<Option<Object>>> = BTreeMap::new();
        for (i, node) in homes.iter().enumerate() {
            let scan = scan(self, node, (store, partition), (&[], true), report).await;
            if !scan.complete {
                // A key this replica holds past where its scan stopped may
                // differ: nothing of the partition is reaped on a guess.
                return ReapPlan::default();
            }
            for e in scan.entries {
                held.entry(e.key).or_insert_with(|| vec![None; homes.len()])[i] = Some(e.object);
            }
        }
        let grace_ms = config.limits.tombstone_grace_ms;
        let keys = held
            .into_iter()
            .filter_map(|(key, copies)| {
                let copies: Vec<Option<&Object>> = copies.iter().map(Option::as_ref).collect();
                let seen = reap::decide(&copies, n, grace_ms, now_ms).ok()?.clone();
                Some((key, seen))
            })
            .collect();
        ReapPlan {
            store: store.to_owned(),
            homes,
            keys,
        }
    }

    /// Phase two: asks each home replica to remove each planned key if it
    /// still holds the object phase one saw. A key removed from every home
    /// replica is counted in `report.tombstones_reaped`.
    pub async fn reap(&self, plan: &ReapPlan, report: &mut RepairReport) {
        for (key, seen) in &plan.keys {
            let request = Request::DeleteIfEqual {
                store: plan.store.clone(),
                key: key.clone(),
                object: seen.clone(),
            };
            let mut removed = 0;
            for node in &plan.homes {
                match self.repair_call(node, &request, report).await {
                    Ok(Reply::Deleted(true)) => removed += 1,
                    // Written to since phase one: the key lives on, and
                    // the replicas not asked yet keep their tombstone.
                    Ok(Reply::Deleted(false)) => break,
                    other => {
                        report.failed(node, other);
                        break;
                    }
                }
            }
            report.tombstones_reaped += u64::from(removed == plan.homes.len());
        }
    }
}
