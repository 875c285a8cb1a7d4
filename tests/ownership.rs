//! Nodes check ownership: an un-hinted write of a key a node is not a home
//! replica of (in its membership) is refused with `NotOwner`, and a client
//! whose membership is stale refreshes it and writes to the real owners.

mod common;

use common::TestCluster;
use quire::shared::wire::{ErrorCode, Reply, Request, Response};
use quire::shared::{Context, Membership, NodeId, Value, VersionVector};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// The nodes holding `key` as plain data (not as hints).
async fn holders(cluster: &TestCluster, key: &[u8]) -> Vec<NodeId> {
    let t = cluster.transport();
    let mut out = Vec::new();
    for node in &cluster.nodes {
        let get = Request::Get {
            store: "default".into(),
            key: key.to_vec(),
            hint: None,
        };
        if let Ok(Reply::Object(Some(_))) = t.call(&node.addr(), &get, T).await.unwrap().result {
            out.push(node.node_id);
        }
    }
    out.sort();
    out
}

/// The same cluster with every partition moved one owner along: every
/// key's home replicas change.
/// The next document with the owners rotated so that `key`'s first home
/// replica (the coordinator a stale client picks) is no longer one of its
/// home replicas. (The claim lays runs of a node out, so a rotation by
/// one does not always move a given key.)
fn moved(doc: &Membership, key: &[u8]) -> Membership {
    let coordinator = doc.preference_list("default", key, 3).nodes[0];
    for k in 1..doc.owners.len() {
        let mut next = doc.clone();
        next.epoch += 1;
        next.owners.rotate_left(k);
        next.validate().expect("a valid document");
        if !next
            .preference_list("default", key, 3)
            .home()
            .contains(&coordinator)
        {
            return next;
        }
    }
    panic!("no rotation moves the key's coordinator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_owner_refuses_an_unhinted_write() {
    let cluster = TestCluster::start(5).await;
    let doc = &cluster.membership;
    let list = doc.preference_list("default", b"k", 3);
    let outsider = list.nodes[3];
    let addr = &doc.member(outsider).unwrap().addr;
    let t = cluster.transport();
    let put = Request::Put {
        store: "default".into(),
        key: b"k".to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context: VersionVector::new(),
        hint: None,
    };
    let answer: Response = t.call(addr, &put, T).await.unwrap();
    match answer.result {
        Err(e) => assert_eq!(e.code, ErrorCode::NotOwner, "{}", e.message),
        Ok(r) => panic!("a non-owner stored a plain write: {r:?}"),
    }
    assert_eq!(answer.epoch, doc.epoch, "the refusal names the epoch");
    // As a stand-in (hinted) the same node takes it.
    let hinted = Request::Put {
        store: "default".into(),
        key: b"k".to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context: VersionVector::new(),
        hint: Some(list.nodes[0]),
    };
    assert!(matches!(
        t.call(addr, &hinted, T).await.unwrap().result,
        Ok(Reply::Stored(_))
    ));
    assert!(holders(&cluster, b"k").await.is_empty(), "no plain copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_client_refreshes_membership_and_writes_to_the_new_owners() {
    let cluster = TestCluster::start(5).await;
    let stale = cluster.client().await;
    // The cluster moves on without this client knowing.
    let key = b"cart-42";
    let next = common::sign(&cluster.client_config.tls, moved(&cluster.membership, key));
    let t = cluster.transport();
    for m in &next.members {
        let push = Request::PutMembership {
            membership: Box::new(next.clone()),
            base: None,
        };
        assert!(t.call(&m.addr, &push, T).await.unwrap().result.is_ok());
    }
    assert_eq!(stale.membership().epoch, cluster.membership.epoch);
    stale
        .put("default", key, b"apple".to_vec(), &Context::empty())
        .await
        .expect("the put succeeds after a refresh");
    assert_eq!(stale.membership().epoch, next.epoch, "the client refreshed");
    let mut owners: Vec<NodeId> = next.preference_list("default", key, 3).nodes[..3].to_vec();
    owners.sort();
    let held = holders(&cluster, key).await;
    assert!(
        held.iter().all(|n| owners.contains(n)),
        "plain copies only on the new home replicas: {held:?} vs {owners:?}"
    );
    assert!(held.len() >= 2, "W = 2 of the new owners hold it: {held:?}");
    // The retry did not write the value twice (two dots, two siblings).
    let read = stale.get("default", key).await.unwrap();
    assert_eq!(read.values(), vec![b"apple"]);
}
