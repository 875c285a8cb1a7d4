//! Well-formed values of every wire type, drawn from a [`Rng`]: what an
//! honest peer sends, before the mutations make it hostile.
//!
//! Sizes stay small (a few entries, short keys) so that mutations land on
//! the structure rather than inside long byte strings; the huge counts
//! come from the mutations.

use crate::rng::Rng;
use quire_shared::access::{set_grant, Access, Serial};
use quire_shared::membership::Pending;
use quire_shared::wire::{
    DeliveredHint, Entry, ErrorCode, ErrorReply, Hint, KeyDigest, Listing, NodeStats,
    PartitionDigest, Reply, Request, Response, StoreTotals, TransferProgress,
};
use quire_shared::{
    ActorId, Change, ClusterId, ConflictPolicy, Durability, Member, Membership, MembershipVersion,
    NodeId, Object, StoreConfig, StoreLimits, Value, VersionVector,
};

/// A store name: usually valid, sometimes not (the node must refuse it).
pub fn store(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => String::new(),
        1 => "Not-Valid!".into(),
        _ => rng.pick(&["default", "carts", "s", "a_b-9"]).to_string(),
    }
}

/// A user key, sometimes empty.
pub fn key(rng: &mut Rng) -> Vec<u8> {
    let len = rng.len(0, 12);
    rng.bytes(len)
}

/// A value or a tombstone.
pub fn value(rng: &mut Rng) -> Value {
    let timestamp_ms = rng.number();
    if rng.one_in(4) {
        Value::tombstone(timestamp_ms)
    } else {
        let len = rng.len(0, 8);
        Value::bytes(rng.bytes(len), timestamp_ms)
    }
}

/// An actor id from a small pool, so that two draws often meet.
pub fn actor(rng: &mut Rng) -> ActorId {
    ActorId(*rng.pick(&[0, 1, 2, 3, 7, 1 << 40, u64::MAX]))
}

/// A canonical version vector.
pub fn clock(rng: &mut Rng) -> VersionVector {
    let len = rng.len(0, 4);
    VersionVector::from_pairs((0..len).map(|_| (actor(rng), rng.number())))
}

/// A well-formed object: a few events at a few actors, some discarded by
/// a write that had seen them.
pub fn object(rng: &mut Rng) -> Object {
    let mut o = Object::new();
    for _ in 0..rng.len(0, 4) {
        let context = if rng.bool() {
            o.join()
        } else {
            VersionVector::new()
        };
        o = o.update(&context, actor(rng), value(rng));
    }
    o
}

fn node(rng: &mut Rng) -> NodeId {
    NodeId(rng.number())
}

fn maybe<T>(rng: &mut Rng, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
    rng.bool().then(|| f(rng))
}

fn progress(rng: &mut Rng) -> TransferProgress {
    TransferProgress {
        change: rng.number(),
        after: maybe(rng, key),
        done: rng.bool(),
        keys: rng.number(),
        bytes: rng.number(),
        started_ms: rng.number(),
        updated_ms: rng.number(),
    }
}

fn digest(rng: &mut Rng) -> [u8; 16] {
    let mut d = [0; 16];
    d.copy_from_slice(&rng.bytes(16));
    d
}

