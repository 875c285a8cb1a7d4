//! The hints a stand-in holds for other nodes: paged out for delivery,
//! dropped once delivered. A client sees and drops only the hints of the
//! stores it may write.

use super::{refuse, storage_failed, unexpected, NodeState};
use crate::storage::split_data_key;
use crate::writer::{WriteOp, WriteOutcome};
use quire_shared::access::{may, Access, Principal};
use quire_shared::limits::FRAME_ENVELOPE_BYTES;
use quire_shared::wire::{DeliveredHint, ErrorCode, ErrorReply, Hint, Reply};
use quire_shared::NodeId;

/// Most hints returned in one page.
const HINTS_PAGE_MAX: usize = 1_000;

impl NodeState {
    /// A page of the hints held for `target`, after the cursor `after`:
    /// bounded by count and by this node's frame limit, so a page of large
    /// objects still travels (one hint at least, so delivery goes on).
    pub(super) fn hints(
        &self,
        target: NodeId,
        after: Option<&[u8]>,
        limit: u32,
        principal: &Principal,
    ) -> Result<Reply, ErrorReply> {
        let doc = self.membership();
        let grants = Self::grants_of(&doc);
        let limit = (limit as usize).clamp(1, HINTS_PAGE_MAX);
        let bytes_max = (self.limits.frame_bytes_max as usize).saturating_sub(FRAME_ENVELOPE_BYTES);
        let page = self
            .storage
            .hints_page(target, after, limit, bytes_max)
            .map_err(storage_failed)?;
        let hints = page
            .hints
            .into_iter()
            .filter_map(|(dk, object)| {
                let (store, _, key) = split_data_key(&dk)?;
                // Only the hints of stores the peer may write: it could not
                // deliver the others. Another client (or an admin) does.
                may(principal, Access::Write, &store, grants).then_some(Hint { store, key, object })
            })
            .collect();
        Ok(Reply::Hints {
            hints,
            next: page.next,
        })
    }

    /// Forgets delivered hints for `target` that did not change since.
    pub(super) async fn drop_hints(
        &self,
        target: NodeId,
        hints: Vec<DeliveredHint>,
        principal: &Principal,
    ) -> Result<Reply, ErrorReply> {
        let doc = self.membership();
        let grants = Self::grants_of(&doc);
        let mut items = Vec::with_capacity(hints.len());
        for h in hints {
            if !may(principal, Access::Write, &h.store, grants) {
                return Err(refuse(
                    ErrorCode::Forbidden,
                    format!(
                        "{principal} may not drop hints of store {:?} (no grant)",
                        h.store
                    ),
                ));
            }
            h.clock
                .validate()
                .map_err(|e| refuse(ErrorCode::InvalidContext, format!("hint clock: {e}")))?;
            items.push((self.locate(&h.store, &h.key)?, h.clock));
        }
        match self.write(WriteOp::DropHints { target, items }).await? {
            WriteOutcome::Dropped(n) => Ok(Reply::Dropped(n)),
            other => Err(unexpected(&other)),
        }
    }
}
