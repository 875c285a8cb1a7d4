//! Membership change: staged changes, the document a commit writes, the
//! transfers it implies, and the flip once they are done.
//!
//! A change never moves ownership in one step (Dynamo §4.9, staged as in
//! Riak's `plan` / `commit`). [`Membership::plan`] turns staged changes
//! into the next document: the members it adds, and `pending`, the owners
//! the claim gives the new set of nodes starting from today's owners (so
//! as little as possible moves). While `pending` is set, each partition's
//! current home replicas keep serving reads and counting towards `W`;
//! writes also go to its *incoming* replicas (home under `pending`, not
//! under `owners`) and count towards `W` among the home replicas to come
//! as well, where those can take them, and the SDK's maintenance copies
//! the partition to them ([`Membership::transfers`]). Once every transfer is done,
//! [`Membership::flip`] makes `pending` the owners in a new epoch.
//!
//! A member that no longer owns anything stays in the document (state
//! [`MemberState::Idle`]): it keeps the copies it held, and a later change
//! may bring it back.

use super::{claimants, target_n, Member, Membership, MembershipError, OwnedCounts, Pending};
use crate::claim::claim;
use crate::ring::{NodeId, PreferenceList};
use serde::{Deserialize, Serialize};

/// One staged change to the cluster's members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A running node joins, with its zone and weight.
    Join(Member),
    /// A member leaves: its partitions move to the others.
    Leave(NodeId),
    /// `new` takes over exactly `old`'s partitions (a machine that died or
    /// is retired), so nothing else moves.
    Replace {
        /// The member replaced.
        old: NodeId,
        /// The node taking its place.
        new: Member,
    },
    /// An idle member (one that left or was replaced, owning nothing now
    /// or after) is removed from the document: it no longer hears of
    /// changes, and its address may be reused.
    Remove(NodeId),
    /// A member's relative capacity changes.
    Reweight {
        /// The member.
        node: NodeId,
        /// Its new weight.
        weight: u32,
    },
}

/// Why staged changes cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeError {
    /// The cluster is still moving data for an earlier change.
    #[error("epoch {0} is still moving data for an earlier change: wait for its transfers to finish (`quire cluster transfers --wait`)")]
    ChangeInProgress(u64),
    /// A change names a node that is not a serving member.
    #[error("node {0} is not a member owning partitions")]
    NotServing(NodeId),
    /// `Remove` names a node that is not an idle member: a serving member
    /// leaves first (`leave`), and its data moves.
    #[error(
        "node {0} is not an idle member: make it leave first, and remove it once it holds nothing"
    )]
    NotIdle(NodeId),
    /// A node to add is already a serving member, or its address is taken.
    #[error("node {0} is already a member")]
    AlreadyMember(String),
    /// The changes would leave no node owning partitions.
    #[error("the changes would leave no node to own the partitions")]
    NoneLeft,
    /// The resulting document is invalid (e.g. a store's N above the nodes
    /// left).
    #[error("the changed cluster would be invalid: {0}")]
    Invalid(#[from] MembershipError),
}

/// Where a member stands in a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// Owns nothing yet; receives partitions until the flip.
    Joining,
    /// Owns partitions and keeps owning some.
    Member,
    /// Owns partitions now and none after the flip.
    Leaving,
    /// Owns nothing and will own nothing (left, or replaced).
    Idle,
}

impl MemberState {
    /// The state's name in output.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Member => "member",
            MemberState::Leaving => "leaving",
            MemberState::Idle => "idle",
        }
    }
}

/// One copy a change needs: `to` must come to hold `store`'s `partition`,
/// which its current home replicas `from` hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Store name.
    pub store: String,
    /// Partition.
    pub partition: u32,
    /// The incoming home replica.
    pub to: NodeId,
    /// The current home replicas, in preference-list order.
    pub from: Vec<NodeId>,
}

