//! Compare-and-set changes of the membership document.
//!
//! An admin reads the newest document the members hold, applies its change
//! on top and offers the result naming that document as its base; a node
//! takes it only if it holds exactly the base. When two admins change the
//! cluster at once, one of them meets a conflict, reads again (now seeing
//! the other's change) and re-applies its own, so neither change is lost
//! and the cluster never keeps two documents of one epoch for long (nodes
//! and clients order those by digest: [`Membership::supersedes`]).

use super::calls::{push_membership, stored_document, Refusal};
use super::AdminError;
use crate::client::Client;
use crate::transport::Transport;
use quire_shared::{Membership, MembershipError, StoreConfig};
use std::time::Duration;

/// How often a change is re-applied after conflicts before giving up.
const ATTEMPTS_MAX: u32 = 8;

/// The newest document any member of `known` holds (or `known` itself).
async fn newest_document(transport: &Transport, known: &Membership) -> Membership {
    let mut newest = known.clone();
    for m in &known.members {
        if let Some(held) = stored_document(transport, &m.addr).await {
            if held.cluster_id == newest.cluster_id && held.supersedes(&newest) {
                newest = held;
            }
        }
    }
    newest
}

/// What a change makes of the newest document.
enum Step {
    /// The change is in it already (an earlier attempt of ours won).
    Done,
    /// The document to offer (its epoch is set by [`change_membership`]).
    Next(Membership),
}

/// Applies `change` with compare-and-set until a majority of the members
/// take it; returns the document and the members that did not take it.
/// `change` is called with the newest document on every attempt, and is
/// told whether an earlier attempt of this call offered a document.
async fn change_membership(
    transport: &Transport,
    known: &Membership,
    change: impl Fn(&Membership, bool) -> Result<Step, AdminError>,
) -> Result<(Membership, Vec<String>), AdminError> {
    let mut offered = false;
    for attempt in 0..ATTEMPTS_MAX {
        let newest = newest_document(transport, known).await;
        let mut doc = match change(&newest, offered)? {
            Step::Done => {
                // Bring members that hold an older or losing document along.
                let missed = misses(push_membership(transport, &newest, None).await);
                return Ok((newest, missed));
            }
            Step::Next(doc) => doc,
        };
        doc.epoch = newest.epoch + 1;
        doc.validate()?;
        offered = true;
        let results = push_membership(transport, &doc, Some(newest.version())).await;
        let conflicts = results
            .iter()
            .filter(|(_, r)| matches!(r, Err(Refusal::Conflict(_))))
            .count();
        let accepted = results.iter().filter(|(_, r)| r.is_ok()).count();
        if conflicts == 0 {
            let missed = misses(results);
            if accepted > doc.members.len() / 2 {
                return Ok((doc, missed));
            }
            return Err(AdminError::NotAccepted(missed.join("; ")));
        }
        // Someone else's change came first: wait a little (jittered, so
        // two admins do not collide again in step), then start over.
        let pause_ms = 20 * u64::from(attempt + 1) + u64::from(rand_jitter_ms());
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    Err(AdminError::Contended {
        attempts: ATTEMPTS_MAX,
    })
}

/// The members a push did not reach, with why.
fn misses(results: Vec<(String, Result<(), Refusal>)>) -> Vec<String> {
    results
        .into_iter()
        .filter_map(|(addr, r)| match r {
            Ok(()) => None,
            Err(Refusal::Conflict(why) | Refusal::Other(why)) => Some(format!("{addr}: {why}")),
        })
        .collect()
}

/// A few milliseconds of jitter from the clock's low bits (no RNG needed).
fn rand_jitter_ms() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 25)
}

impl Client {
    /// Adds `store` to the cluster: a new document at the next epoch,
    /// offered with compare-and-set on the newest document the members
    /// hold, retried when another change comes first. Succeeds when a
    /// majority of the members took it (clients carry it to the others);
    /// the members that did not are listed in the result.
    pub async fn create_store(
        &self,
        store: StoreConfig,
    ) -> Result<(Membership, Vec<String>), AdminError> {
        let change = |newest: &Membership, offered: bool| match newest.store(&store.name) {
            // Ours, taken by a majority in an attempt that then met a
            // conflict elsewhere.
            Some(held) if offered && *held == store => Ok(Step::Done),
            Some(_) => Err(MembershipError::DuplicateStore(store.name.clone()).into()),
            None => {
                let mut doc = newest.clone();
                doc.stores.push(store.clone());
                doc.stores.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Step::Next(doc))
            }
        };
        let result = change_membership(self.transport(), &self.membership(), change).await?;
        self.refresh_membership().await;
        Ok(result)
    }
}
