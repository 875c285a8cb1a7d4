//! Transfer progress for membership change, kept on the receiving node.
//!
//! The SDK's maintenance copies a partition to each incoming replica a
//! page at a time (`ScanSegment` from a current home replica, `Replicate`
//! of every key into the incoming one); after each page it records here,
//! on the receiver, how far it has come. Whoever runs the transfer next
//! (the same client after a restart, another client) resumes from the
//! receiver's record, so an interruption re-sends at most one page.

use super::{refuse, storage_failed, unexpected, NodeState};
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::wire::{ErrorCode, ErrorReply, Reply, TransferProgress};

impl NodeState {
    /// The progress recorded for `store`'s `partition`.
    pub(super) fn transfer_state(&self, store: &str, partition: u32) -> Result<Reply, ErrorReply> {
        let progress = self
            .storage
            .transfer(store, partition)
            .map_err(storage_failed)?;
        Ok(Reply::Transfer(progress))
    }

    /// Records `progress`, if this node is an incoming replica of the
    /// partition in the change it names.
    pub(super) async fn transfer_mark(
        &self,
        store: &str,
        partition: u32,
        progress: TransferProgress,
    ) -> Result<Reply, ErrorReply> {
        let doc = self.membership().ok_or_else(|| {
            refuse(
                ErrorCode::NoMembership,
                "node has no membership document yet",
            )
        })?;
        let Some(config) = doc.store(store) else {
            return Err(refuse(
                ErrorCode::UnknownStore,
                format!("store {store:?} does not exist"),
            ));
        };
        let change = doc.pending.as_ref().map(|p| p.since);
        let incoming = doc.incoming(partition, usize::from(config.n));
        if change != Some(progress.change) || !incoming.contains(&self.identity.node_id) {
            return Err(refuse(
                ErrorCode::NotOwner,
                format!(
                    "node {} is not an incoming replica of partition {partition} of {store:?} in change {} (membership epoch {}); refresh membership and retry",
                    self.identity.node_id, progress.change, doc.epoch
                ),
            ));
        }
        let op = WriteOp::TransferMark {
            store: store.to_owned(),
            partition,
            progress,
        };
        match self.write(op).await? {
            WriteOutcome::Transfer(held) => Ok(Reply::Transfer(held)),
            other => Err(unexpected(&other)),
        }
    }
}
