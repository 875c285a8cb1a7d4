//! Siblings, contexts, deletes, last-write-wins and read repair on a real
//! three-node cluster; and the shopping-cart checker.

mod common;

#[path = "../examples/shopping_cart.rs"]
#[allow(dead_code)]
mod shopping_cart;

use common::{local_value, TestCluster};
use quire::shared::wire::{Reply, Request};
use quire::shared::{ConflictPolicy, Durability, StoreConfig, StoreLimits};
use quire::{Client, Context, LastWriteWins};
use std::time::{Duration, Instant};

const STORE: &str = "default";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_the_same_stale_context_become_siblings_until_a_write_with_their_context() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    client
        .put(STORE, b"k", b"v0".to_vec(), &Context::empty())
        .await
        .unwrap();
    let stale = client.get(STORE, b"k").await.unwrap().context;

    client
        .put(STORE, b"k", b"a".to_vec(), &stale)
        .await
        .unwrap();
    client
        .put(STORE, b"k", b"b".to_vec(), &stale)
        .await
        .unwrap();
    let read = client.get(STORE, b"k").await.unwrap();
    let mut values = read.values();
    values.sort();
    assert_eq!(
        values,
        vec![&b"a"[..], &b"b"[..]],
        "v0 replaced, a and b siblings"
    );

    // A write with the read's context replaces both.
    client
        .put(STORE, b"k", b"merged".to_vec(), &read.context)
        .await
        .unwrap();
    assert_eq!(
        client.get(STORE, b"k").await.unwrap().values(),
        vec![b"merged"]
    );

    // A blind write (empty context) replaces nothing: a sibling.
    client
        .put(STORE, b"k", b"blind".to_vec(), &Context::empty())
        .await
        .unwrap();
    assert_eq!(client.get(STORE, b"k").await.unwrap().siblings.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_concurrent_with_an_add_keeps_the_add() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    client
        .put(STORE, b"cart", b"apple".to_vec(), &Context::empty())
        .await
        .unwrap();
    let seen = client.get(STORE, b"cart").await.unwrap().context;
    // One client adds based on what it saw; another deletes what it saw.
    client
        .put(STORE, b"cart", b"apple,pear".to_vec(), &seen)
        .await
        .unwrap();
    client.delete(STORE, b"cart", &seen).await.unwrap();
    let read = client.get(STORE, b"cart").await.unwrap();
    assert_eq!(
        read.values(),
        vec![b"apple,pear"],
        "the add survives the delete"
    );

    // Deleting with a context that saw everything: not found, context kept.
    client.delete(STORE, b"cart", &read.context).await.unwrap();
    let gone = client.get(STORE, b"cart").await.unwrap();
    assert!(!gone.found());
    assert!(!gone.context.is_empty());
    // A write with the tombstone's context starts afresh without siblings.
    client
        .put(STORE, b"cart", b"new".to_vec(), &gone.context)
        .await
        .unwrap();
    assert_eq!(
        client.get(STORE, b"cart").await.unwrap().values(),
        vec![b"new"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lww_store_collapses_concurrent_writes_to_the_newest() {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.client().await;
    let lww = StoreConfig {
        name: "prices".into(),
        n: 3,
        r: 2,
        w: 2,
        durability: Durability::Sync,
        policy: ConflictPolicy::Lww,
        limits: StoreLimits::default(),
    };
    admin.create_store(lww).await.unwrap();
    let client = cluster.client().await;
    let store = client.store("prices").unwrap();
    assert_eq!(store.config().policy, ConflictPolicy::Lww);

    for v in ["first", "second", "third"] {
        store
            .put(b"p", v.as_bytes().to_vec(), &Context::empty())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let read = store.get(b"p").await.unwrap();
    assert_eq!(read.values(), vec![b"third"], "newest timestamp wins");
    // Nodes keep only the newest value of an LWW store: even a raw read
    // (no resolver) and each node's own copy hold just one.
    let raw = client.get("prices", b"p").await.unwrap();
    assert_eq!(raw.values(), vec![b"third"]);
    let t = cluster.transport();
    for node in &cluster.nodes {
        let get = Request::Get {
            store: "prices".into(),
            key: b"p".to_vec(),
            hint: None,
        };
        let answer = t
            .call(&node.addr(), &get, Duration::from_secs(5))
            .await
            .unwrap();
        if let Ok(Reply::Object(Some(o))) = answer.result {
            assert_eq!(o.value_count(), 1, "a node kept LWW siblings");
        }
    }

    // LWW chosen per handle on a siblings store.
    let default = client.store(STORE).unwrap().with_resolver(LastWriteWins);
    default
        .put(b"x", b"old".to_vec(), &Context::empty())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    default
        .put(b"x", b"new".to_vec(), &Context::empty())
        .await
        .unwrap();
    assert_eq!(default.get(b"x").await.unwrap().values(), vec![b"new"]);
    assert_eq!(client.get(STORE, b"x").await.unwrap().siblings.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_a_write_holds_it_after_one_get() {
    let mut cluster = TestCluster::start(3).await;
    cluster.nodes[2].stop().await;
    let writer = cluster.client().await;
    writer
        .put(STORE, b"k", b"v".to_vec(), &Context::empty())
        .await
        .unwrap();
    writer.close();
    cluster.nodes[2].start().await.expect("node restarts");
    let t = cluster.transport();
    let missed = cluster.nodes[2].addr();
    assert_eq!(
        local_value(&t, &missed, STORE, b"k").await,
        None,
        "the node missed the write"
    );

    // Asking every replica, the read sees the one that missed the write
    // whichever two answer first. (Asking `R` first, it is read, and so
    // repaired, only when the first two differ: tests/read_fanout.rs.)
    let reader: Client = cluster.client_reading_all().await;
    let read = reader.get(STORE, b"k").await.unwrap();
    assert_eq!(read.values(), vec![b"v"]);
    // The repair goes out in the background, right after the read.
    let deadline = Instant::now() + Duration::from_secs(5);
    while local_value(&t, &missed, STORE, b"k").await.is_none() {
        assert!(
            Instant::now() < deadline,
            "read repair never reached the node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        local_value(&t, &missed, STORE, b"k").await,
        Some(b"v".to_vec())
    );
    assert_eq!(reader.stats().read_repairs, 1);

    // A second read finds every replica equal: no more repairs.
    reader.get(STORE, b"k").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(reader.stats().read_repairs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_reads_resolves_and_writes_back() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    let store = client
        .store(STORE)
        .unwrap()
        .with_resolver(quire::merge_with(|a, b| [a, b].join(&b'+')));
    store
        .put(b"n", b"a".to_vec(), &Context::empty())
        .await
        .unwrap();
    store
        .put(b"n", b"b".to_vec(), &Context::empty())
        .await
        .unwrap();
    store
        .update(b"n", |current| {
            assert_eq!(current.len(), 1, "the resolver merged the siblings");
            let mut v = current[0].value.clone();
            v.extend_from_slice(b"+c");
            v
        })
        .await
        .unwrap();
    let raw = client.get(STORE, b"n").await.unwrap();
    assert_eq!(raw.siblings.len(), 1, "the update replaced both siblings");
    let v = String::from_utf8(raw.siblings[0].value.clone()).unwrap();
    assert!(v == "a+b+c" || v == "b+a+c", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopping_carts_lose_no_add() {
    let w = shopping_cart::Workload {
        shoppers: 6,
        ops_per_shopper: 350,
        ..Default::default()
    };
    let report = shopping_cart::run(w, 7).await.unwrap();
    eprintln!("{report:?}");
    assert!(
        report.adds_acknowledged >= 1000,
        "thousands of adds: {report:?}"
    );
    assert_eq!(report.lost_adds, 0, "{report:?}");
    assert_eq!(report.removed_but_visible, 0, "{report:?}");
    assert!(
        report.max_siblings >= 2,
        "stale contexts made siblings: {report:?}"
    );
    if report.failed == 0 {
        // Nothing unacknowledged can have landed: the count is exact.
        assert_eq!(
            report.items_at_end,
            report.adds_acknowledged - report.removes_acknowledged
        );
    }
}
