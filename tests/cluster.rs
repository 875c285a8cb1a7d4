//! A cluster of three real nodes with (N, R, W) = (3, 2, 2): the data path
//! works end to end, survives a stopped node and a restart.

mod common;

use common::TestCluster;
use quire::shared::wire::{Reply, Request};
use quire::Context;
use std::time::Duration;

const STORE: &str = "default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_round_trip() {
    let cluster = TestCluster::start(3).await;
    let store = cluster.membership.store(STORE).unwrap();
    assert_eq!((store.n, store.r, store.w), (3, 2, 2));
    let client = cluster.client().await;

    let missing = client.get(STORE, b"cart").await.unwrap();
    assert!(!missing.found());

    let put = client
        .put(STORE, b"cart", b"apple".to_vec(), &Context::empty())
        .await
        .unwrap();
    assert!(put.acknowledged >= 2, "W=2, acked {}", put.acknowledged);
    let read = client.get(STORE, b"cart").await.unwrap();
    assert_eq!(read.values(), vec![b"apple"]);

    // A write with the read's context replaces the value.
    client
        .put(STORE, b"cart", b"apple,pear".to_vec(), &read.context)
        .await
        .unwrap();
    let read = client.get(STORE, b"cart").await.unwrap();
    assert_eq!(read.values(), vec![b"apple,pear"]);

    // Delete with the context: not found afterwards, but a context remains.
    client.delete(STORE, b"cart", &read.context).await.unwrap();
    let gone = client.get(STORE, b"cart").await.unwrap();
    assert!(!gone.found(), "deleted key still has {:?}", gone.values());
    assert!(!gone.context.is_empty(), "a tombstone keeps its history");

    // Other keys are not affected.
    client
        .put(STORE, b"other", b"x".to_vec(), &Context::empty())
        .await
        .unwrap();
    assert_eq!(
        client.get(STORE, b"other").await.unwrap().values(),
        vec![b"x"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_stopped_reads_and_writes_go_on() {
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    let keys: Vec<Vec<u8>> = (0..24).map(|i| format!("key-{i}").into_bytes()).collect();
    for k in &keys {
        client
            .put(STORE, k, b"before".to_vec(), &Context::empty())
            .await
            .unwrap();
    }

    // With three nodes and N=3 every node is a home replica of every key,
    // and the stopped one coordinates about a third of them.
    let victim = cluster.nodes[0].node_id;
    let coordinated = keys
        .iter()
        .filter(|k| client.locate(STORE, k).unwrap().home()[0] == victim)
        .count();
    assert!(coordinated > 0, "the stopped node coordinates some keys");
    cluster.nodes[0].stop().await;

    for k in &keys {
        let read = client.get(STORE, k).await.unwrap();
        assert_eq!(read.values(), vec![b"before"], "acknowledged write lost");
        let put = client
            .put(STORE, k, b"after".to_vec(), &read.context)
            .await
            .unwrap();
        assert_eq!(put.acknowledged, 2);
    }
    for k in &keys {
        let read = client.get(STORE, k).await.unwrap();
        assert_eq!(read.values(), vec![b"after"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_data() {
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    for i in 0..10 {
        client
            .put(
                STORE,
                format!("k{i}").as_bytes(),
                vec![i],
                &Context::empty(),
            )
            .await
            .unwrap();
    }
    client.close();
    // Let replication beyond W finish before stopping (it runs in the
    // background after the put returns).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Stop every node, restart them on the same ports and data.
    cluster.stop_all().await;
    for node in &mut cluster.nodes {
        node.start().await.expect("node restarts");
    }

    // Each node, asked alone, still holds what it acknowledged.
    let t = cluster.transport();
    let node = &cluster.nodes[1];
    let mut held = 0;
    for i in 0..10u8 {
        let get = Request::Get {
            store: STORE.into(),
            key: format!("k{i}").into_bytes(),
            hint: None,
        };
        let answer = t
            .call(&node.addr(), &get, Duration::from_secs(5))
            .await
            .unwrap();
        if let Ok(Reply::Object(Some(o))) = answer.result {
            assert_eq!(o.values().next().unwrap().data, Some(vec![i]));
            held += 1;
        }
    }
    assert_eq!(held, 10, "N=3 of 3 nodes: every node holds every key");

    // And through the SDK, with a fresh client.
    let client = cluster.client().await;
    for i in 0..10u8 {
        let read = client.get(STORE, format!("k{i}").as_bytes()).await.unwrap();
        assert_eq!(read.values(), vec![vec![i]]);
    }
    // The membership survived too.
    assert_eq!(*client.membership(), cluster.membership);
}
