//! The membership target: `Membership::validate` on valid documents, on
//! documents with one field made wrong, and on documents decoded from
//! mutated bytes.
//!
//! Properties: validation never panics; it accepts exactly what an oracle
//! written separately from it accepts; an accepted document survives
//! encode and decode unchanged (same digest, still valid), a node would
//! take it on first offer and keep it on a repeat, and every store's
//! preference lists have N distinct home replicas.

use crate::gen;
use crate::rng::{mutate, Rng};
use crate::{allocated_by, assert_alloc_bounded};
use quire_shared::limits::{StoreLimits, OBJECT_BYTES_CEILING, SIBLINGS_CEILING};
use quire_shared::replica::{accept_membership, MembershipOffer};
use quire_shared::{Membership, NodeId};
use std::collections::BTreeSet;

/// What validation must accept, worked out without its code.
fn oracle(doc: &Membership) -> bool {
    let ids: BTreeSet<NodeId> = doc.members.iter().map(|m| m.id).collect();
    let addrs: BTreeSet<&str> = doc.members.iter().map(|m| m.addr.as_str()).collect();
    let q = doc.partitions;
    let partitions_ok = q != 0 && q & (q - 1) == 0 && q <= 65_536;
    let members_ok = !doc.members.is_empty()
        && ids.len() == doc.members.len()
        && addrs.len() == doc.members.len();
    let table_ok = |t: &[NodeId]| t.len() == q as usize && t.iter().all(|o| ids.contains(o));
    let tables_ok =
        table_ok(&doc.owners) && doc.pending.as_ref().is_none_or(|p| table_ok(&p.owners));
    if doc.epoch == u64::MAX || !partitions_ok || !members_ok || !tables_ok {
        return false;
    }
    let distinct = |t: &[NodeId]| t.iter().collect::<BTreeSet<_>>().len();
    let mut serving = distinct(&doc.owners);
    if let Some(p) = &doc.pending {
        serving = serving.min(distinct(&p.owners));
    }
    let names: BTreeSet<&str> = doc.stores.iter().map(|s| s.name.as_str()).collect();
    let store_name_ok = |name: &str| {
        (1..=24).contains(&name.len())
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    };
    let stores_ok = names.len() == doc.stores.len()
        && doc.stores.iter().all(|s| {
            let quorum_ok = 1 <= s.r.min(s.w) && s.r.max(s.w) <= s.n && (s.n as usize) <= serving;
            store_name_ok(&s.name) && quorum_ok && limits_ok(&s.limits)
        });
    // Grants: a valid principal and store name each, in strictly rising
    // (name, store) order; revoked serials in strictly rising order.
    let principal_ok = |name: &str| {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let grants_ok = doc
        .grants
        .iter()
        .all(|g| principal_ok(&g.name) && store_name_ok(&g.store))
        && doc
            .grants
            .iter()
            .zip(doc.grants.iter().skip(1))
            .all(|(a, b)| (&a.name, &a.store) < (&b.name, &b.store));
    let revoked_ok = doc
        .revoked
        .iter()
        .zip(doc.revoked.iter().skip(1))
        .all(|(a, b)| a < b);
    stores_ok && grants_ok && revoked_ok
}

fn limits_ok(l: &StoreLimits) -> bool {
    (1..=SIBLINGS_CEILING).contains(&l.siblings_max)
        && (1..=l.siblings_max).contains(&l.siblings_warn)
        && (1024..=OBJECT_BYTES_CEILING).contains(&l.object_bytes_max)
}

/// One field of `doc` changed, often to a value validation must refuse.
fn break_one_field(rng: &mut Rng, doc: &mut Membership) {
    if doc.members.is_empty() {
        // Already refused for that; an owner table to go with nothing.
        doc.owners.clear();
        return;
    }
    let m = rng.index(doc.members.len());
    match rng.below(15) {
        0 => doc.epoch = *rng.pick(&[0, u64::MAX - 1, u64::MAX]),
        1 => doc.partitions = rng.number_u32(),
        2 => doc.members.clear(),
        3 => {
            let copy = doc.members[m].clone();
            doc.members.push(copy);
        }
        4 => doc.members[m].addr = doc.members[rng.index(doc.members.len())].addr.clone(),
        5 => doc.members[m].id = NodeId(rng.number()),
        6 => {
            let removed = doc.members.remove(m);
            if rng.bool() {
                doc.members.push(removed);
            }
        }
        7 => {
            let len = doc.owners.len();
            doc.owners.truncate(rng.index(len + 1));
        }
        8 if !doc.owners.is_empty() => {
            let p = rng.index(doc.owners.len());
            doc.owners[p] = NodeId(rng.number());
        }
        9 => doc.pending = Some(gen::pending(rng, doc)),
        10 if !doc.stores.is_empty() => {
            let s = rng.index(doc.stores.len());
            let store = &mut doc.stores[s];
            match rng.below(4) {
                0 => store.n = rng.number() as u8,
                1 => store.r = rng.number() as u8,
                2 => store.w = rng.number() as u8,
                _ => {
                    store.name = rng
                        .pick(&["", "A", "x".repeat(25).as_str(), "ok"])
                        .to_string()
                }
            }
        }
        11 if !doc.stores.is_empty() => {
            let s = rng.index(doc.stores.len());
            let l = &mut doc.stores[s].limits;
            match rng.below(3) {
                0 => l.siblings_max = rng.number_u32(),
                1 => l.siblings_warn = rng.number_u32(),
                _ => l.object_bytes_max = rng.number_u32(),
            }
        }
        12 if !doc.stores.is_empty() => {
            let copy = doc.stores[0].clone();
            doc.stores.push(copy);
        }
        13 if !doc.grants.is_empty() => {
            // A grant twice, or out of order.
            let copy = doc.grants[0].clone();
            doc.grants.push(copy);
        }
        _ => {
            if let Some(p) = &mut doc.pending {
                p.owners.pop();
            }
        }
    }
}

/// The target.
pub fn membership_case(rng: &mut Rng) {
    let mut doc = gen::membership(rng);
    let (doc, intact) = match rng.below(4) {
        0 => (doc, true),
        1 => {
            for _ in 0..rng.len(1, 2) {
                break_one_field(rng, &mut doc);
            }
            (doc, false)
        }
        _ => {
            let mut bytes = postcard::to_allocvec(&doc).expect("documents encode");
            let donor = postcard::to_allocvec(&gen::membership(rng)).expect("documents encode");
            mutate(rng, &mut bytes, &donor);
            let (decoded, allocated) = allocated_by(|| postcard::from_bytes::<Membership>(&bytes));
            assert_alloc_bounded("membership", bytes.len(), allocated);
            match decoded {
                Ok(doc) => (doc, false),
                Err(_) => return,
            }
        }
    };
    let verdict = doc.validate();
    if intact {
        assert_eq!(verdict, Ok(()), "a document made by the library is invalid");
    }
    assert_eq!(
        verdict.is_ok(),
        oracle(&doc),
        "validation says {verdict:?} of {doc:?}"
    );
    if verdict.is_ok() {
        accepted(rng, &doc);
    }
}

/// What must hold of a document validation accepts.
fn accepted(rng: &mut Rng, doc: &Membership) {
    let bytes = postcard::to_allocvec(doc).expect("documents encode");
    let back: Membership = postcard::from_bytes(&bytes).expect("a document decodes");
    assert_eq!(&back, doc, "a document did not round-trip");
    assert_eq!(back.digest(), doc.digest());
    assert_eq!(back.validate(), Ok(()));
    assert!(!doc.supersedes(&back), "a document supersedes itself");
    assert_eq!(
        accept_membership(None, doc, None, (None, 0)),
        MembershipOffer::Accept
    );
    assert_eq!(
        accept_membership(Some(doc), &back, None, (None, 0)),
        MembershipOffer::Keep
    );
    for store in &doc.stores {
        let key = gen::key(rng);
        let list = doc.preference_list(&store.name, &key, store.n as usize);
        let homes: BTreeSet<_> = list.home().iter().collect();
        assert_eq!(
            homes.len(),
            store.n as usize,
            "store {} has too few homes",
            store.name
        );
        let partition = doc.partition_of(&store.name, &key);
        let _ = doc.preference_list_of(partition, store.n as usize);
    }
}
