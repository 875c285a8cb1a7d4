//! Contexts and objects from the wire are checked, never trusted: a node
//! refuses a malformed one (unsorted, an actor twice, a zero counter, too
//! many entries) or one claiming dots of the node's own actor that it never
//! issued (`u64::MAX` would overflow its counter) with a typed error, keeps
//! serving, and leaves what it stores untouched.

mod common;

use common::TestCluster;
use quire::shared::limits::VERSION_VECTOR_ENTRIES_MAX;
use quire::shared::wire::{ErrorCode, Reply, Request, Response, PROTOCOL_VERSION};
use quire::shared::ContextError;
use quire::shared::{ActorId, Dvvset, Object, Value, VersionVector};
use quire::{ClientError, Context};
use quire_client::transport::Transport;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// A context holding `pairs` exactly as given (the wire does not have to
/// send canonical vectors; `VersionVector::from_pairs` would sort them).
fn raw_context(pairs: &[(u64, u64)]) -> VersionVector {
    serde_json::from_value(json!({ "entries": pairs })).expect("a vector decodes")
}

fn put(key: &[u8], context: VersionVector) -> Request {
    Request::Put {
        store: "default".into(),
        key: key.to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context,
        hint: None,
    }
}

fn replicate(key: &[u8], object: Object) -> Request {
    Request::Replicate {
        store: "default".into(),
        key: key.to_vec(),
        object,
        hint: None,
    }
}

async fn call(t: &Transport, addr: &str, request: &Request) -> Response {
    t.call(addr, request, T).await.expect("the node answers")
}

async fn refused(t: &Transport, addr: &str, request: &Request) -> ErrorCode {
    match call(t, addr, request).await.result {
        Err(e) => {
            assert!(!e.message.is_empty(), "a refusal says why");
            e.code
        }
        Ok(reply) => panic!("expected a refusal, got {reply:?}"),
    }
}

async fn stored(t: &Transport, addr: &str, request: &Request) -> Object {
    match call(t, addr, request).await.result {
        Ok(Reply::Stored(o)) => o,
        other => panic!("expected a stored object, got {other:?}"),
    }
}

async fn object_of(t: &Transport, addr: &str, key: &[u8]) -> Option<Object> {
    let get = Request::Get {
        store: "default".into(),
        key: key.to_vec(),
        hint: None,
    };
    match call(t, addr, &get).await.result {
        Ok(Reply::Object(o)) => o,
        other => panic!("expected an object, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_unissued_contexts_and_objects_are_refused_and_the_node_keeps_serving() {
    let cluster = TestCluster::start(1).await;
    let t = cluster.transport();
    let addr = cluster.nodes[0].addr();
    let hello = Request::Hello {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: None,
    };
    let own = match call(&t, &addr, &hello).await.result {
        Ok(Reply::Hello { actor_id, .. }) => actor_id,
        other => panic!("hello: {other:?}"),
    };
    let before = stored(&t, &addr, &put(b"k", VersionVector::new())).await;
    assert_eq!(before.counter(own), 1, "the node issued one dot for k");

    let bad_contexts = [
        ("unsorted", raw_context(&[(9, 1), (3, 1)])),
        ("duplicate actors", raw_context(&[(3, 1), (3, 2)])),
        ("zero counter", raw_context(&[(3, 0)])),
        (
            "own actor at u64::MAX",
            raw_context(&[(own.get(), u64::MAX)]),
        ),
        (
            "own actor past what it issued",
            raw_context(&[(own.get(), 2)]),
        ),
        (
            "too many entries",
            VersionVector::from_pairs(
                (1..=VERSION_VECTOR_ENTRIES_MAX as u64 + 1).map(|a| (ActorId(a), 1)),
            ),
        ),
    ];
    for (what, context) in bad_contexts {
        for key in [&b"k"[..], b"fresh"] {
            assert_eq!(
                refused(&t, &addr, &put(key, context.clone())).await,
                ErrorCode::InvalidContext,
                "{what} on {key:?}"
            );
        }
    }

    let unsorted: Object = serde_json::from_value(json!({ "entries": [
        { "actor": 9, "counter": 1, "values": [] },
        { "actor": 3, "counter": 1, "values": [] },
    ]}))
    .expect("a set decodes");
    let own_at_max = Dvvset::from_context(&raw_context(&[(own.get(), u64::MAX)]));
    let mut own_past_issued = Dvvset::from_context(&raw_context(&[(own.get(), 1)]));
    own_past_issued.event(own, Value::bytes(b"forged".to_vec(), 1));
    for (what, object) in [
        ("unsorted", unsorted),
        ("own actor at u64::MAX", own_at_max),
        ("own actor past what it issued", own_past_issued),
    ] {
        for key in [&b"k"[..], b"fresh"] {
            assert_eq!(
                refused(&t, &addr, &replicate(key, object.clone())).await,
                ErrorCode::InvalidObject,
                "{what} on {key:?}"
            );
        }
    }

    // Nothing stored changed.
    assert_eq!(object_of(&t, &addr, b"k").await, Some(before.clone()));
    assert_eq!(object_of(&t, &addr, b"fresh").await, None);
    // The writer is alive: a write with the real context, and a
    // replication of what the node itself issued, are taken.
    let next = stored(&t, &addr, &put(b"k", before.join())).await;
    assert_eq!((next.counter(own), next.value_count()), (2, 1));
    assert_eq!(stored(&t, &addr, &replicate(b"k", before)).await, next);
    let other = stored(&t, &addr, &put(b"other", VersionVector::new())).await;
    assert_eq!(other.value_count(), 1);
}

/// TESTING.md's "a context from another key": it claims dots the node
/// never issued for this key, and the SDK reports the typed refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_from_another_key_is_refused_through_the_sdk() {
    // Three nodes: whichever coordinates, the context must not reach one.
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    let mut context = Context::empty();
    for i in 0..5u8 {
        context = client
            .put("default", b"a", vec![i], &context)
            .await
            .unwrap()
            .context;
    }
    let b = client
        .put("default", b"b", b"b".to_vec(), &Context::empty())
        .await
        .unwrap();
    // Through a token, as the CLI would carry it.
    let token = Context::from_token(&context.to_token()).unwrap();
    match client.put("default", b"b", b"x".to_vec(), &token).await {
        Err(ClientError::Context(e)) => assert_eq!(e, ContextError::OtherKey),
        other => panic!("expected a typed refusal, got {other:?}"),
    }
    match client.delete("default", b"b", &context).await {
        Err(ClientError::Context(e)) => assert_eq!(e, ContextError::OtherKey),
        other => panic!("expected a typed refusal, got {other:?}"),
    }
    let read = client.get("default", b"b").await.unwrap();
    assert_eq!(read.values(), vec![&b"b"[..]], "nothing stored");
    assert_eq!(read.context, b.context);
}