impl Membership {
    /// The document committing `changes` writes: epoch + 1, new members
    /// added, and `pending` set to the claim over the nodes that will own
    /// partitions (or, when nothing moves, the change applied at once).
    /// Refused while an earlier change still moves data.
    pub fn plan(&self, changes: &[Change]) -> Result<Membership, ChangeError> {
        if self.pending.is_some() {
            return Err(ChangeError::ChangeInProgress(self.epoch));
        }
        let mut next = self.clone();
        next.epoch = self.epoch.saturating_add(1);
        let mut serving: Vec<NodeId> = self.serving();
        let mut previous = self.owners.clone();
        for change in changes {
            match change {
                Change::Join(m) => next.admit(m, &mut serving)?,
                Change::Leave(id) => {
                    let at = serving.iter().position(|s| s == id);
                    serving.remove(at.ok_or(ChangeError::NotServing(*id))?);
                }
                Change::Replace { old, new } => {
                    let at = serving.iter().position(|s| s == old);
                    serving.remove(at.ok_or(ChangeError::NotServing(*old))?);
                    next.admit(new, &mut serving)?;
                    for owner in previous.iter_mut().filter(|o| *o == old) {
                        *owner = new.id;
                    }
                }
                Change::Remove(id) => {
                    if serving.contains(id) || self.member(*id).is_none() {
                        return Err(ChangeError::NotIdle(*id));
                    }
                    next.members.retain(|m| m.id != *id);
                }
                Change::Reweight { node, weight } => {
                    if !serving.contains(node) {
                        return Err(ChangeError::NotServing(*node));
                    }
                    if let Some(m) = next.members.iter_mut().find(|m| m.id == *node) {
                        m.weight = *weight;
                    }
                }
            }
        }
        if serving.is_empty() {
            return Err(ChangeError::NoneLeft);
        }
        next.members.sort_by_key(|m| m.id);
        let who: Vec<Member> = next
            .members
            .iter()
            .filter(|m| serving.contains(&m.id))
            .cloned()
            .collect();
        let owners = claim(
            &claimants(&who),
            self.partitions,
            target_n(&self.stores),
            Some(&previous),
        );
        next.pending = (owners != self.owners).then_some(Pending {
            since: next.epoch,
            owners,
        });
        next.validate()?;
        Ok(next)
    }

    /// Adds `m` to the members (or updates an idle member of that id) and
    /// to `serving`.
    fn admit(&mut self, m: &Member, serving: &mut Vec<NodeId>) -> Result<(), ChangeError> {
        let taken = self
            .members
            .iter()
            .any(|o| o.addr == m.addr && o.id != m.id);
        if serving.contains(&m.id) || taken {
            return Err(ChangeError::AlreadyMember(format!("{} ({})", m.id, m.addr)));
        }
        match self.members.iter_mut().find(|o| o.id == m.id) {
            Some(idle) => *idle = m.clone(),
            None => self.members.push(m.clone()),
        }
        serving.push(m.id);
        Ok(())
    }

