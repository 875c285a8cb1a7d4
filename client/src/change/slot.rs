//! A transfer's slot on its receiver.
//!
//! A node receives at most `limits.transfers_in_max` partitions at once
//! (2 by default), whoever drives them: it refuses a page of another
//! partition with `Unavailable` while its slots are held. A transfer
//! therefore claims its slot with an empty `TransferPage` (nothing
//! stored, no mark moved) before it scans a page from its source, so a
//! transfer that has to wait costs the source nothing; it is told to wait
//! ([`Stalled::Waiting`]), not that its node failed, and is tried again on
//! the next step or round.

use crate::repair::{NoReply, Replicas};
use quire_shared::wire::{ErrorCode, Reply, Request};
use quire_shared::{Member, Transfer};

/// Why a transfer moved nothing more this time.
#[derive(Debug)]
pub(crate) enum Stalled {
    /// Its receiver holds every slot for other partitions: it waits.
    Waiting(String),
    /// A node did not answer, refused, or answered wrongly.
    Failed(String),
}

impl From<String> for Stalled {
    fn from(why: String) -> Self {
        Stalled::Failed(why)
    }
}

/// A transfer request's answer, a refusal as `Unavailable` (the
/// receiver's slots are held, or it is shutting down: either way, later)
/// read as [`Stalled::Waiting`].
pub(super) fn judged(answer: Result<Reply, NoReply>, node: &Member) -> Result<Reply, Stalled> {
    answer.map_err(|e| match e.code {
        Some(ErrorCode::Unavailable) => Stalled::Waiting(format!("{}: {e}", node.addr)),
        _ => Stalled::Failed(format!("{}: {e}", node.addr)),
    })
}

/// Claims `t`'s slot on its receiver `to` for change `change`.
pub(super) async fn claim_slot(
    replicas: &impl Replicas,
    to: &Member,
    t: &Transfer,
    change: u64,
) -> Result<(), Stalled> {
    let claim = Request::TransferPage {
        store: t.store.clone(),
        partition: t.partition,
        change,
        entries: Vec::new(),
        progress: None,
    };
    match judged(replicas.ask(to, &claim).await, to)? {
        Reply::Transfer(_) => Ok(()),
        other => Err(Stalled::Failed(format!(
            "{}: a transfer claim answered {other:?}",
            to.addr
        ))),
    }
}
