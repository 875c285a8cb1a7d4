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
use quire_net::seal::Sealer;
use quire_shared::{
    Change, Member, MemberState, Membership, MembershipError, MembershipVersion, Pending,
    StoreConfig,
};
use std::sync::Mutex;
use std::time::Duration;

/// How often a change is re-applied after conflicts before giving up.
const ATTEMPTS_MAX: u32 = 8;

/// What the members of `known` hold now.
struct Reading {
    /// The document a change must build on: the highest epoch; among
    /// documents of that epoch, the one most members hold (a document a
    /// majority took must not lose to one a single node holds just because
    /// its digest is greater); then the greater digest.
    newest: Membership,
    /// How many members hold exactly `newest`.
    holders: usize,
    /// How many members answered.
    answered: usize,
    /// Whether a member holds another document of `newest`'s epoch. Gossip
    /// cannot replace it when its digest is greater (equal epochs settle by
    /// digest), so only a later epoch brings that member along.
    split: bool,
}

/// The members whose acceptance counts: those owning partitions now or
/// after the pending change. Idle members (left, replaced, perhaps dead)
/// still hear of every change but do not vote, or a cluster that replaced
/// dead nodes could never reach a majority again.
fn voters(known: &Membership) -> Vec<&quire_shared::Member> {
    known
        .members
        .iter()
        .filter(|m| known.state_of(m.id) != MemberState::Idle)
        .collect()
}

async fn read_members(transport: &Transport, known: &Membership) -> Reading {
    let mut held: Vec<Membership> = Vec::new();
    for m in voters(known) {
        if let Some(doc) = stored_document(transport, &m.addr).await {
            if doc.cluster_id == known.cluster_id {
                held.push(doc);
            }
        }
    }
    let count = |d: &Membership| held.iter().filter(|h| *h == d).count();
    let newest = held
        .iter()
        .max_by(|a, b| (a.epoch, count(a), a.digest()).cmp(&(b.epoch, count(b), b.digest())))
        .cloned()
        .unwrap_or_else(|| known.clone());
    Reading {
        holders: count(&newest),
        answered: held.len(),
        split: held.iter().any(|h| h.epoch == newest.epoch && *h != newest),
        newest,
    }
}

/// What a change makes of the newest document.
pub(super) enum Step {
    /// The change is in it already (an earlier attempt of ours won).
    Done,
    /// The document to offer (its epoch is set by [`change_membership`]).
    Next(Box<Membership>),
}

/// Applies `change` with compare-and-set until a majority of the members
/// take it; returns the document and the members that did not take it.
/// `change` is called with the newest document on every attempt, and is
/// told whether an earlier attempt of this call offered a document.
pub(super) async fn change_membership(
    transport: &Transport,
    sealer: &Sealer,
    known: &Membership,
    change: impl Fn(&Membership, bool) -> Result<Step, AdminError>,
) -> Result<(Membership, Vec<String>), AdminError> {
    let mut offered = false;
    let voting: Vec<String> = voters(known).iter().map(|m| m.addr.clone()).collect();
    let majority = voting.len() / 2 + 1;
    for attempt in 0..ATTEMPTS_MAX {
        let Reading {
            newest,
            holders,
            answered,
            split,
        } = read_members(transport, known).await;
        if holders < majority && answered >= majority {
            // The newest document is held by too few members for a
            // compare-and-set on it to pass: the others hold older or
            // rival documents and would refuse every offer built on it,
            // attempt after attempt. Bring them along first, as gossip
            // would (a node takes a document of a higher epoch).
            push_membership(transport, &newest, None).await;
        }
        let mut doc = match change(&newest, offered)? {
            // Our change is in the document a majority holds and no member
            // holds a rival of its epoch: bring the others along (gossip)
            // and stop.
            Step::Done if holders >= majority && !split => {
                let missed = misses(push_membership(transport, &newest, None).await);
                tell_removed(transport, known, &newest).await;
                return Ok((newest, missed));
            }
            // In it, but a majority does not hold it (yet), or a member
            // holds a rival of the same epoch that gossip would not
            // replace: assert it again at the next epoch, which replaces
            // whatever else a node holds.
            Step::Done => newest.clone(),
            Step::Next(doc) => *doc,
        };
        if answered < majority {
            return Err(AdminError::NotAccepted(format!(
                "only {answered} of {} voting members answered; a change needs a majority",
                voting.len()
            )));
        }
        doc.epoch = newest.epoch + 1;
        doc.validate()?;
        let doc = sealer.seal(doc, &newest)?;
        offered = true;
        let results = push_membership(transport, &doc, Some(newest.version())).await;
        let conflicts = results
            .iter()
            .filter(|(_, r)| matches!(r, Err(Refusal::Conflict(_))))
            .count();
        let accepted = results
            .iter()
            .filter(|(addr, r)| r.is_ok() && voting.contains(addr))
            .count();
        if let Some((_, Err(Refusal::Forbidden(why)))) = results
            .iter()
            .find(|(_, r)| matches!(r, Err(Refusal::Forbidden(_))))
        {
            return Err(AdminError::Forbidden(why.clone()));
        }
        if conflicts == 0 {
            let missed = misses(results);
            if accepted >= majority {
                tell_removed(transport, &newest, &doc).await;
                return Ok((doc, missed));
            }
            return Err(AdminError::NotAccepted(missed.join("; ")));
        }
        // Someone else's change came first: wait, then start over. The
        // pause doubles with each attempt and is jittered, so two admins
        // that collided draw apart.
        tokio::time::sleep(retry_pause(attempt)).await;
    }
    Err(AdminError::Contended {
        attempts: ATTEMPTS_MAX,
    })
}

