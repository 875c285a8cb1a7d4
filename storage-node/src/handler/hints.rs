//! The hints a stand-in holds for other nodes: paged out for delivery,
//! dropped once delivered.

use super::{storage_failed, unexpected, NodeState};
use crate::storage::split_data_key;
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::wire::{ErrorReply, Hint, Reply};
use quire_shared::NodeId;

/// Most hints returned in one page.
const HINTS_PAGE_MAX: usize = 1_000;

impl NodeState {
    /// A page of the hints held for `target`, after the cursor `after`.
    pub(super) fn hints(
        &self,
        target: NodeId,
        after: Option<&[u8]>,
        limit: u32,
    ) -> Result<Reply, ErrorReply> {
        let limit = (limit as usize).clamp(1, HINTS_PAGE_MAX);
        let page = self
            .storage
            .hints_page(target, after, limit)
            .map_err(storage_failed)?;
        let next = (page.len() == limit).then(|| page[page.len() - 1].0.clone());
        let hints = page
            .into_iter()
            .filter_map(|(dk, object)| {
                let (store, _, key) = split_data_key(&dk)?;
                Some(Hint { store, key, object })
            })
            .collect();
        Ok(Reply::Hints { hints, next })
    }

    /// Forgets delivered hints for `target` that did not change since.
    pub(super) async fn drop_hints(
        &self,
        target: NodeId,
        hints: Vec<Hint>,
    ) -> Result<Reply, ErrorReply> {
        let mut items = Vec::with_capacity(hints.len());
        for h in hints {
            items.push((self.locate(&h.store, &h.key)?, h.object));
        }
        match self.write(WriteOp::DropHints { target, items }).await? {
            WriteOutcome::Dropped(n) => Ok(Reply::Dropped(n)),
            other => Err(unexpected(&other)),
        }
    }
}
