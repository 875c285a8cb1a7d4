//! Transfer progress for membership change, kept on the receiving node.
//!
//! The SDK's maintenance copies a partition to each incoming replica a
//! page at a time (`ScanSegment` from a current home replica, then
//! `TransferPage` requests into the incoming one), and the last part of
//! each page records here, in the same write, how far it has come. Whoever runs the transfer next
//! (the same client after a restart, another client) resumes from the
//! receiver's record, so an interruption re-sends at most one page.
//!
//! After the change flips, an old owner's copy is handed off (an exchange
//! with the new home replicas) and dropped (`DropPartition`), a batch of
//! keys per request.

use super::{refuse, storage_failed, unexpected, NodeState};
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::wire::{Entry, ErrorCode, ErrorReply, Reply, TransferProgress};

impl NodeState {
    /// The progress recorded for `store`'s `partition`.
    pub(super) fn transfer_state(&self, store: &str, partition: u32) -> Result<Reply, ErrorReply> {
        self.known_partition(store, partition)?;
        let progress = self
            .storage
            .transfer(store, partition)
            .map_err(storage_failed)?;
        Ok(Reply::Transfer(progress))
    }

    /// Refuses unless this node is an incoming replica of `store`'s
    /// `partition` in change `change`.
    fn check_incoming(&self, store: &str, partition: u32, change: u64) -> Result<(), ErrorReply> {
        let (doc, n) = self.known_partition(store, partition)?;
        let pending = doc.pending.as_ref().map(|p| p.since);
        if pending != Some(change) || !doc.incoming(partition, n).contains(&self.identity.node_id) {
            return Err(refuse(
                ErrorCode::NotOwner,
                format!(
                    "node {} is not an incoming replica of partition {partition} of {store:?} in change {change} (membership epoch {}); refresh membership and retry",
                    self.identity.node_id, doc.epoch
                ),
            ));
        }
        Ok(())
    }

    /// Stores part of a transfer page in one write: every entry synced
    /// into this node's copy, then `progress` recorded if given. Every
    /// entry is checked (in the partition, a valid object, values within
    /// the limit) before anything is written. The partition must hold (or
    /// get) one of the node's transfer slots (`crate::inbound`); a page
    /// with no entries and no progress only claims it. A page marking the
    /// transfer done frees the slot.
    pub(super) async fn transfer_page(
        &self,
        (store, partition): (&str, u32),
        change: u64,
        entries: Vec<Entry>,
        progress: Option<TransferProgress>,
    ) -> Result<Reply, ErrorReply> {
        self.check_incoming(store, partition, change)?;
        if progress.as_ref().is_some_and(|p| p.change != change) {
            return Err(refuse(
                ErrorCode::Malformed,
                "a transfer page's progress names another change than the page",
            ));
        }
        let mut items = Vec::with_capacity(entries.len());
        for Entry { key, object } in entries {
            let dk = self.locate(store, &key)?;
            let (_, at, _) = crate::storage::split_data_key(&dk).unwrap_or_default();
            if at != partition {
                return Err(refuse(
                    ErrorCode::Malformed,
                    format!("a key of partition {at} in a transfer page of partition {partition}"),
                ));
            }
            self.check_object(&object)?;
            items.push((dk, object));
        }
        if let Err(full) = self.inbound.admit(store, partition) {
            return Err(refuse(
                ErrorCode::Unavailable,
                format!(
                    "node {} is receiving {} partitions, its limit (limits.transfers_in_max); partition {partition} of {store:?} waits until one is done",
                    self.identity.node_id, full.held
                ),
            ));
        }
        if items.is_empty() && progress.is_none() {
            return self.transfer_state(store, partition);
        }
        let op = WriteOp::TransferPage {
            items,
            members: self.member_ids(),
            policy: self.policy(store),
            limits: self.object_limits(store),
            store: store.to_owned(),
            partition,
            progress,
        };
        match self.write_data(store, op).await? {
            WriteOutcome::Transfer(held) => {
                if held.done && held.change == change {
                    self.inbound.finish(store, partition);
                }
                Ok(Reply::Transfer(held))
            }
            WriteOutcome::Refused { code, message } => Err(refuse(code, message)),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a batch of keys of a partition this node is not a home or
    /// incoming replica of in its membership.
    pub(super) async fn drop_partition(
        &self,
        store: &str,
        partition: u32,
        root: [u8; 16],
    ) -> Result<Reply, ErrorReply> {
        let (doc, n) = self.known_partition(store, partition)?;
        if doc.is_home_or_incoming(self.identity.node_id, partition, n) {
            return Err(refuse(
                ErrorCode::StillReplica,
                format!(
                    "node {} is a replica of partition {partition} of {store:?} in membership epoch {}: its copy is needed",
                    self.identity.node_id, doc.epoch
                ),
            ));
        }
        let op = WriteOp::DropPartition {
            store: store.to_owned(),
            partition,
            root,
            limit: DROP_BATCH,
        };
        match self.write(op).await? {
            WriteOutcome::PartitionDropped(Some((keys, more, root))) => {
                Ok(Reply::PartitionDropped { keys, more, root })
            }
            WriteOutcome::PartitionDropped(None) => Err(refuse(
                ErrorCode::CopyChanged,
                format!("the copy of partition {partition} of {store:?} changed since it was handed off; hand it off again"),
            )),
            other => Err(unexpected(&other)),
        }
    }
}

/// Keys one `DropPartition` removes: bounds the write transaction.
const DROP_BATCH: usize = 4096;