    /// Members owning partitions now, in id order.
    pub fn serving(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.owners.clone();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The document once the change's data has moved: epoch + 1, `pending`
    /// as the owners. `None` when nothing is pending.
    pub fn flip(&self) -> Option<Membership> {
        let owners = self.pending.clone()?.owners;
        let mut next = self.clone();
        next.epoch = self.epoch.saturating_add(1);
        next.owners = owners;
        next.pending = None;
        // Its seal is this document, carried along (`Seal::Flipped`);
        // the maker of the flip sets it.
        next.seal = None;
        Some(next)
    }

    /// The document that abandons the pending change: epoch + 1, the
    /// owners as they are, `pending` cleared. A node that was joining is
    /// then idle (it holds copies only, which maintenance hands back and
    /// drops); nothing acknowledged is lost, since every acknowledged
    /// write has `W` copies on current owners while a change is pending.
    /// For a change that cannot finish (its incoming node died). `None`
    /// when nothing is pending.
    pub fn abort(&self) -> Option<Membership> {
        self.pending.as_ref()?;
        let mut next = self.clone();
        next.epoch = self.epoch.saturating_add(1);
        next.pending = None;
        // Signed anew by the admin who aborts.
        next.seal = None;
        Some(next)
    }

    /// Where member `id` stands.
    pub fn state_of(&self, id: NodeId) -> MemberState {
        let now = self.owners.contains(&id);
        let next = self.pending.as_ref().map(|p| p.owners.contains(&id));
        match (now, next) {
            (false, Some(true)) => MemberState::Joining,
            (true, Some(false)) => MemberState::Leaving,
            (true, _) => MemberState::Member,
            (false, _) => MemberState::Idle,
        }
    }

    /// Partitions member `id` owns now, and once the change flips.
    pub fn partitions_owned(&self, id: NodeId) -> OwnedCounts {
        let count = |t: &[NodeId]| t.iter().filter(|o| **o == id).count();
        let now = count(&self.owners);
        (now, self.pending.as_ref().map_or(now, |p| count(&p.owners)))
    }

    /// The incoming home replicas of `store`'s `partition` (with `n`
    /// replicas): home under `pending` and not under `owners`. Writes go
    /// to them too, and count towards the quorum among the owners to come
    /// (not towards the one among the current owners). Empty when nothing
    /// moves.
    pub fn incoming(&self, partition: u32, n: usize) -> Vec<NodeId> {
        self.swapped(partition, n)
            .map(|(now, next)| not_in(next.home(), now.home()))
            .unwrap_or_default()
    }

    /// The outgoing home replicas of `store`'s `partition` (with `n`
    /// replicas): home under `owners` and not under `pending`. A write's
    /// copy on one of them does not count towards the quorum among the
    /// owners to come. Empty when nothing moves.
    pub fn outgoing(&self, partition: u32, n: usize) -> Vec<NodeId> {
        self.swapped(partition, n)
            .map(|(now, next)| not_in(now.home(), next.home()))
            .unwrap_or_default()
    }

    /// `partition`'s preference lists (with `n` replicas) under the owners
    /// and under the pending ones; `None` when nothing is pending.
    fn swapped(&self, partition: u32, n: usize) -> Option<(PreferenceList, PreferenceList)> {
        let pending = self.pending.as_ref()?;
        Some((
            PreferenceList::walk_home(&self.owners, partition, n),
            PreferenceList::walk_home(&pending.owners, partition, n),
        ))
    }

    /// True when `node` is a home replica of `partition` (with `n`
    /// replicas) now or, while a change moves data, after it: the nodes
    /// that take un-hinted writes and digest requests for it.
    pub fn is_home_or_incoming(&self, node: NodeId, partition: u32, n: usize) -> bool {
        PreferenceList::walk_home(&self.owners, partition, n)
            .home()
            .contains(&node)
            || self.incoming(partition, n).contains(&node)
    }

    /// The home replicas of `partition` (with `n` replicas) under the
    /// current owners.
    pub fn preference_list_of(&self, partition: u32, n: usize) -> Vec<NodeId> {
        PreferenceList::walk_home(&self.owners, partition, n)
            .home()
            .to_vec()
    }

    /// Every copy the pending change needs, by store and partition.
    pub fn transfers(&self) -> Vec<Transfer> {
        let mut out = Vec::new();
        if self.pending.is_none() {
            return out;
        }
        for store in &self.stores {
            let n = usize::from(store.n);
            for partition in 0..self.partitions {
                let from = PreferenceList::walk_home(&self.owners, partition, n)
                    .home()
                    .to_vec();
                for to in self.incoming(partition, n) {
                    out.push(Transfer {
                        store: store.name.clone(),
                        partition,
                        to,
                        from: from.clone(),
                    });
                }
            }
        }
        out
    }
}

/// The nodes of `these` that are not among `those`, in order.
fn not_in(these: &[NodeId], those: &[NodeId]) -> Vec<NodeId> {
    these
        .iter()
        .copied()
        .filter(|id| !those.contains(id))
        .collect()
}
