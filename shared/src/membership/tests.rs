//! Documents: validation, claims, and staged changes.

use super::*;

fn members(k: u64) -> Vec<Member> {
    (1..=k)
        .map(|id| Member {
            id: NodeId(id * 1000),
            addr: format!("127.0.0.1:{}", 7000 + id),
            zone: "z".into(),
            weight: 1,
        })
        .collect()
}

fn store(n: u8, r: u8, w: u8) -> StoreConfig {
    StoreConfig {
        name: "default".into(),
        n,
        r,
        w,
        durability: Durability::Sync,
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    }
}

#[test]
fn a_valid_document_is_accepted() {
    let doc = Membership::new(ClusterId(9), 64, members(3), vec![store(3, 2, 2)]).unwrap();
    assert_eq!(doc.owners.len(), 64);
    let list = doc.preference_list("default", b"k", 3);
    assert_eq!(list.home().len(), 3);
}

#[test]
fn invalid_documents_are_refused() {
    assert_eq!(
        Membership::new(ClusterId(9), 63, members(3), vec![]).unwrap_err(),
        MembershipError::BadPartitionCount(63)
    );
    assert!(matches!(
        Membership::new(ClusterId(9), 64, members(2), vec![store(3, 2, 2)]).unwrap_err(),
        MembershipError::BadQuorum { .. }
    ));
    assert!(matches!(
        Membership::new(ClusterId(9), 64, members(3), vec![store(3, 0, 2)]).unwrap_err(),
        MembershipError::BadQuorum { .. }
    ));
    let mut dup = members(2);
    dup[1].addr = dup[0].addr.clone();
    assert!(matches!(
        Membership::new(ClusterId(9), 64, dup, vec![]).unwrap_err(),
        MembershipError::DuplicateMember(_)
    ));
    assert_eq!(
        Membership::new(ClusterId(9), 64, vec![], vec![]).unwrap_err(),
        MembershipError::NoMembers
    );
    let mut loose = store(3, 2, 2);
    loose.limits.siblings_warn = loose.limits.siblings_max + 1;
    assert!(matches!(
        Membership::new(ClusterId(9), 64, members(3), vec![loose]).unwrap_err(),
        MembershipError::BadStoreLimits { .. }
    ));
}

fn member(id: u64) -> Member {
    Member {
        id: NodeId(id * 1000),
        addr: format!("127.0.0.1:{}", 7000 + id),
        zone: "z".into(),
        weight: 1,
    }
}

fn three() -> Membership {
    Membership::new(ClusterId(9), 64, members(3), vec![store(3, 2, 2)]).unwrap()
}

fn moved(doc: &Membership) -> usize {
    let pending = &doc.pending.as_ref().expect("a change is pending").owners;
    doc.owners
        .iter()
        .zip(pending)
        .filter(|(a, b)| a != b)
        .count()
}

/// Once `doc`'s change flips, no partition has incoming or outgoing
/// replicas.
fn flipped_has_nothing_moving(doc: &Membership) -> bool {
    let flipped = doc.flip().expect("a change is pending");
    (0..flipped.partitions)
        .all(|p| flipped.incoming(p, 3).is_empty() && flipped.outgoing(p, 3).is_empty())
}

#[test]
fn a_join_moves_about_its_share_to_the_new_node_only() {
    let doc = three();
    let next = doc.plan(&[Change::Join(member(4))]).unwrap();
    assert_eq!(next.epoch, doc.epoch + 1);
    assert_eq!(next.pending.as_ref().unwrap().since, next.epoch);
    assert_eq!(next.owners, doc.owners, "reads keep to today's owners");
    assert!(moved(&next) <= 16, "moved {} of 64", moved(&next));
    assert_eq!(next.state_of(NodeId(4000)), MemberState::Joining);
    assert_eq!(next.state_of(NodeId(1000)), MemberState::Member);
    let transfers = next.transfers();
    assert!(!transfers.is_empty());
    assert!(transfers.iter().all(|t| t.to == NodeId(4000)));
    assert!(transfers.iter().all(|t| t.from.len() == 3));
    for t in &transfers {
        assert!(next.is_home_or_incoming(NodeId(4000), t.partition, 3));
        // The joining node takes one current home replica's place.
        assert_eq!(next.incoming(t.partition, 3), [NodeId(4000)]);
        let outgoing = next.outgoing(t.partition, 3);
        assert_eq!(outgoing.len(), 1);
        assert!(t.from.contains(&outgoing[0]));
    }
    assert!(flipped_has_nothing_moving(&next));
    // One change at a time.
    assert_eq!(
        next.plan(&[Change::Leave(NodeId(1000))]).unwrap_err(),
        ChangeError::ChangeInProgress(next.epoch)
    );
    let flipped = next.flip().unwrap();
    assert_eq!(flipped.epoch, next.epoch + 1);
    assert_eq!(flipped.owners, next.pending.unwrap().owners);
    assert_eq!(flipped.state_of(NodeId(4000)), MemberState::Member);
    assert!(flipped.transfers().is_empty());
    assert_eq!(flipped.partitions_owned(NodeId(4000)), (16, 16));
}

