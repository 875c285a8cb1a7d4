//! Tombstone reaping against real nodes: a deleted key past its store's
//! grace period leaves every home replica's LMDB after a repair pass; a
//! write that lands between the two phases survives; a home replica that
//! is down blocks the reaping; a later put of the key starts afresh.

mod common;

use common::TestCluster;
use quire::shared::wire::{Reply, Request};
use quire::shared::{ConflictPolicy, Durability, Object, StoreConfig, StoreLimits, Value};
use quire::Context;
use quire_client::transport::Transport;
use quire_client::RepairReport;
use quire_node::config::Limits;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const T: Duration = Duration::from_secs(5);
const STORE: &str = "gone";
/// Short, so the tests wait it out; long enough that the first pass,
/// run right after the delete, is inside it.
const GRACE_MS: u64 = 400;

/// N = 3 over three nodes (every node is a home of every key), W = 3 so
/// a write returns once every home holds it.
fn store() -> StoreConfig {
    StoreConfig {
        name: STORE.into(),
        n: 3,
        r: 2,
        w: 3,
        durability: Durability::Buffered,
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits {
            tombstone_grace_ms: GRACE_MS,
            ..StoreLimits::default()
        },
    }
}

async fn cluster() -> TestCluster {
    TestCluster::start_with(3, vec![store()], Limits::default()).await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Node `addr`'s own copy of `key` (a raw request: no read repair).
async fn held(t: &Transport, addr: &str, key: &[u8]) -> Option<Object> {
    let get = Request::Get {
        store: STORE.into(),
        key: key.to_vec(),
        hint: None,
    };
    match t.call(addr, &get, T).await.expect("get answered").result {
        Ok(Reply::Object(o)) => o,
        other => panic!("expected an object, got {other:?}"),
    }
}

/// Every node's copy of `key`, node 1 first.
async fn copies(cluster: &TestCluster, key: &[u8]) -> Vec<Option<Object>> {
    let t = cluster.transport();
    let mut out = Vec::new();
    for addr in &cluster.node_addrs {
        out.push(held(&t, &addr.to_string(), key).await);
    }
    out
}

/// `(objects, tombstones)` node `addr` reports for the store.
async fn stats(t: &Transport, addr: &str) -> (u64, u64) {
    let Ok(Reply::Stats(stats)) = t.call(addr, &Request::Stats, T).await.unwrap().result else {
        panic!("stats answered");
    };
    stats
        .stores
        .iter()
        .find(|s| s.store == STORE)
        .map_or((0, 0), |s| (s.objects, s.tombstones))
}

fn only_tombstones(o: &Option<Object>) -> bool {
    o.as_ref().is_some_and(quire::shared::reap::only_tombstones)
}

/// Writes then deletes `key`; returns once every home holds the
/// tombstone, and the time its grace period is over.
async fn put_and_delete(cluster: &TestCluster, client: &quire::Client, key: &[u8]) -> Instant {
    client
        .put(STORE, key, b"old".to_vec(), &Context::empty())
        .await
        .expect("put");
    let read = client.get(STORE, key).await.expect("read");
    client
        .delete(STORE, key, &read.context)
        .await
        .expect("delete");
    let deleted = Instant::now();
    let held = copies(cluster, key).await;
    assert!(held.iter().all(only_tombstones), "W = 3: {held:?}");
    // The tombstone's timestamp is the coordinator's clock, read before
    // the delete returned: after this the grace is over for it.
    deleted + Duration::from_millis(GRACE_MS + 50)
}

/// Waits until `at` (the grace period: a few hundred milliseconds).
async fn until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_is_reaped_from_every_home_and_a_later_put_starts_fresh() {
    let cluster = cluster().await;
    let client = cluster.client().await;
    let t = cluster.transport();
    let key = b"cart-1".to_vec();
    let partition = client.membership().partition_of(STORE, &key);
    let grace_over = put_and_delete(&cluster, &client, &key).await;

    // Inside the grace period nothing is reaped.
    let early = client.repair_partition(STORE, partition).await;
    assert_eq!(early.tombstones_reaped, 0, "{early:?}");
    assert!(copies(&cluster, &key).await.iter().all(only_tombstones));

    let reaped_actors: Vec<_> = copies(&cluster, &key).await[0]
        .as_ref()
        .expect("held")
        .entries()
        .iter()
        .map(|e| e.actor)
        .collect();
    until(grace_over).await;
    let report = client.repair_once(Some(STORE), |_, _| {}).await;
    assert_eq!(report.tombstones_reaped, 1, "{report:?}");
    assert!(report.unreachable.is_empty(), "{report:?}");
    assert_eq!(copies(&cluster, &key).await, vec![None, None, None]);
    for addr in &cluster.node_addrs {
        assert_eq!(stats(&t, &addr.to_string()).await, (0, 0), "{addr}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["tombstones_reaped"], 1);

    // Nothing left to reap, nothing left to repair.
    let again = client.repair_once(Some(STORE), |_, _| {}).await;
    assert_eq!((again.keys_repaired, again.tombstones_reaped), (0, 0));

    // A blind put of the key makes a fresh object: one value, one dot,
    // nothing of the reaped history, on every home. The dot is of an
    // actor the reaped object never named: a home that removed an object
    // holding dots of its own actor took a new one, so the new write
    // cannot reuse a dot a stale copy of the old history may still hold
    // (the kv679 family).
    client
        .put(STORE, &key, b"new".to_vec(), &Context::empty())
        .await
        .expect("put after reaping");
    let got = client.get(STORE, &key).await.expect("read");
    let values: Vec<_> = got.siblings.iter().map(|s| s.value.clone()).collect();
    assert_eq!(values, vec![b"new".to_vec()]);
    for copy in copies(&cluster, &key).await {
        let o = copy.expect("held by every home");
        assert_eq!(o.values().count(), 1, "{o:?}");
        assert_eq!(o.entries().len(), 1, "one actor's dot: {o:?}");
        assert!(!reaped_actors.contains(&o.entries()[0].actor), "{o:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_the_two_phases_survives_the_reaping() {
    let cluster = cluster().await;
    let client = cluster.client().await;
    let t = cluster.transport();
    let key = b"cart-2".to_vec();
    let partition = client.membership().partition_of(STORE, &key);
    until(put_and_delete(&cluster, &client, &key).await).await;

    // Phase one sees the tombstone on every home...
    let mut report = RepairReport::default();
    let plan = client
        .plan_reaping(STORE, partition, now_ms(), &mut report)
        .await;
    assert_eq!(plan.keys().collect::<Vec<_>>(), vec![&key[..]]);
    // ...then a blind put lands on the last home phase two will ask, and
    // on it alone (a raw coordinated put, no replication).
    let last = plan.homes().last().expect("homes").addr.clone();
    let put = Request::Put {
        store: STORE.into(),
        key: key.clone(),
        value: Value::bytes(b"raced".to_vec(), now_ms()),
        context: Default::default(),
        hint: None,
    };
    let answer = t.call(&last, &put, T).await.expect("put answered").result;
    assert!(matches!(answer, Ok(Reply::Stored(_))), "{answer:?}");

    client.reap(&plan, &mut report).await;
    assert_eq!(report.tombstones_reaped, 0, "the written home kept it");
    let left: Vec<_> = copies(&cluster, &key).await;
    assert_eq!(left.iter().filter(|c| c.is_none()).count(), 2, "{left:?}");

    // The next exchange gives the write back to the homes that removed
    // the key, and it reads back.
    let repair = client.repair_partition(STORE, partition).await;
    assert_eq!(repair.keys_repaired, 1, "{repair:?}");
    assert_eq!(repair.tombstones_reaped, 0);
    for copy in copies(&cluster, &key).await {
        let o = copy.expect("every home holds the write again");
        assert!(o.values().any(|v| v.data.as_deref() == Some(&b"raced"[..])));
    }
    let got = client.get(STORE, &key).await.expect("read");
    let values: Vec<_> = got.siblings.iter().map(|s| s.value.clone()).collect();
    assert_eq!(values, vec![b"raced".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_replica_down_blocks_the_reaping_of_its_keys() {
    let mut cluster = cluster().await;
    let client = cluster.client().await;
    let t = cluster.transport();
    let key = b"cart-3".to_vec();
    let partition = client.membership().partition_of(STORE, &key);
    until(put_and_delete(&cluster, &client, &key).await).await;

    cluster.node(3).stop().await;
    let report = client.repair_partition(STORE, partition).await;
    assert_eq!(report.tombstones_reaped, 0, "{report:?}");
    assert!(
        !report.unreachable.is_empty(),
        "node 3 reported: {report:?}"
    );
    let mut phase_one = RepairReport::default();
    let plan = client
        .plan_reaping(STORE, partition, now_ms(), &mut phase_one)
        .await;
    assert!(plan.is_empty(), "nothing is planned on a guess");
    for addr in &cluster.node_addrs[..2] {
        assert!(only_tombstones(&held(&t, &addr.to_string(), &key).await));
        assert_eq!(stats(&t, &addr.to_string()).await, (1, 1));
    }

    // Back up: the key is reaped everywhere.
    cluster.restart(3).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reaped = 0;
    while reaped == 0 && Instant::now() < deadline {
        // The client may still count node 3 down for a moment.
        reaped = client
            .repair_partition(STORE, partition)
            .await
            .tombstones_reaped;
    }
    assert_eq!(reaped, 1);
    assert_eq!(copies(&cluster, &key).await, vec![None, None, None]);
}
