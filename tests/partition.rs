//! A node partitioned from its clients (the proxy drops every datagram) is
//! marked down quickly: requests during the partition do not each wait for
//! it. When the partition heals, the node is used again.

mod common;

use common::proxy::Fault;
use common::TestCluster;
use quire::Context;
use std::time::{Duration, Instant};

const STORE: &str = "default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_is_marked_down_quickly_and_back_up_after_healing() {
    let cluster = TestCluster::start_proxied(3).await;
    let client = cluster.client().await;
    // Warm connections to every node.
    for i in 0..10 {
        let key = format!("warm-{i}");
        client
            .put(STORE, key.as_bytes(), b"x".to_vec(), &Context::empty())
            .await
            .unwrap();
    }
    let victim = &cluster.membership.members[0];
    let proxy = cluster
        .proxies
        .iter()
        .find(|p| p.addr.to_string() == victim.addr)
        .expect("the victim's proxy");
    proxy.set(Fault::DropAll);

    let started = Instant::now();
    let mut slow_ops = 0;
    for i in 0..30 {
        let key = format!("during-{i}");
        let t = Instant::now();
        client
            .put(STORE, key.as_bytes(), b"v".to_vec(), &Context::empty())
            .await
            .expect("writes go on during the partition");
        let read = client
            .get(STORE, key.as_bytes())
            .await
            .expect("reads go on");
        assert_eq!(read.values(), vec![b"v"]);
        if t.elapsed() >= Duration::from_millis(500) {
            slow_ops += 1;
        }
    }
    let total = started.elapsed();
    eprintln!("30 put+get during the partition: {total:?}, {slow_ops} slower than 500 ms");
    assert_eq!(
        client.down_nodes(),
        vec![victim.id],
        "the victim is marked down"
    );
    // Each request waiting for the victim would take ≥ 1 s (the call
    // timeout): only the requests in flight while the failure was being
    // discovered may; after that, requests skip the node.
    assert!(
        slow_ops <= 2,
        "{slow_ops} requests waited on the partitioned node"
    );
    assert!(total < Duration::from_secs(5), "{total:?}");

    // Heal: the probe finds the node again.
    proxy.set(Fault::Pass);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.down_nodes().is_empty() {
        assert!(Instant::now() < deadline, "the node never came back up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let targets = client.targets(STORE, b"during-0").unwrap();
    assert!(targets.iter().all(|t| t.hint.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_and_slow_links_still_serve() {
    let cluster = TestCluster::start_proxied(3).await;
    let client = cluster.client().await;
    cluster.proxies[0].set(Fault::DropShare(0.2));
    cluster.proxies[1].set(Fault::Delay(Duration::from_millis(30)));
    for i in 0..10 {
        let key = format!("k{i}");
        client
            .put(STORE, key.as_bytes(), vec![i], &Context::empty())
            .await
            .expect("put over lossy links");
        let read = client.get(STORE, key.as_bytes()).await.expect("get");
        assert_eq!(read.values(), vec![&[i][..]]);
    }
}
