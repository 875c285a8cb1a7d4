//! Per-store object limits on a real cluster: siblings and object bytes
//! are bounded, a write past a bound is refused with a typed error that
//! names the key and the way out, nothing stored changes, reads keep
//! working, and a write with a read's context (which merges) goes through.
//! The limits travel in the membership document, which a restarted node
//! keeps.

mod common;

use common::TestCluster;
use quire::shared::wire::{ErrorCode, Reply, Request};
use quire::shared::{
    ConflictPolicy, Durability, Object, StoreConfig, StoreLimits, Value, VersionVector,
};
use quire::{Client, ClientError, Context};
use quire_node::config::Limits;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn store(name: &str, limits: StoreLimits) -> StoreConfig {
    StoreConfig {
        name: name.into(),
        n: 3,
        r: 2,
        w: 2,
        durability: Durability::Buffered,
        policy: ConflictPolicy::Siblings,
        limits,
    }
}

/// Every node's own copy of `key`, node-1 first.
async fn copies(cluster: &TestCluster, store: &str, key: &[u8]) -> Vec<Option<Object>> {
    let t = cluster.transport();
    let mut out = Vec::new();
    for node in &cluster.nodes {
        let get = Request::Get {
            store: store.into(),
            key: key.to_vec(),
            hint: None,
        };
        match t.call(&node.addr(), &get, T).await.unwrap().result {
            Ok(Reply::Object(o)) => out.push(o),
            other => panic!("get answered {other:?}"),
        }
    }
    out
}

fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Invalid { code, message }) => (code, message),
        other => panic!("expected a typed refusal, got {other:?}"),
    }
}

/// One writer of the sibling-explosion scenario: each write carries every
/// number this writer wrote and every value its last put returned (the
/// siblings it is about to replace), with the context of that put.
async fn writer(client: Client, me: u32, writes: u32) -> usize {
    let mut context = Context::empty();
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut siblings_max = 0;
    for i in 0..writes {
        known.insert(format!("{me}-{i}"));
        let value = known.iter().cloned().collect::<Vec<_>>().join(",");
        let put = client
            .put("default", b"exploding", value.into_bytes(), &context)
            .await
            .expect("put");
        siblings_max = siblings_max.max(put.siblings.len());
        for s in &put.siblings {
            let text = String::from_utf8(s.value.clone()).unwrap();
            known.extend(text.split(',').map(str::to_string));
        }
        context = put.context;
    }
    siblings_max
}

