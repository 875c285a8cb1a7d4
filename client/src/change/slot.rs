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

use crate::client::Client;
use quire_shared::wire::{ErrorCode, Reply, Request, Response};
use quire_shared::{Member, Transfer};

/// Why a transfer moved nothing more this time.
#[derive(Debug)]
pub(crate) enum Stalled {
    /// Its receiver holds every slot for other partitions: it waits.
    Waiting(String),
    /// A node did not answer, refused, or answered wrongly.
    Failed(String),
}

impl Stalled {
    /// Why, whichever kind.
    pub(crate) fn into_message(self) -> String {
        match self {
            Stalled::Waiting(why) | Stalled::Failed(why) => why,
        }
    }

    /// The same kind, with `node`'s address in front.
    pub(super) fn at(self, node: &Member) -> Self {
        match self {
            Stalled::Waiting(why) => Stalled::Waiting(format!("{}: {why}", node.addr)),
            Stalled::Failed(why) => Stalled::Failed(format!("{}: {why}", node.addr)),
        }
    }
}

impl From<String> for Stalled {
    fn from(why: String) -> Self {
        Stalled::Failed(why)
    }
}

impl Client {
    /// One request of a transfer; a refusal or failure is the error, and a
    /// refusal as `Unavailable` (the receiver's slots are held, or it is
    /// shutting down: either way, later) is [`Stalled::Waiting`].
    pub(super) async fn transfer_call_to(
        &self,
        node: &Member,
        request: &Request,
    ) -> Result<Reply, Stalled> {
        let answer = self
            .transport()
            .call(&node.addr, request, self.request_timeout())
            .await;
        self.observe(node.id, answer.as_ref());
        match answer {
            Ok(Response { result: Ok(r), .. }) => r
                .validated()
                .map_err(|e| Stalled::Failed(format!("malformed reply: {e}"))),
            Ok(Response { result: Err(e), .. }) if e.code == ErrorCode::Unavailable => {
                Err(Stalled::Waiting(e.to_string()))
            }
            Ok(Response { result: Err(e), .. }) => Err(Stalled::Failed(e.to_string())),
            Err(e) => Err(Stalled::Failed(e.to_string())),
        }
    }

    /// [`Client::transfer_call_to`] where waiting is a failure like any
    /// other (requests that take no slot).
    pub(super) async fn transfer_call(
        &self,
        node: &Member,
        request: &Request,
    ) -> Result<Reply, String> {
        self.transfer_call_to(node, request)
            .await
            .map_err(Stalled::into_message)
    }

    /// Claims `t`'s slot on its receiver `to` for change `change`.
    pub(super) async fn claim_slot(
        &self,
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
        match self
            .transfer_call_to(to, &claim)
            .await
            .map_err(|s| s.at(to))?
        {
            Reply::Transfer(_) => Ok(()),
            other => Err(Stalled::Failed(format!(
                "{}: a transfer claim answered {other:?}",
                to.addr
            ))),
        }
    }
}