#[test]
fn a_leave_moves_only_the_leavers_partitions_and_leaves_it_idle() {
    let four = three()
        .plan(&[Change::Join(member(4))])
        .unwrap()
        .flip()
        .unwrap();
    let next = four.plan(&[Change::Leave(NodeId(2000))]).unwrap();
    assert_eq!(next.state_of(NodeId(2000)), MemberState::Leaving);
    let own = four.partitions_owned(NodeId(2000)).0;
    assert_eq!(moved(&next), own, "only its own partitions move");
    assert!(next.transfers().iter().all(|t| t.to != NodeId(2000)));
    let after = next.flip().unwrap();
    assert_eq!(after.state_of(NodeId(2000)), MemberState::Idle);
    assert_eq!(after.partitions_owned(NodeId(2000)), (0, 0));
    assert!(
        after.member(NodeId(2000)).is_some(),
        "kept until its data is handed off"
    );
    // An idle member may come back.
    let back = after.plan(&[Change::Join(member(2))]).unwrap();
    assert_eq!(back.state_of(NodeId(2000)), MemberState::Joining);
    // Or be removed: nothing moves, the document forgets it.
    let removed = after.plan(&[Change::Remove(NodeId(2000))]).unwrap();
    assert!(removed.member(NodeId(2000)).is_none());
    assert!(removed.pending.is_none());
    assert_eq!(removed.owners, after.owners);
    // Only idle members are removed.
    assert_eq!(
        after.plan(&[Change::Remove(NodeId(1000))]).unwrap_err(),
        ChangeError::NotIdle(NodeId(1000))
    );
}

#[test]
fn a_replace_hands_exactly_the_old_nodes_partitions_to_the_new_one() {
    let doc = three();
    let next = doc
        .plan(&[Change::Replace {
            old: NodeId(3000),
            new: member(5),
        }])
        .unwrap();
    let pending = &next.pending.as_ref().unwrap().owners;
    for (now, then) in doc.owners.iter().zip(pending) {
        let expected = if *now == NodeId(3000) {
            NodeId(5000)
        } else {
            *now
        };
        assert_eq!(*then, expected);
    }
    assert!(next.transfers().iter().all(|t| t.to == NodeId(5000)));
    assert_eq!(next.state_of(NodeId(3000)), MemberState::Leaving);
}

#[test]
fn a_reweight_moves_what_the_weights_require() {
    let four = three()
        .plan(&[Change::Join(member(4))])
        .unwrap()
        .flip()
        .unwrap();
    let next = four
        .plan(&[Change::Reweight {
            node: NodeId(4000),
            weight: 0,
        }])
        .unwrap();
    assert_eq!(next.partitions_owned(NodeId(4000)), (16, 0));
    assert_eq!(next.member(NodeId(4000)).unwrap().weight, 0);
}

#[test]
fn impossible_changes_are_refused_with_a_reason() {
    let doc = three();
    assert_eq!(
        doc.plan(&[Change::Leave(NodeId(77))]).unwrap_err(),
        ChangeError::NotServing(NodeId(77))
    );
    assert!(matches!(
        doc.plan(&[Change::Join(member(1))]).unwrap_err(),
        ChangeError::AlreadyMember(_)
    ));
    let mut same_addr = member(9);
    same_addr.addr = member(1).addr;
    assert!(matches!(
        doc.plan(&[Change::Join(same_addr)]).unwrap_err(),
        ChangeError::AlreadyMember(_)
    ));
    let all: Vec<Change> = (1..=3).map(|i| Change::Leave(NodeId(i * 1000))).collect();
    assert_eq!(doc.plan(&all).unwrap_err(), ChangeError::NoneLeft);
    // N = 3 needs three nodes owning partitions.
    assert!(matches!(
        doc.plan(&[Change::Leave(NodeId(1000))]).unwrap_err(),
        ChangeError::Invalid(MembershipError::BadQuorum { .. })
    ));
}

