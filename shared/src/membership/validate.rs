//! Checking a membership document before anyone acts on it, in time
//! that grows as O(M log M) with its members (and as O(Q log M) with its
//! partitions): nodes check every document a peer offers, so a document
//! built to be slow to check must not be slow to refuse.

use super::{Member, Membership, MembershipError};
use crate::access::{validate_grants, GRANTS_MAX, REVOKED_MAX};
use crate::limits::{
    valid_store_name, MEMBERSHIP_BYTES_MAX, MEMBERS_MAX, PARTITIONS_MAX, STORES_MAX,
};
use crate::ring::{self, NodeId};

impl Membership {
    /// Checks every invariant; nodes call it before accepting a document.
    ///
    /// Sizes first, so nothing below runs on an oversized document, and
    /// then O(M log M + Q log M + S log S) for M members, Q partitions and S
    /// stores: duplicates are found by sorting and owners by binary search,
    /// never by comparing every pair.
    pub fn validate(&self) -> Result<(), MembershipError> {
        self.validate_size()?;
        if self.epoch == u64::MAX {
            return Err(MembershipError::EpochExhausted(self.epoch));
        }
        if !ring::valid_partition_count(self.partitions) {
            return Err(MembershipError::BadPartitionCount(self.partitions));
        }
        if self.members.is_empty() {
            return Err(MembershipError::NoMembers);
        }
        let ids = sorted_member_ids(&self.members)?;
        let table_ok = |t: &[NodeId]| {
            t.len() == self.partitions as usize && t.iter().all(|o| ids.binary_search(o).is_ok())
        };
        let pending = self.pending.as_ref().map(|p| p.owners.as_slice());
        if !table_ok(&self.owners) || !pending.is_none_or(table_ok) {
            return Err(MembershipError::BadOwners);
        }
        // A store needs N distinct owners now and after the move.
        let serving = distinct_count(&self.owners).min(pending.map_or(usize::MAX, distinct_count));
        if let Some(name) = first_duplicate(self.stores.iter().map(|s| s.name.as_str())) {
            return Err(MembershipError::DuplicateStore(name.to_string()));
        }
        for s in &self.stores {
            if !valid_store_name(&s.name) {
                return Err(MembershipError::BadStoreName(s.name.clone()));
            }
            let fits = s.r >= 1 && s.w >= 1 && s.r <= s.n && s.w <= s.n;
            if !fits || s.n as usize > serving {
                return Err(MembershipError::BadQuorum {
                    name: s.name.clone(),
                    n: s.n,
                    r: s.r,
                    w: s.w,
                    members: serving,
                });
            }
            s.limits
                .validate()
                .map_err(|problem| MembershipError::BadStoreLimits {
                    name: s.name.clone(),
                    problem,
                })?;
        }
        validate_grants(&self.grants)?;
        if !self.revoked.windows(2).all(|w| w[0] < w[1]) {
            return Err(MembershipError::UnsortedRevocations);
        }
        Ok(())
    }

    /// The counts first (cheap, and they bound the encoding's cost), then
    /// the encoded size.
    fn validate_size(&self) -> Result<(), MembershipError> {
        let too_large = |what: String, max: usize| Err(MembershipError::TooLarge { what, max });
        if self.members.len() > MEMBERS_MAX {
            return too_large(format!("{} members", self.members.len()), MEMBERS_MAX);
        }
        if self.stores.len() > STORES_MAX {
            return too_large(format!("{} stores", self.stores.len()), STORES_MAX);
        }
        if self.grants.len() > GRANTS_MAX {
            return too_large(format!("{} grants", self.grants.len()), GRANTS_MAX);
        }
        if self.revoked.len() > REVOKED_MAX {
            return too_large(
                format!("{} revoked serials", self.revoked.len()),
                REVOKED_MAX,
            );
        }
        let owners = self.owners.len() + self.pending.as_ref().map_or(0, |p| p.owners.len());
        if owners > 2 * PARTITIONS_MAX {
            return too_large(format!("{owners} owner entries"), 2 * PARTITIONS_MAX);
        }
        let bytes = postcard::experimental::serialized_size(self).unwrap_or(usize::MAX);
        if bytes > MEMBERSHIP_BYTES_MAX {
            return too_large(format!("{bytes} bytes"), MEMBERSHIP_BYTES_MAX);
        }
        Ok(())
    }
}

/// The members' ids, sorted, if no id and no address appears twice.
fn sorted_member_ids(members: &[Member]) -> Result<Vec<NodeId>, MembershipError> {
    let duplicate = |m: &Member| MembershipError::DuplicateMember(format!("{} ({})", m.id, m.addr));
    let mut by_id: Vec<&Member> = members.iter().collect();
    by_id.sort_unstable_by_key(|m| m.id);
    if let Some(w) = by_id.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(duplicate(w[1]));
    }
    if let Some(addr) = first_duplicate(members.iter().map(|m| m.addr.as_str())) {
        let m = members
            .iter()
            .find(|m| m.addr == addr)
            .expect("a member has it");
        return Err(duplicate(m));
    }
    Ok(by_id.into_iter().map(|m| m.id).collect())
}

/// The first name (in sorted order) that appears twice, by sorting.
fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut sorted: Vec<&str> = names.collect();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Distinct nodes in an owner table.
fn distinct_count(owners: &[NodeId]) -> usize {
    let mut ids = owners.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}