/// Any request, every variant reachable.
pub fn request(rng: &mut Rng) -> Request {
    let (s, p) = (store(rng), rng.number_u32());
    match rng.below(16) {
        0 => Request::Hello {
            protocol_version: rng.number_u32(),
            cluster_id: maybe(rng, |r| ClusterId(r.number())),
        },
        1 => Request::Get {
            store: s,
            key: key(rng),
            hint: maybe(rng, node),
        },
        2 => Request::Put {
            store: s,
            key: key(rng),
            value: value(rng),
            context: clock(rng),
            hint: maybe(rng, node),
        },
        3 => Request::Replicate {
            store: s,
            key: key(rng),
            object: object(rng),
            hint: maybe(rng, node),
        },
        4 => Request::Hints {
            target: node(rng),
            after: maybe(rng, key),
            limit: rng.number_u32(),
        },
        5 => Request::DropHints {
            target: node(rng),
            hints: (0..rng.len(0, 3))
                .map(|_| DeliveredHint {
                    store: store(rng),
                    key: key(rng),
                    clock: clock(rng),
                })
                .collect(),
        },
        6 => Request::GetMembership,
        7 => Request::MerkleRoot {
            store: s,
            partition: p,
        },
        8 => Request::MerkleSegments {
            store: s,
            partition: p,
            first: rng.number() as u16,
            count: rng.number() as u16,
            group: rng.number() as u16,
        },
        9 => Request::ScanSegment {
            store: s,
            partition: p,
            segments: (0..rng.len(0, 4)).map(|_| rng.number() as u16).collect(),
            tombstones_only: rng.bool(),
            listing: *rng.pick(&[Listing::Objects, Listing::Digests]),
            after: maybe(rng, key),
            bytes_max: rng.bool().then(|| rng.number() as u32),
        },
        10 => Request::Stats,
        11 => Request::DeleteIfEqual {
            store: s,
            key: key(rng),
            object: object(rng),
        },
        12 => Request::TransferState {
            store: s,
            partition: p,
        },
        13 => Request::TransferPage {
            store: s,
            partition: p,
            change: rng.number(),
            entries: Vec::new(),
            progress: Some(progress(rng)),
        },
        14 => Request::DropPartition {
            store: s,
            partition: p,
            root: digest(rng),
        },
        15 if rng.below(2) == 0 => Request::TransferPage {
            store: s,
            partition: p,
            change: rng.number(),
            entries: (0..rng.len(0, 3))
                .map(|_| Entry {
                    key: key(rng),
                    object: object(rng),
                })
                .collect(),
            progress: maybe(rng, progress),
        },
        _ => {
            let membership = Box::new(membership(rng));
            let base = maybe(rng, |r| MembershipVersion {
                epoch: r.number(),
                digest: digest(r),
            });
            Request::PutMembership { membership, base }
        }
    }
}

/// Any reply, every variant reachable.
pub fn reply(rng: &mut Rng) -> Reply {
    match rng.below(16) {
        0 => Reply::Hello {
            node_id: node(rng),
            actor_id: actor(rng),
            cluster_id: maybe(rng, |r| ClusterId(r.number())),
            protocol_version: rng.number_u32(),
            metrics: maybe(rng, |r| {
                std::net::SocketAddr::from(([127, 0, 0, 1], r.number_u32() as u16))
            }),
            clock_ms: rng.number(),
        },
        1 => Reply::Object(maybe(rng, object)),
        2 => Reply::Stored(object(rng)),
        3 => Reply::Hints {
            hints: (0..rng.len(0, 3))
                .map(|_| Hint {
                    store: store(rng),
                    key: key(rng),
                    object: object(rng),
                })
                .collect(),
            next: maybe(rng, key),
        },
        4 => Reply::Dropped(rng.number_u32()),
        5 => Reply::Membership(maybe(rng, membership)),
        6 => Reply::MembershipEpoch(rng.number()),
        7 => Reply::MerkleRoot(PartitionDigest {
            root: digest(rng),
            tombstones: rng.number(),
        }),
        8 => Reply::MerkleSegments((0..rng.len(0, 4)).map(|_| digest(rng)).collect()),
        9 => Reply::Segment {
            entries: (0..rng.len(0, 3))
                .map(|_| Entry {
                    key: key(rng),
                    object: object(rng),
                })
                .collect(),
            next: maybe(rng, key),
        },
        10 => Reply::SegmentDigests {
            keys: (0..rng.len(0, 3))
                .map(|_| KeyDigest {
                    key: key(rng),
                    digest: digest(rng),
                })
                .collect(),
            next: maybe(rng, key),
        },
        11 => Reply::Stats(NodeStats {
            stores: (0..rng.len(0, 2))
                .map(|_| StoreTotals {
                    store: store(rng),
                    objects: rng.number(),
                    bytes: rng.number(),
                    tombstones: rng.number(),
                })
                .collect(),
            hints: (0..rng.len(0, 2))
                .map(|_| (node(rng), rng.number()))
                .collect(),
            merkle_exchanges: rng.number(),
        }),
        12 => Reply::Deleted(rng.bool()),
        13 => Reply::Transfer(progress(rng)),
        _ => Reply::PartitionDropped {
            keys: rng.number(),
            more: rng.bool(),
            root: digest(rng),
        },
    }
}

