//! fsync failure is fail-stop: after a failed fsync the node may have lost
//! pages it reported clean, so it refuses every write with a typed
//! `Unavailable`, says why, and stops serving with an error (the process
//! exits non-zero and systemd restarts it). The cluster stays writeable
//! through the other replicas.

mod common;

use common::TestCluster;
use quire::shared::wire::{ErrorCode, Request};
use quire::shared::{Context, Value, VersionVector};
use quire_node::config::NodeConfig;
use quire_node::NodeError;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn put(key: &[u8]) -> Request {
    Request::Put {
        store: "default".into(),
        key: key.to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context: VersionVector::new(),
        hint: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_node_and_the_cluster_stays_writeable() {
    let mut cluster = TestCluster::start(3).await;
    let config = NodeConfig::load(&cluster.layout().node_config(1)).unwrap();
    cluster.node(1).stop().await;
    let node = quire_node::start(config).await.expect("node restarts");
    let addr = node.addr.to_string();
    node.storage.inject_sync_failure();
    let serving = tokio::spawn(quire_node::serve_until(node, std::future::pending()));
    let t = cluster.transport();
    // N = 3 of 3 nodes: node 1 is a home replica of every key.
    let answer = t.call(&addr, &put(b"first"), T).await.unwrap();
    match answer.result {
        Err(e) => assert_eq!(e.code, ErrorCode::Unavailable, "{}", e.message),
        Ok(r) => panic!("a write was acknowledged after a failed fsync: {r:?}"),
    }
    // Refused while the node shuts down, or not answered once it is gone;
    // never acknowledged.
    if let Ok(answer) = t.call(&addr, &put(b"second"), T).await {
        assert!(
            matches!(&answer.result, Err(e) if e.code == ErrorCode::Unavailable),
            "{answer:?}"
        );
    }
    let stopped = tokio::time::timeout(T, serving)
        .await
        .expect("the node stops by itself")
        .unwrap();
    assert!(
        matches!(stopped, Err(NodeError::FailStop(_))),
        "serving ends with the fail-stop error: {stopped:?}"
    );
    // The other replicas keep taking writes.
    let client = cluster.client().await;
    client
        .put("default", b"after", b"v".to_vec(), &Context::empty())
        .await
        .expect("writeable with one node gone");
    let read = client.get("default", b"after").await.unwrap();
    assert_eq!(read.values(), vec![b"v"]);
}
