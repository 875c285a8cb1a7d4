//! Membership change, the SDK's side: writes reach incoming replicas,
//! maintenance moves the data, and the change flips when it has moved.
//!
//! A committed change leaves `pending` owners in the membership document
//! ([`quire_shared::membership`]). While it is there:
//!
//! - every write is also sent to the key's incoming replicas, so a copy
//!   made by a transfer does not fall behind the writes that follow it,
//!   and succeeds only once `W` of its copies stand for the owners to come
//!   as well as `W` for the current ones, when the incoming replicas can
//!   take it (`quorum::put::Moving`): a read of the new owners
//!   right after the flip then meets every acknowledged write;
//! - maintenance ([`Client::transfer_step`], run by the loop of `quire
//!   up` and any application's `spawn_maintenance`) copies
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
//! - this file: the module's parts and a node's totals;
//! - `transfer`: transfer steps, the closing exchanges and the flip;
//! - `pages`: one transfer's pages, written against the repair seam so
//!   the simulation runs them too;
//! - `drive`: an operator's "move now" (`quire cluster transfers --wait`):
//!   several transfers at once, at the operator's byte rate;
//! - `pace`: the byte rate a client's transfers share, and their pages;
//! - `report`: where the transfers stand (rate, time left);
//! - `slot`: a transfer's slot on its receiver, which limits the
//!   partitions a node receives at once;
//! - `drop`: after the flip, old owners' copies handed off and dropped.

mod drive;
mod drop;
mod pace;
mod pages;
mod queue;
mod report;
mod slot;
mod transfer;

pub use drive::{DEFAULT_PARALLEL_TRANSFERS, DEFAULT_TRANSFER_PACE, MAX_PARALLEL_TRANSFERS};
pub use drop::DropReport;
pub use pace::TransferPace;
pub use report::{TransferReport, TransferStatus};
#[cfg(test)]
pub(crate) use {
    drop::hand_off_and_drop,
    pace::Pacer,
    pages::{progress_of, run_transfer},
    slot::Stalled,
    transfer::closing_nodes,
};

use crate::client::Client;
use quire_shared::wire::{NodeStats, Reply, Request};
use quire_shared::Member;

impl Client {
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
