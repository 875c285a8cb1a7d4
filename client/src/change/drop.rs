//! After a change has flipped: each old owner's copy of a partition it no
//! longer holds for anyone is handed off, then dropped.
//!
//! For every member and every partition it is not a home (or incoming)
//! replica of, the member's Merkle root says whether it holds anything
//! there. If it does, one exchange between it and the partition's home
//! replicas gives the homes whatever only the old copy has (a write that
//! reached the old owner late, say), and then `DropPartition` removes the
//! copy a batch at a time. Nothing is dropped from a node whose exchange
//! did not hear from every home replica.
//!
//! The maintenance loop runs this once per membership epoch, a grace
//! period after the epoch appeared, so that clients still on the older
//! document have had time to learn the new one.

use crate::client::Client;
use crate::repair::{RepairReport, Replicas};
use quire_shared::merkle::Segments;
use quire_shared::wire::{Reply, Request};
use quire_shared::{Member, Membership};

/// What a hand-off-and-drop sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropReport {
    /// Partitions dropped from nodes that no longer hold them for anyone.
    pub partitions_dropped: u64,
    /// Keys those drops removed.
    pub keys_dropped: u64,
    /// Keys the hand-off exchanges gave the home replicas.
    pub keys_handed_off: u64,
    /// Nodes that could not be asked, or whose copies were kept because an
    /// exchange did not hear from every home replica.
    pub unreachable: Vec<String>,
}

impl Client {
    /// Hands off and drops every copy a member holds of a partition it is
    /// no longer a home replica of. Does nothing while a change is moving
    /// data (its old owners still serve).
    pub async fn hand_off_and_drop(&self) -> DropReport {
        hand_off_and_drop(self, &self.membership()).await
    }
}

/// [`Client::hand_off_and_drop`] under `doc`, against the repair seam (the
/// simulation runs it too).
pub(crate) async fn hand_off_and_drop(replicas: &impl Replicas, doc: &Membership) -> DropReport {
    let mut report = DropReport::default();
    if doc.pending.is_some() {
        return report;
    }
    let empty = Segments::default().root();
    for member in &doc.members {
        if !replicas.believed_up(member.id) {
            report
                .unreachable
                .push(format!("{}: down; its copies wait", member.addr));
            continue;
        }
        for store in &doc.stores {
            let n = usize::from(store.n);
            for partition in 0..doc.partitions {
                if doc.is_home_or_incoming(member.id, partition, n) {
                    continue;
                }
                let root = Request::MerkleRoot {
                    store: store.name.clone(),
                    partition,
                };
                let mut exchange = RepairReport::default();
                let seen = match replicas.call(member, &root, &mut exchange).await {
                    Ok(Reply::MerkleRoot(d)) if d.root == empty => continue,
                    Ok(Reply::MerkleRoot(d)) => d.root,
                    other => {
                        report
                            .unreachable
                            .push(format!("{}: {other:?}", member.addr));
                        break;
                    }
                };
                let mut nodes: Vec<Member> = doc
                    .preference_list_of(partition, n)
                    .iter()
                    .filter_map(|id| doc.member(*id).cloned())
                    .collect();
                nodes.push(member.clone());
                let outcome = crate::repair::exchange(
                    replicas,
                    store,
                    partition,
                    &nodes,
                    Some(member.id),
                    &mut exchange,
                )
                .await;
                report.keys_handed_off += exchange.keys_repaired;
                if !outcome.complete {
                    report.unreachable.extend(exchange.unreachable);
                    continue;
                }
                // Only the copy the exchange compared may go: the
                // node refuses if it changed since (a late write).
                drop_copy(
                    replicas,
                    member,
                    (&store.name, partition),
                    seen,
                    &mut report,
                )
                .await;
            }
        }
    }
    report
}

/// `DropPartition` until the member holds nothing of the partition,
/// each batch naming the root the copy must still have.
async fn drop_copy(
    replicas: &impl Replicas,
    member: &Member,
    (store, partition): (&str, u32),
    mut root: [u8; 16],
    report: &mut DropReport,
) {
    loop {
        let request = Request::DropPartition {
            store: store.to_owned(),
            partition,
            root,
        };
        let mut bytes = RepairReport::default();
        match replicas.call(member, &request, &mut bytes).await {
            Ok(Reply::PartitionDropped {
                keys,
                more,
                root: after,
            }) => {
                report.keys_dropped += keys;
                root = after;
                if !more {
                    report.partitions_dropped += 1;
                    return;
                }
            }
            other => {
                report
                    .unreachable
                    .push(format!("{}: {other:?}", member.addr));
                return;
            }
        }
    }
}
