//! Gets that ask `R` replicas first (the SDK's default read fanout) on a
//! real three-node cluster: what they read and repair, what they leave to
//! anti-entropy, and how a slow replica is passed over.

mod common;

use common::proxy::Fault;
use common::{local_value, place_on, TestCluster};
use quire::shared::NodeId;
use quire::Client;
use quire_client::transport::Transport;
use std::time::{Duration, Instant};

const STORE: &str = "default";
const T: Duration = Duration::from_secs(5);

/// Member `id`'s address as the client reaches it.
fn addr(cluster: &TestCluster, id: NodeId) -> String {
    cluster.membership.member(id).unwrap().addr.clone()
}

/// The key's home replicas, in the order a get asks them.
fn home(client: &Client, key: &[u8]) -> Vec<NodeId> {
    client.locate(STORE, key).unwrap().home().to_vec()
}

/// Asserts that every node of `ids` holds the value `v` under `key` in its
/// own data.
async fn held_by_all(t: &Transport, cluster: &TestCluster, ids: &[NodeId], key: &[u8]) {
    for &id in ids {
        assert_eq!(
            local_value(t, &addr(cluster, id), STORE, key).await,
            Some(b"v".to_vec()),
            "{id} holds it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differing_answers_read_and_repair_every_home_replica() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    let t = cluster.transport();
    let key = b"behind";
    let home = home(&client, key);
    // Only the first replica asked holds it: the first two answers differ.
    place_on(&t, &cluster.membership, &home[..1], STORE, key).await;

    let read = client.get(STORE, key).await.unwrap();
    assert_eq!(read.values(), vec![b"v"]);
    client.settle(T).await;
    held_by_all(&t, &cluster, &home[1..], key).await;
    let stats = client.stats();
    assert_eq!(stats.read_repairs, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreeing_first_answers_leave_the_third_replica_to_anti_entropy() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    let t = cluster.transport();
    // Connections to every node first, so no handshake slows a read.
    assert_eq!(client.status().await.len(), 3);
    // A read slower than the speculation delay (a loaded machine) asks the
    // third replica too, and repairs it: take the first key whose read
    // was not slow. Each key lives on the first two replicas asked only.
    let mut unread = None;
    for i in 0..5 {
        let key = format!("agreed-{i}").into_bytes();
        let home = home(&client, &key);
        place_on(&t, &cluster.membership, &home[..2], STORE, &key).await;
        let before = client.stats();
        let read = client.get(STORE, &key).await.unwrap();
        assert_eq!(read.values(), vec![b"v"]);
        client.settle(T).await;
        let after = client.stats();
        if after.speculative_reads == before.speculative_reads {
            // The two asked agreed: the third was not read, so not
            // repaired.
            assert_eq!(after.read_repairs, before.read_repairs, "{after:?}");
            let third = addr(&cluster, home[2]);
            assert_eq!(local_value(&t, &third, STORE, &key).await, None);
            unread = Some((key, third));
            break;
        }
    }
    let (key, third) = unread.expect("one of five reads answered within the speculation delay");
    // Anti-entropy finds it.
    let partition = client.membership().partition_of(STORE, &key);
    let report = client.repair_partition(STORE, partition).await;
    assert!(report.keys_repaired >= 1, "{report:?}");
    assert_eq!(
        local_value(&t, &third, STORE, &key).await,
        Some(b"v".to_vec())
    );

    // A client asking every replica repairs it in the read itself.
    let key = b"agreed-all";
    let home = home(&client, key);
    place_on(&t, &cluster.membership, &home[..2], STORE, key).await;
    let reading_all = cluster.client_reading_all().await;
    assert_eq!(
        reading_all.get(STORE, key).await.unwrap().values(),
        vec![b"v"]
    );
    reading_all.settle(T).await;
    held_by_all(&t, &cluster, &home, key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_is_passed_over_after_the_speculation_delay() {
    let cluster = TestCluster::start_proxied(3).await;
    let client = cluster.client().await;
    let t = cluster.transport();
    let key = b"slow";
    let home = home(&client, key);
    place_on(&t, &cluster.membership, &home, STORE, key).await;
    // The first replica a get asks answers 2 s late; the client has no
    // latency history, so it asks the third after its initial delay.
    cluster.proxies[cluster.k_of(home[0]) - 1].set(Fault::Delay(Duration::from_secs(2)));

    let started = Instant::now();
    let read = client.get(STORE, key).await.unwrap();
    assert_eq!(read.values(), vec![b"v"]);
    eprintln!("the get answered after {:?}", started.elapsed());
    // The counters are added once the get has heard from every node it
    // asked, the slow one included.
    client.settle(T).await;
    let stats = client.stats();
    assert_eq!(stats.speculative_reads, 1, "{stats:?}");
    assert_eq!(stats.read_repairs, 0, "{stats:?}");
}