/// riak_test's `sibling_explosion`: two writers interleave 100 writes
/// each, each with the context of its own last write. Siblings stay few,
/// and no value is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_writers_with_their_own_contexts_keep_few_siblings_and_every_value() {
    let cluster = TestCluster::start(3).await;
    let (a, b) = (cluster.client().await, cluster.client().await);
    let (max_a, max_b) = tokio::join!(writer(a, 1, 100), writer(b, 2, 100));
    let read = cluster
        .client()
        .await
        .get("default", b"exploding")
        .await
        .unwrap();
    assert!(
        max_a.max(max_b) <= 3 && read.siblings.len() <= 3,
        "siblings seen: {max_a}, {max_b}; at the end {}",
        read.siblings.len()
    );
    let union: BTreeSet<String> = read
        .values()
        .iter()
        .flat_map(|v| std::str::from_utf8(v).unwrap().split(','))
        .map(str::to_string)
        .collect();
    for me in 1..=2 {
        for i in 0..100 {
            assert!(union.contains(&format!("{me}-{i}")), "{me}-{i} was lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_writes_past_the_sibling_limit_are_refused_until_a_write_merges_them() {
    let limits = StoreLimits {
        siblings_warn: 3,
        siblings_max: 5,
        ..StoreLimits::default()
    };
    let cluster = TestCluster::start_with(3, vec![store("carts", limits)], Limits::default()).await;
    let client = cluster.client().await;
    for i in 0..5u8 {
        client
            .put("carts", b"cart-7", vec![i], &Context::empty())
            .await
            .expect("blind writes up to the limit are taken");
    }
    let before = copies(&cluster, "carts", b"cart-7").await;
    assert!(before
        .iter()
        .all(|o| o.as_ref().unwrap().value_count() == 5));

    let (code, message) = refusal(
        client
            .put("carts", b"cart-7", vec![9], &Context::empty())
            .await,
    );
    assert_eq!(code, ErrorCode::TooManySiblings);
    assert!(
        message.contains("cart-7") && message.contains("context that merges them"),
        "the message names the key and the fix: {message}"
    );
    assert_eq!(
        copies(&cluster, "carts", b"cart-7").await,
        before,
        "nothing stored"
    );

    // The node says the same to a raw request, with the typed code.
    let t = cluster.transport();
    let raw = Request::Put {
        store: "carts".into(),
        key: b"cart-7".to_vec(),
        value: Value::bytes(vec![10], 1),
        context: VersionVector::new(),
        hint: None,
    };
    match t
        .call(&cluster.nodes[0].addr(), &raw, T)
        .await
        .unwrap()
        .result
    {
        Err(e) => assert_eq!(e.code, ErrorCode::TooManySiblings),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Reads keep working, and the read's context merges the siblings.
    let read = client.get("carts", b"cart-7").await.unwrap();
    assert_eq!(read.siblings.len(), 5);
    let merged = client
        .put("carts", b"cart-7", b"merged".to_vec(), &read.context)
        .await
        .expect("a write with the read's context is taken");
    assert_eq!(merged.siblings.len(), 1);
    assert_eq!(
        client.get("carts", b"cart-7").await.unwrap().values(),
        vec![b"merged"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_would_outgrow_the_object_bytes_limit_are_refused() {
    let limits = StoreLimits {
        object_bytes_max: 16 << 10,
        ..StoreLimits::default()
    };
    let cluster = TestCluster::start_with(3, vec![store("blobs", limits)], Limits::default()).await;
    let client = cluster.client().await;
    for i in 0..3u8 {
        client
            .put("blobs", b"blob", vec![i; 5000], &Context::empty())
            .await
            .expect("three 5000-byte siblings fit 16 KiB");
    }
    let before = copies(&cluster, "blobs", b"blob").await;
    let (code, message) = refusal(
        client
            .put("blobs", b"blob", vec![3; 5000], &Context::empty())
            .await,
    );
    assert_eq!(code, ErrorCode::ObjectTooLarge);
    assert!(message.contains("blob"), "{message}");

    // A replication that would grow a replica past the bound is refused
    // as well, and leaves the replica as it was.
    let mut other = Object::new();
    other.event(quire::shared::ActorId(99), Value::bytes(vec![4; 5000], 1));
    let replicate = Request::Replicate {
        store: "blobs".into(),
        key: b"blob".to_vec(),
        object: other,
        hint: None,
    };
    let t = cluster.transport();
    match t
        .call(&cluster.nodes[1].addr(), &replicate, T)
        .await
        .unwrap()
        .result
    {
        Err(e) => assert_eq!(e.code, ErrorCode::ObjectTooLarge),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(copies(&cluster, "blobs", b"blob").await, before);

    let read = client.get("blobs", b"blob").await.unwrap();
    assert_eq!(read.siblings.len(), 3);
    client
        .put("blobs", b"blob", vec![5; 5000], &read.context)
        .await
        .expect("a merging write shrinks the object and is taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_document_and_its_store_limits() {
    let limits = StoreLimits {
        siblings_warn: 2,
        siblings_max: 2,
        object_bytes_max: 64 << 10,
        tombstone_grace_ms: 1234,
    };
    let mut cluster =
        TestCluster::start_with(1, vec![store1("small", limits)], Limits::default()).await;
    cluster.kill(1).await;
    cluster.restart(1).await;
    let t = cluster.transport();
    match t
        .call(&cluster.nodes[0].addr(), &Request::GetMembership, T)
        .await
        .unwrap()
        .result
    {
        Ok(Reply::Membership(Some(doc))) => {
            assert_eq!(doc, cluster.membership);
            assert_eq!(doc.store("small").unwrap().limits, limits);
        }
        other => panic!("membership after restart: {other:?}"),
    }
    let client = cluster.client().await;
    for i in 0..2u8 {
        client
            .put("small", b"k", vec![i], &Context::empty())
            .await
            .unwrap();
    }
    let (code, _) = refusal(client.put("small", b"k", vec![2], &Context::empty()).await);
    assert_eq!(code, ErrorCode::TooManySiblings);
}

fn store1(name: &str, limits: StoreLimits) -> StoreConfig {
    StoreConfig {
        n: 1,
        r: 1,
        w: 1,
        ..store(name, limits)
    }
}