/// A document at every count bound validates in milliseconds (the check is
/// O(M log M), not O(M²): 4096 members compared pairwise would be 8 million
/// comparisons per field), and one past a bound is refused by its size.
#[test]
fn validation_is_fast_at_the_bounds_and_oversized_documents_are_refused() {
    use crate::limits::{MEMBERSHIP_BYTES_MAX, MEMBERS_MAX, PARTITIONS_MAX};
    let many = members(MEMBERS_MAX as u64);
    let mut doc = Membership::new(ClusterId(9), 64, members(3), vec![store(3, 2, 2)]).unwrap();
    doc.partitions = PARTITIONS_MAX as u32;
    doc.owners = (0..PARTITIONS_MAX)
        .map(|p| many[p % many.len()].id)
        .collect();
    doc.members = many;
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(doc.validate(), Ok(()));
    }
    let each = started.elapsed() / 10;
    assert!(
        each < std::time::Duration::from_millis(200),
        "validating {MEMBERS_MAX} members and {PARTITIONS_MAX} partitions took {each:?}"
    );
    // A duplicate address among them is still found.
    let mut dup = doc.clone();
    dup.members[4000].addr = dup.members[17].addr.clone();
    assert!(matches!(
        dup.validate(),
        Err(MembershipError::DuplicateMember(_))
    ));

    let mut over = doc.clone();
    over.members.push(Member {
        id: NodeId(u64::MAX),
        addr: "elsewhere:1".into(),
        zone: "z".into(),
        weight: 1,
    });
    assert!(matches!(
        over.validate(),
        Err(MembershipError::TooLarge { max, .. }) if max == MEMBERS_MAX
    ));
    let mut long = doc.clone();
    long.members[0].zone = "z".repeat(MEMBERSHIP_BYTES_MAX);
    assert!(matches!(
        long.validate(),
        Err(MembershipError::TooLarge { max, .. }) if max == MEMBERSHIP_BYTES_MAX
    ));
}

/// A document naming two million members is refused while it decodes,
/// from the announced count, before a single member is held.
#[test]
fn a_two_million_member_document_does_not_decode() {
    let mut doc = Membership::new(ClusterId(9), 64, members(3), vec![store(3, 2, 2)]).unwrap();
    doc.members = (0..2_000_000u64)
        .map(|id| Member {
            id: NodeId(id),
            addr: String::new(),
            zone: String::new(),
            weight: 1,
        })
        .collect();
    let bytes = postcard::to_allocvec(&doc).unwrap();
    assert!(bytes.len() < 16 << 20, "it fits a frame: {}", bytes.len());
    let refused = postcard::from_bytes::<Membership>(&bytes);
    assert!(refused.is_err(), "decoded {} members", doc.members.len());
}

#[test]
fn an_abort_keeps_todays_owners_and_leaves_the_joiner_idle() {
    let doc = three();
    assert!(doc.abort().is_none(), "nothing pending, nothing to abort");
    let next = doc.plan(&[Change::Join(member(4))]).unwrap();
    let aborted = next.abort().unwrap();
    assert_eq!(aborted.epoch, next.epoch + 1);
    assert!(aborted.pending.is_none());
    assert_eq!(aborted.owners, doc.owners, "nothing moved");
    assert_eq!(aborted.state_of(NodeId(4000)), MemberState::Idle);
    assert!(aborted.transfers().is_empty());
    assert!(aborted.validate().is_ok());
    assert!(
        aborted.supersedes(&next),
        "nodes take it over the pending one"
    );
    // The next change may be planned at once, and the idle node may come
    // back or be removed.
    assert!(aborted.plan(&[Change::Join(member(4))]).is_ok());
    assert!(aborted.plan(&[Change::Remove(NodeId(4000))]).is_ok());
}
