//! kv679 by rollback: a node whose data goes back in time must never issue
//! a dot it may have issued before, or a value that other replicas hold
//! under that dot silently disappears (Riak's kv679).
//!
//! Two ways for the data to go back while the node keeps its identity:
//! - an unclean stop after writes that were acknowledged but not yet
//!   fsynced (a buffered store): emulated by killing the node process
//!   (SIGKILL) and putting back its database file as it was at the last
//!   point everything was on disk, which is what a power cut leaves
//!   (SIGKILL alone keeps the page cache, so it would lose nothing);
//! - a data directory restored from a copy made while the node was
//!   stopped.
//!
//! Each time the node then coordinates a blind write of another value for
//! the same key; every replica must end up holding both values.

mod common;

use common::{builder, TestCluster, QUIRE};
use quire::shared::wire::{Reply, Request};
use quire::shared::{
    ConflictPolicy, Durability, Object, StoreConfig, StoreLimits, Value, VersionVector,
};
use quire_client::transport::Transport;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const KEY: &[u8] = b"cart";

/// Node K's database file.
fn database(cluster: &TestCluster, k: usize) -> PathBuf {
    cluster.layout().node_dir(k).join("data").join("data.mdb")
}

/// A blind write of `value` coordinated by the node at `coordinator`, then
/// replicated to the others, as the SDK's put does.
async fn write_blind(
    t: &Transport,
    coordinator: &str,
    others: &[String],
    store: &str,
    value: &str,
) {
    let put = Request::Put {
        store: store.into(),
        key: KEY.to_vec(),
        value: Value::bytes(value.as_bytes().to_vec(), 1),
        context: VersionVector::new(),
        hint: None,
    };
    // The first call after a restart may meet the connection from before
    // it (reset by the node): one retry on a fresh connection.
    let answer = match t.call(coordinator, &put, T).await {
        Ok(a) => a,
        Err(_) => t.call(coordinator, &put, T).await.expect("put answered"),
    };
    let object = match answer.result {
        Ok(Reply::Stored(o)) => o,
        other => panic!("put refused: {other:?}"),
    };
    for addr in others {
        let replicate = Request::Replicate {
            store: store.into(),
            key: KEY.to_vec(),
            object: object.clone(),
            hint: None,
        };
        let answer = t
            .call(addr, &replicate, T)
            .await
            .expect("replicate answered");
        assert!(matches!(answer.result, Ok(Reply::Stored(_))), "{answer:?}");
    }
}

/// The values each of `addrs` holds for the key, and (last) the values of
/// their sync: what a read at R = N returns.
async fn values_on_every_replica(t: &Transport, addrs: &[String], store: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut all = Object::default();
    for addr in addrs {
        let get = Request::Get {
            store: store.into(),
            key: KEY.to_vec(),
            hint: None,
        };
        let object: Object = match t.call(addr, &get, T).await.expect("get answered").result {
            Ok(Reply::Object(o)) => o.unwrap_or_default(),
            other => panic!("get refused: {other:?}"),
        };
        all = all.sync(&object);
        out.push(texts(&object));
    }
    out.push(texts(&all));
    out
}

fn texts(object: &Object) -> Vec<String> {
    let mut values: Vec<String> = object
        .values()
        .filter_map(|v| v.data.as_deref())
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    values.sort();
    values
}

fn addrs(cluster: &TestCluster) -> Vec<String> {
    cluster
        .membership
        .members
        .iter()
        .map(|m| m.addr.clone())
        .collect()
}

/// The node at `coordinator` loses its last acknowledged write to an
/// unclean stop; a later blind write it coordinates must not reuse that
/// write's dot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_unsynced_tail_issues_no_old_dot() {
    let store = StoreConfig {
        name: "buffered".into(),
        n: 3,
        r: 3,
        w: 3,
        durability: Durability::Buffered,
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    };
    let synced = StoreConfig {
        name: "synced".into(),
        durability: Durability::Sync,
        ..store.clone()
    };
    let mut cluster = TestCluster::from(
        builder(3).processes(QUIRE).stores(vec![store, synced]),
        false,
    )
    .await;
    let t = cluster.transport();
    let all = addrs(&cluster);
    let coordinator = cluster.nodes[0].addr();
    let others: Vec<String> = all.iter().filter(|a| **a != coordinator).cloned().collect();
    // A write to a sync store fsyncs the whole environment before it is
    // acknowledged: after it, everything so far is on disk, and this copy
    // is what a power cut right after the next write leaves behind.
    write_blind(&t, &coordinator, &others, "synced", "barrier").await;
    let on_disk = std::fs::read(database(&cluster, 1)).unwrap();
    write_blind(&t, &coordinator, &others, "buffered", "apple").await;
    cluster.kill(1).await;
    std::fs::write(database(&cluster, 1), on_disk).unwrap();
    cluster.restart(1).await;
    write_blind(&t, &coordinator, &others, "buffered", "pear").await;
    // The coordinator itself lost "apple" (read repair or anti-entropy
    // brings it back); the other replicas and a read at R = N hold both.
    for values in values_on_every_replica(&t, &others, "buffered").await {
        assert_eq!(values, ["apple", "pear"], "an acknowledged value vanished");
    }
    let at_r_n = values_on_every_replica(&t, &all, "buffered").await;
    assert_eq!(at_r_n.last().unwrap(), &["apple", "pear"]);
}

/// The node's data directory is restored from a copy made before a write
/// it coordinated; a later blind write it coordinates must not reuse that
/// write's dot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_a_backup_issues_no_old_dot() {
    let mut cluster = TestCluster::start(3).await;
    let t = cluster.transport();
    let all = addrs(&cluster);
    let coordinator = cluster.nodes[0].addr();
    let others: Vec<String> = all.iter().filter(|a| **a != coordinator).cloned().collect();
    cluster.node(1).stop().await;
    let backup = std::fs::read(database(&cluster, 1)).unwrap();
    cluster.restart(1).await;
    write_blind(&t, &coordinator, &others, "default", "apple").await;
    cluster.node(1).stop().await;
    std::fs::write(database(&cluster, 1), backup).unwrap();
    cluster.restart(1).await;
    write_blind(&t, &coordinator, &others, "default", "pear").await;
    for values in values_on_every_replica(&t, &others, "default").await {
        assert_eq!(values, ["apple", "pear"], "an acknowledged value vanished");
    }
    let at_r_n = values_on_every_replica(&t, &all, "default").await;
    assert_eq!(at_r_n.last().unwrap(), &["apple", "pear"]);
}
