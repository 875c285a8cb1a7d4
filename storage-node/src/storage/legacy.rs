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
//! (protocol 1); its stores decode with the default limits.

use quire_shared::ids::ClusterId;
use quire_shared::{
    ConflictPolicy, Durability, Member, Membership, NodeId, StoreConfig, StoreLimits,
};
use serde::{Deserialize, Serialize};

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

/// Decodes a stored membership record: format `current`, or format 1.
pub(super) fn decode_membership(record: &[u8], current: u8) -> Option<Membership> {
    match record.split_first()? {
        (&format, body) if format == current => postcard::from_bytes(body).ok(),
        (1, body) => postcard::from_bytes::<MembershipV1>(body)
            .ok()
            .map(Membership::from),
        _ => None,
    }
}

/// The membership document as format 1 stored it.
#[derive(Serialize, Deserialize)]
struct MembershipV1 {
    cluster_id: ClusterId,
    epoch: u64,
    partitions: u32,
    members: Vec<Member>,
    stores: Vec<StoreConfigV1>,
    owners: Vec<NodeId>,
}

impl From<MembershipV1> for Membership {
    fn from(v1: MembershipV1) -> Self {
        Membership {
            cluster_id: v1.cluster_id,
            epoch: v1.epoch,
            partitions: v1.partitions,
            members: v1.members,
            stores: v1
                .stores
                .into_iter()
                .map(|s| StoreConfig {
                    name: s.name,
                    n: s.n,
                    r: s.r,
                    w: s.w,
                    durability: s.durability,
                    policy: s.policy,
                    limits: StoreLimits::default(),
                })
                .collect(),
            owners: v1.owners,
        }
    }
}
