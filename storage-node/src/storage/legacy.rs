//! Stored records in the formats older binaries wrote, and their upgrade.
//!
//! postcard is not self-describing: a field added to a stored struct
//! makes every record written before it fail to decode, and a node that
//! cannot read its membership document does not start. Each stored record
//! therefore opens with a format byte, and a change of shape gets a new
//! byte and a frozen copy of the old shape here, so records of every
//! earlier format still decode. Records are upgraded when read and written
//! back in the current format the next time they change.
//!
//! Format 1 of the membership document predates per-store object limits
//! (protocol 1); its stores decode with the default limits. Format 2
//! (protocols 2 and 3) predates the tombstone grace period; its stores
//! keep their object limits and get the default grace. Format 3
//! (protocols 4 and 5) predates membership change: nothing is pending.
//! Format 4 (protocol 6) predates grants: no client holds any.

use quire_shared::ids::ClusterId;
use quire_shared::{
    ConflictPolicy, Durability, Member, Membership, NodeId, Pending, StoreConfig, StoreLimits,
};
use serde::{Deserialize, Serialize};

/// Decodes a stored membership record: format `current`, 4, 3, 2 or 1.
pub(super) fn decode_membership(record: &[u8], current: u8) -> Option<Membership> {
    match record.split_first()? {
        (&format, body) if format == current => postcard::from_bytes(body).ok(),
        (4, body) => postcard::from_bytes::<MembershipV4>(body)
            .ok()
            .map(Membership::from),
        (3, body) => postcard::from_bytes::<MembershipOf<StoreConfig>>(body)
            .ok()
            .map(Membership::from),
        (2, body) => postcard::from_bytes::<MembershipOf<StoreConfigV2>>(body)
            .ok()
            .map(Membership::from),
        (1, body) => postcard::from_bytes::<MembershipOf<StoreConfigV1>>(body)
            .ok()
            .map(Membership::from),
        _ => None,
    }
}

/// A store as format 1 stored it: no limits.
#[derive(Serialize, Deserialize)]
struct StoreConfigV1 {
    name: String,
    n: u8,
    r: u8,
    w: u8,
    durability: Durability,
    policy: ConflictPolicy,
}

/// A store as format 2 stored it: object limits, no tombstone grace.
#[derive(Serialize, Deserialize)]
struct StoreConfigV2 {
    name: String,
    n: u8,
    r: u8,
    w: u8,
    durability: Durability,
    policy: ConflictPolicy,
    limits: StoreLimitsV2,
}

/// Store limits as format 2 stored them.
#[derive(Serialize, Deserialize)]
struct StoreLimitsV2 {
    siblings_warn: u32,
    siblings_max: u32,
    object_bytes_max: u32,
}

impl From<StoreConfigV1> for StoreConfig {
    fn from(s: StoreConfigV1) -> Self {
        StoreConfig {
            name: s.name,
            n: s.n,
            r: s.r,
            w: s.w,
            durability: s.durability,
            policy: s.policy,
            limits: StoreLimits::default(),
        }
    }
}

impl From<StoreConfigV2> for StoreConfig {
    fn from(s: StoreConfigV2) -> Self {
        StoreConfig {
            name: s.name,
            n: s.n,
            r: s.r,
            w: s.w,
            durability: s.durability,
            policy: s.policy,
            limits: StoreLimits {
                siblings_warn: s.limits.siblings_warn,
                siblings_max: s.limits.siblings_max,
                object_bytes_max: s.limits.object_bytes_max,
                ..StoreLimits::default()
            },
        }
    }
}

/// The membership document as formats 1 to 3 stored it, with their
/// store shape `S`: no pending owners.
#[derive(Serialize, Deserialize)]
struct MembershipOf<S> {
    cluster_id: ClusterId,
    epoch: u64,
    partitions: u32,
    members: Vec<Member>,
    stores: Vec<S>,
    owners: Vec<NodeId>,
}

impl<S: Into<StoreConfig>> From<MembershipOf<S>> for Membership {
    fn from(old: MembershipOf<S>) -> Self {
        Membership {
            cluster_id: old.cluster_id,
            epoch: old.epoch,
            partitions: old.partitions,
            members: old.members,
            stores: old.stores.into_iter().map(Into::into).collect(),
            owners: old.owners,
            pending: None,
            grants: Vec::new(),
            revoked: Vec::new(),
            seal: None,
        }
    }
}

/// The membership document as format 4 stored it: pending owners, no
/// grants.
#[derive(Serialize, Deserialize)]
struct MembershipV4 {
    cluster_id: ClusterId,
    epoch: u64,
    partitions: u32,
    members: Vec<Member>,
    stores: Vec<StoreConfig>,
    owners: Vec<NodeId>,
    pending: Option<Pending>,
}

impl From<MembershipV4> for Membership {
    fn from(old: MembershipV4) -> Self {
        Membership {
            cluster_id: old.cluster_id,
            epoch: old.epoch,
            partitions: old.partitions,
            members: old.members,
            stores: old.stores,
            owners: old.owners,
            pending: old.pending,
            grants: Vec::new(),
            revoked: Vec::new(),
            seal: None,
        }
    }
}