/// Gives `doc` to the members of `before` it no longer names (`quire
/// cluster remove`): they would otherwise keep answering with the older
/// document, and a cold client whose first seed is such a node would start
/// from it. Their answers do not matter.
async fn tell_removed(transport: &Transport, before: &Membership, doc: &Membership) {
    let request = quire_shared::wire::Request::PutMembership {
        membership: Box::new(doc.clone()),
        base: None,
    };
    for m in before.members.iter().filter(|m| doc.member(m.id).is_none()) {
        let _ = transport
            .call(&m.addr, &request, super::calls::CALL_TIMEOUT)
            .await;
    }
}

/// The members a push did not reach, with why.
fn misses(results: Vec<(String, Result<(), Refusal>)>) -> Vec<String> {
    results
        .into_iter()
        .filter_map(|(addr, r)| match r {
            Ok(()) => None,
            Err(Refusal::Conflict(why) | Refusal::Forbidden(why) | Refusal::Other(why)) => {
                Some(format!("{addr}: {why}"))
            }
        })
        .collect()
}

/// The pause before attempt `attempt + 1` of a contended change: 20 ms
/// doubling with each attempt (at most 1.28 s), jittered as every retry
/// of the SDK is.
fn retry_pause(attempt: u32) -> Duration {
    crate::store::jittered(Duration::from_millis(20 << attempt.min(6)))
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
                Ok(Step::Next(Box::new(doc)))
            }
        };
        let result =
            change_membership(self.transport(), &self.sealer(), &self.membership(), change).await?;
        self.refresh_membership().await;
        Ok(result)
    }

    /// Commits staged membership changes: the document [`Membership::plan`]
    /// makes of them, offered with compare-and-set, if the members still
    /// hold `planned_on` (the document the operator was shown the plan
    /// for); otherwise [`AdminError::Replan`]. Of two concurrent commits
    /// one wins; the other finds the cluster changed and must re-plan.
    pub async fn commit_change(
        &self,
        changes: &[Change],
        planned_on: MembershipVersion,
    ) -> Result<(Membership, Vec<String>), AdminError> {
        let ours: Mutex<Option<Membership>> = Mutex::new(None);
        let change = |newest: &Membership, offered: bool| {
            let mine = ours.lock().expect("not poisoned").clone();
            if let Some(mine) = mine.filter(|_| offered) {
                // Ours went in if the newest document is ours (or was built
                // on it: the same pending change and members).
                if newest.pending == mine.pending && newest.members == mine.members {
                    return Ok(Step::Done);
                }
            }
            if newest.version() != planned_on {
                return Err(AdminError::Replan {
                    planned: planned_on.epoch,
                    now: newest.epoch,
                });
            }
            let next = newest.plan(changes)?;
            *ours.lock().expect("not poisoned") = Some(next.clone());
            Ok(Step::Next(Box::new(next)))
        };
        let known = self.membership();
        let result = change_membership(self.transport(), &self.sealer(), &known, change).await?;
        self.refresh_membership().await;
        Ok(result)
    }

    /// Flips the pending change `change` (exactly those pending owners,
    /// so a document of the same epoch with another change is never
    /// flipped in its place): its pending owners become the owners in a
    /// new epoch. True when this call flipped it; false when it was
    /// flipped already or another change is pending.
    pub async fn flip_change(&self, change: &Pending) -> Result<bool, AdminError> {
        // Everyone who held the pending document hears of the flip,
        // members that now own nothing included.
        self.end_change(change, Membership::flip).await
    }

    /// Ends the pending change `change` with `end` (flip or abort) in a
    /// compare-and-set: true when this call ended it; false when it was
    /// ended already (by this call's earlier attempt or someone else) or
    /// another change is pending.
    async fn end_change(
        &self,
        change: &Pending,
        end: fn(&Membership) -> Option<Membership>,
    ) -> Result<bool, AdminError> {
        let ended = Mutex::new(false);
        let step = |newest: &Membership, offered: bool| match &newest.pending {
            Some(p) if p == change => {
                let next = end(newest).expect("a change is pending");
                *ended.lock().expect("not poisoned") = true;
                Ok(Step::Next(Box::new(next)))
            }
            _ if offered => Ok(Step::Done),
            _ => {
                *ended.lock().expect("not poisoned") = false;
                Ok(Step::Done)
            }
        };
        let known = self.membership();
        change_membership(self.transport(), &self.sealer(), &known, step).await?;
        self.refresh_membership().await;
        let ended = *ended.lock().expect("not poisoned");
        Ok(ended)
    }

    /// Abandons the pending change `change` (exactly that one: a change
    /// flipped or replaced meanwhile is left alone): the owners stay as
    /// they are, in a new epoch signed by this admin, and nodes that were
    /// joining become idle (see [`Membership::abort`]). True when this
    /// call aborted it; false when nothing (or another change) was
    /// pending.
    pub async fn abort_change(&self, change: &Pending) -> Result<bool, AdminError> {
        self.end_change(change, Membership::abort).await
    }

    /// The member a `quire cluster join ADDR` adds: the node running at
    /// `addr` (its id from `Hello`, waiting up to `wait` for it to
    /// answer), with `zone` and `weight`. Refused when the node belongs to
    /// another cluster.
    pub async fn member_at(
        &self,
        addr: &str,
        zone: &str,
        weight: u32,
        wait: Duration,
    ) -> Result<Member, AdminError> {
        let deadline = std::time::Instant::now() + wait;
        let (id, _, theirs) = super::form::hello(self.transport(), addr, deadline).await?;
        let ours = self.membership().cluster_id;
        if let Some(theirs) = theirs.filter(|t| *t != ours) {
            return Err(AdminError::WrongCluster {
                addr: addr.to_owned(),
                theirs,
                ours,
            });
        }
        Ok(Member {
            id,
            addr: addr.to_owned(),
            zone: zone.to_owned(),
            weight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::retry_pause;
    use std::time::Duration;

    #[test]
    fn retry_pauses_stay_in_a_window_that_doubles_and_are_drawn_apart() {
        for attempt in 0..super::ATTEMPTS_MAX {
            let base = Duration::from_millis(20 << attempt.min(6));
            let pauses: Vec<Duration> = (0..200).map(|_| retry_pause(attempt)).collect();
            assert!(
                pauses.iter().all(|p| *p >= base / 2 && *p < base * 3 / 2),
                "{pauses:?}"
            );
            let distinct: std::collections::HashSet<_> = pauses.iter().collect();
            assert!(distinct.len() > 5, "attempt {attempt}: {distinct:?}");
        }
    }
}
