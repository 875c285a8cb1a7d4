//! Membership change, the SDK's side: writes reach incoming replicas,
//! maintenance moves the data, and the change flips when it has moved.
//!
//! A committed change leaves `pending` owners in the membership document
//! ([`quire_shared::membership`]). While it is there:
//!
//! - every successful write is also sent (`Replicate`, in the background,
//!   not counted towards `W`) to the key's incoming replicas, so a copy
//!   made by a transfer does not fall behind the writes that follow it;
//! - maintenance ([`Client::transfer_step`], run by `quire maintain`, the
//!   loop of `quire up` and any application's maintenance task) copies
//!   each partition from a current home replica to each incoming one, a
//!   page at a time, recording progress on the receiver so that whoever
//!   runs the transfer next resumes where it stopped;
//! - once every transfer is done, one exchange per moving partition
//!   between its current and incoming replicas repairs whatever a page
//!   raced with, and the change flips: a new epoch with the pending owners
//!   as owners (compare-and-set, so of two clients flipping one wins and
//!   the other finds it done).
//!
//! Reads use the current owners until the flip, so a transfer in progress
//! is never read from.
//!
//! # Layout
//!
//! - this file: copies of writes to incoming replicas;
//! - `transfer`: transfer steps, the closing exchanges and the flip;
//! - `pages`: one transfer's pages, written against the repair seam so
//!   the simulation runs them too;
//! - `drive`: an operator's "move now" (`quire cluster transfers --wait`):
//!   several transfers at once, no pause while they make progress;
//! - `report`: where the transfers stand (rate, time left);
//! - `slot`: a transfer's slot on its receiver, which limits the
//!   partitions a node receives at once;
//! - `drop`: after the flip, old owners' copies handed off and dropped.

mod drive;
mod drop;
mod pages;
mod queue;
mod report;
mod slot;
mod transfer;

pub use drive::{DEFAULT_PARALLEL_TRANSFERS, MAX_PARALLEL_TRANSFERS};
pub use drop::DropReport;
pub use report::{TransferReport, TransferStatus};
#[cfg(test)]
pub(crate) use {
    drop::hand_off_and_drop,
    pages::{progress_of, run_transfer},
    slot::Stalled,
    transfer::closing_nodes,
};

use crate::client::Client;
use quire_shared::wire::{NodeStats, Reply, Request};
use quire_shared::{Member, Membership, NodeId, Object};
use std::sync::Arc;

/// The copies of a written object a pending change needs: a `Replicate`
/// to each incoming replica of the key (none, almost always: nothing is
/// moving, and the put path does no hashing then).
pub(crate) fn incoming_copies(
    doc: &Membership,
    store: &str,
    key: &[u8],
    object: &Object,
) -> Vec<(NodeId, Request)> {
    let Some(config) = doc.store(store).filter(|_| doc.pending.is_some()) else {
        return Vec::new();
    };
    let partition = doc.partition_of(store, key);
    doc.incoming(partition, usize::from(config.n))
        .into_iter()
        .map(|node| {
            let request = Request::Replicate {
                store: store.to_owned(),
                key: key.to_vec(),
                object: object.clone(),
                hint: None,
            };
            (node, request)
        })
        .collect()
}

impl Client {
    /// Sends a written object to the key's incoming replicas, if a change
    /// is moving its partition: in the background (a short-lived process
    /// waits for it in [`Client::settle`]), never counted towards `W`. A
    /// copy that fails is made up for by the transfer's closing exchange.
    pub(crate) fn copy_to_incoming(
        &self,
        doc: &Arc<Membership>,
        store: &str,
        key: &[u8],
        object: &Object,
    ) {
        for (node, request) in incoming_copies(doc, store, key, object) {
            let Some(member) = doc.member(node) else {
                continue;
            };
            let (client, addr) = (self.clone(), member.addr.clone());
            let working = self.inner.background.enter();
            tokio::spawn(async move {
                let _working = working;
                let answer = client
                    .transport()
                    .call(&addr, &request, client.request_timeout())
                    .await;
                client.observe(node, answer.as_ref());
                if !matches!(answer.map(|r| r.result), Ok(Ok(Reply::Stored(_)))) {
                    tracing::debug!(%addr, "copy to an incoming replica failed; the transfer's exchange makes up for it");
                }
            });
        }
    }

    /// A node's totals (`Stats`): objects, bytes and tombstones per store,
    /// hints held. What `quire cluster plan` estimates transfers from.
    pub async fn node_stats(&self, node: &Member) -> Result<NodeStats, String> {
        match crate::repair::Replicas::ask(self, node, &Request::Stats).await {
            Ok(Reply::Stats(stats)) => Ok(stats),
            Ok(other) => Err(format!("{}: unexpected answer {other:?}", node.addr)),
            Err(e) => Err(format!("{}: {e}", node.addr)),
        }
    }
}
