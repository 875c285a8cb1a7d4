//! Micro benchmarks of the pure parts (criterion): preference-list lookup,
//! DVVSet update and sync, message encode and decode.
//!
//! `cargo bench --bench micro`. CI builds these (clippy --all-targets) but
//! does not run them.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use quire::shared::wire::{decode_frame, encode_frame, Reply, Request, Response};
use quire::shared::{
    ActorId, ClusterId, Dvvset, Member, Membership, NodeId, StoreConfig, Value, VersionVector,
};

fn membership(nodes: u64) -> Membership {
    let members = (1..=nodes)
        .map(|id| Member {
            id: NodeId(id * 7919),
            addr: format!("127.0.0.1:{}", 7000 + id),
            zone: "z".into(),
            weight: 1,
        })
        .collect();
    let store = StoreConfig {
        name: "default".into(),
        n: 3,
        r: 2,
        w: 2,
        durability: quire::shared::Durability::Sync,
        policy: quire::shared::ConflictPolicy::Siblings,
        limits: quire::shared::StoreLimits::default(),
    };
    Membership::new(ClusterId(1), 256, members, vec![store]).expect("valid document")
}

fn object(actors: u64, values_per_actor: u64) -> Dvvset<Value> {
    let mut o = Dvvset::new();
    for a in 1..=actors {
        for v in 0..values_per_actor {
            o.event(ActorId(a), Value::bytes(vec![b'x'; 1024], v));
        }
    }
    o
}

fn ring(c: &mut Criterion) {
    let doc = membership(12);
    c.bench_function("preference_list 12 nodes Q=256 N=3", |b| {
        b.iter(|| doc.preference_list("default", black_box(b"user000000012345"), 3))
    });
}

fn dvvset(c: &mut Criterion) {
    let a = object(3, 1);
    let mut b_obj = a.clone();
    b_obj.event(ActorId(2), Value::bytes(vec![b'y'; 1024], 9));
    let ctx = a.join();
    c.bench_function("dvvset update (3 actors, 1 KiB)", |b| {
        b.iter(|| black_box(&a).update(&ctx, ActorId(1), Value::bytes(vec![b'z'; 1024], 10)))
    });
    c.bench_function("dvvset sync (3 actors, siblings)", |b| {
        b.iter(|| black_box(&a).sync(black_box(&b_obj)))
    });
    let empty = VersionVector::new();
    c.bench_function("dvvset blind update onto 3 siblings", |b| {
        b.iter(|| black_box(&b_obj).update(&empty, ActorId(3), Value::bytes(vec![b'w'; 16], 11)))
    });
}

fn wire(c: &mut Criterion) {
    let put = Request::Put {
        store: "default".into(),
        key: b"user000000012345".to_vec(),
        value: Value::bytes(vec![b'v'; 1024], 1),
        context: object(3, 1).join(),
        hint: None,
    };
    let frame = encode_frame(&put);
    c.bench_function("encode Put 1 KiB", |b| {
        b.iter(|| encode_frame(black_box(&put)))
    });
    c.bench_function("decode Put 1 KiB", |b| {
        b.iter(|| decode_frame::<Request>(black_box(&frame), 1 << 20))
    });
    let reply = Response {
        epoch: 3,
        result: Ok(Reply::Object(Some(object(3, 1)))),
    };
    let frame = encode_frame(&reply);
    c.bench_function("decode Object reply (3 x 1 KiB)", |b| {
        b.iter(|| decode_frame::<Response>(black_box(&frame), 1 << 20))
    });
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, ring, dvvset, wire);
}
use group::benches;
criterion_main!(benches);