/// A response: a reply, or a refusal.
pub fn response(rng: &mut Rng) -> Response {
    let result = if rng.one_in(5) {
        let codes = [
            ErrorCode::Malformed,
            ErrorCode::NotOwner,
            ErrorCode::InvalidContext,
            ErrorCode::CopyChanged,
        ];
        Err(ErrorReply {
            code: *rng.pick(&codes),
            message: "refused".into(),
        })
    } else {
        Ok(reply(rng))
    };
    Response {
        epoch: rng.number(),
        result,
    }
}

/// A store configuration that fits a cluster of `serving` nodes.
fn store_config(rng: &mut Rng, name: &str, serving: usize) -> StoreConfig {
    let n = rng.len(1, serving.min(5)) as u8;
    StoreConfig {
        name: name.into(),
        n,
        r: rng.len(1, n as usize) as u8,
        w: rng.len(1, n as usize) as u8,
        durability: *rng.pick(&[Durability::Sync, Durability::Buffered]),
        policy: *rng.pick(&[ConflictPolicy::Siblings, ConflictPolicy::Lww]),
        limits: StoreLimits {
            siblings_warn: 1 + rng.below(50) as u32,
            siblings_max: 50 + rng.below(50) as u32,
            object_bytes_max: 1024 + rng.below(1 << 20) as u32,
            tombstone_grace_ms: rng.number(),
        },
    }
}

fn member(rng: &mut Rng, id: u64) -> Member {
    Member {
        id: NodeId(id),
        addr: format!("10.0.0.{id}:7000"),
        zone: rng.pick(&["", "a", "b"]).to_string(),
        weight: rng.len(1, 4) as u32,
    }
}

/// A valid membership document, sometimes in the middle of a change (with
/// pending owners).
pub fn membership(rng: &mut Rng) -> Membership {
    let members: Vec<Member> = (0..rng.len(1, 6) as u64)
        .map(|i| member(rng, 1 + i * 3))
        .collect();
    let partitions = 1 << rng.below(7);
    let serving = members.len().min(partitions as usize);
    let mut stores: Vec<StoreConfig> = ["carts", "default", "s"][..rng.index(4)]
        .iter()
        .map(|name| store_config(rng, name, serving))
        .collect();
    let cluster_id = ClusterId(rng.u64());
    let doc = match Membership::new(cluster_id, partitions, members.clone(), stores.clone()) {
        Ok(doc) => doc,
        // The claim may leave a light member without partitions: N = 1
        // fits any cluster.
        Err(_) => {
            for s in &mut stores {
                (s.n, s.r, s.w) = (1, 1, 1);
            }
            Membership::new(cluster_id, partitions, members, stores)
                .expect("a generated document is valid")
        }
    };
    if rng.one_in(3) {
        let change = match rng.below(3) {
            0 => Change::Join(member(rng, 100)),
            1 => Change::Leave(doc.members[rng.index(doc.members.len())].id),
            _ => Change::Reweight {
                node: doc.members[0].id,
                weight: rng.len(1, 8) as u32,
            },
        };
        if let Ok(next) = doc.plan(&[change]) {
            if next.validate().is_ok() {
                return with_access(rng, next);
            }
        }
    }
    with_access(rng, doc)
}

/// `doc` with some grants and revoked serials, kept in the order
/// validation requires.
fn with_access(rng: &mut Rng, mut doc: Membership) -> Membership {
    for _ in 0..rng.index(4) {
        let name = ["cart", "report", "a.b-c_d"][rng.index(3)];
        let store = ["carts", "default", "s"][rng.index(3)];
        let access = [None, Some(Access::Read), Some(Access::Write)][rng.index(3)];
        set_grant(&mut doc.grants, name, store, access);
    }
    for _ in 0..rng.index(3) {
        let serial = Serial(rng.u64().to_be_bytes().to_vec());
        if let Err(at) = doc.revoked.binary_search(&serial) {
            doc.revoked.insert(at, serial);
        }
    }
    doc
}

/// Pending owners for `doc`, naming its members: as many as its
/// partitions (at most a few hundred, whatever the count says).
pub fn pending(rng: &mut Rng, doc: &Membership) -> Pending {
    Pending {
        since: doc.epoch,
        owners: (0..doc.partitions.min(256))
            .map(|_| doc.members[rng.index(doc.members.len())].id)
            .collect(),
    }
}
