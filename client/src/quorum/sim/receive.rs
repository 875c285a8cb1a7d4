//! A simulated node's side of a membership change: transfer progress,
//! transfer pages (with the node's slots), and dropping a partition it no
//! longer holds for anyone, as the real node's handlers and writer do
//! (`storage-node/src/handler/transfer.rs`, `writer/apply.rs`). Pages are
//! written with the store's durability; a drop is always durable.

use super::node::{Env, Handled, SimNode};
use super::STORE;
use quire_shared::merkle::Segments;
use quire_shared::replica;
use quire_shared::ring::{key_position, partition_of};
use quire_shared::wire::{moves_mark, Entry, ErrorCode, ErrorReply, Reply, TransferProgress};

fn refuse(code: ErrorCode, message: String) -> Handled {
    Handled::answer(Err(ErrorReply { code, message }))
}

impl SimNode {
    /// `TransferState`: the progress recorded for `partition`.
    pub fn transfer_state(&self, partition: u32) -> Handled {
        let held = self.disk.transfers.get(&partition).cloned();
        Handled::answer(Ok(Reply::Transfer(held.unwrap_or_default())))
    }

    /// `TransferPage`: checked whole, then a slot, then every entry synced
    /// in and the progress recorded; an empty page without progress only
    /// claims the slot.
    pub fn transfer_page(
        &mut self,
        env: &mut Env<'_>,
        (partition, change): (u32, u64),
        entries: &[Entry],
        progress: Option<&TransferProgress>,
    ) -> Handled {
        let n = usize::from(env.doc.stores[0].n);
        let pending = env.doc.pending.as_ref().map(|p| p.since);
        if pending != Some(change) || !env.doc.incoming(partition, n).contains(&self.id) {
            return refuse(
                ErrorCode::NotOwner,
                format!("not an incoming replica of partition {partition} in change {change}"),
            );
        }
        if progress.is_some_and(|p| p.change != change) {
            return refuse(ErrorCode::Malformed, "progress of another change".into());
        }
        let in_partition = |e: &Entry| partition_of(&key_position(STORE, &e.key), env.partitions);
        if entries.iter().any(|e| in_partition(e) != partition) {
            return refuse(ErrorCode::Malformed, "a key of another partition".into());
        }
        if self.slots.admit(STORE, partition, env.clock_ms).is_err() {
            return refuse(ErrorCode::Unavailable, "every transfer slot is held".into());
        }
        let held = self.disk.transfers.get(&partition).cloned();
        let held = held.unwrap_or_default();
        if entries.is_empty() && progress.is_none() {
            return Handled::answer(Ok(Reply::Transfer(held)));
        }
        let mut changed = false;
        for e in entries {
            let before = self.disk.data.get(&e.key).cloned().unwrap_or_default();
            let next = if env.knobs.transfer_page_replaces {
                Some(e.object.clone())
            } else {
                replica::replicate(&before, &e.object, env.policy)
            };
            let Some(next) = next else { continue };
            if let Err(refused) = env.limits.check_merge(&before, &next) {
                // The mark waits: the page is sent again.
                return Handled {
                    changed,
                    ..Handled::answer(Err(ErrorReply {
                        code: refused.code(),
                        message: refused.to_string(),
                    }))
                };
            }
            Self::keep(&mut self.disk.data, e.key.clone(), next);
            changed = true;
        }
        let reply = match progress {
            Some(p) if moves_mark(&held, p) => {
                self.disk.transfers.insert(partition, p.clone());
                changed = true;
                p.clone()
            }
            _ => held,
        };
        if reply.done && reply.change == change {
            self.slots.finish(STORE, partition);
        }
        Handled {
            changed,
            ..Handled::answer(Ok(Reply::Transfer(reply)))
        }
    }

    /// `DropPartition`: refused while the node is a replica of the
    /// partition, or when its copy changed since the root the dropper saw;
    /// else the whole copy goes at once.
    pub fn drop_partition(&mut self, env: &Env<'_>, partition: u32, root: [u8; 16]) -> Handled {
        let n = usize::from(env.doc.stores[0].n);
        if env.doc.is_home_or_incoming(self.id, partition, n) {
            return refuse(ErrorCode::StillReplica, "still a replica".into());
        }
        if self.partition_root(env, partition) != root {
            return refuse(ErrorCode::CopyChanged, "changed since handed off".into());
        }
        let keys: Vec<Vec<u8>> = self
            .disk
            .data
            .keys()
            .filter(|k| partition_of(&key_position(STORE, k), env.partitions) == partition)
            .cloned()
            .collect();
        for k in &keys {
            self.disk.data.remove(k);
        }
        // The real node writes a drop durably whatever the store's
        // durability (an fsync makes everything committed before it
        // durable too): a power cut must not bring the copy back.
        self.flush();
        Handled {
            changed: !keys.is_empty(),
            ..Handled::answer(Ok(Reply::PartitionDropped {
                keys: keys.len() as u64,
                more: false,
                root: Segments::default().root(),
            }))
        }
    }
}
