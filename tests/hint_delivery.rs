//! Hinted handoff at the edges of the limits: a hint for the longest store
//! name and key fits the stand-in's storage and comes home, and hints of
//! large values travel in pages under the frame limit and are all
//! delivered and dropped.

mod common;

use common::TestCluster;
use quire::shared::limits::{KEY_BYTES_MAX, STORE_NAME_BYTES_MAX};
use quire::shared::wire::{encode_frame, Reply, Request, Response};
use quire::shared::{ConflictPolicy, Durability, NodeId, StoreConfig, StoreLimits};
use quire::Context;
use quire_client::transport::Transport;
use quire_node::config::Limits;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

fn store(name: &str) -> StoreConfig {
    StoreConfig {
        name: name.into(),
        n: 3,
        r: 2,
        // Every copy must be placed: with a home replica down, the put
        // succeeds only if the stand-in stores its hint.
        w: 3,
        durability: Durability::Buffered,
        policy: ConflictPolicy::Siblings,
        limits: StoreLimits::default(),
    }
}

/// The value `addr` holds for `key` in its own data, if any.
async fn local_value(t: &Transport, addr: &str, store: &str, key: &[u8]) -> Option<Vec<u8>> {
    let get = Request::Get {
        store: store.into(),
        key: key.to_vec(),
        hint: None,
    };
    match t.call(addr, &get, T).await.expect("get answered").result {
        Ok(Reply::Object(Some(o))) => o.values().find_map(|v| v.data.clone()),
        Ok(Reply::Object(None)) => None,
        other => panic!("get: {other:?}"),
    }
}

/// The first page of hints `addr` holds for `target`, and its frame size.
async fn first_hint_page(t: &Transport, addr: &str, target: NodeId) -> (Reply, usize) {
    let req = Request::Hints {
        target,
        after: None,
        limit: 100,
    };
    let response: Response = t.call(addr, &req, T).await.expect("hints answered");
    let frame_bytes = encode_frame(&response).len();
    match response.result {
        Ok(reply @ Reply::Hints { .. }) => (reply, frame_bytes),
        other => panic!("hints: {other:?}"),
    }
}

fn hint_count(reply: &Reply) -> usize {
    match reply {
        Reply::Hints { hints, .. } => hints.len(),
        other => panic!("not a hint page: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_for_the_longest_store_name_and_key_is_stored_and_delivered_home() {
    let name = "abcdefghijklmnopqrstuvwx";
    assert_eq!(name.len(), STORE_NAME_BYTES_MAX);
    let mut cluster = TestCluster::start_with(4, vec![store(name)], Limits::default()).await;
    let client = cluster.client().await;
    let key: Vec<u8> = (0..KEY_BYTES_MAX).map(|i| b'a' + (i % 26) as u8).collect();
    let list = client.locate(name, &key).unwrap();
    let (home, stand_in) = (list.home().to_vec(), list.extended()[0]);
    let down = home[1];
    cluster.node_by_id(down).stop().await;

    client
        .put(name, &key, b"longest".to_vec(), &Context::empty())
        .await
        .expect("the stand-in stores the hint, so W=3 is met");
    let t = cluster.transport();
    let stand_in_addr = cluster.node_by_id(stand_in).addr();
    let (page, _) = first_hint_page(&t, &stand_in_addr, down).await;
    match &page {
        Reply::Hints { hints, .. } => {
            assert_eq!(hints.len(), 1);
            assert_eq!((hints[0].store.as_str(), &hints[0].key), (name, &key));
        }
        other => panic!("{other:?}"),
    }

    cluster.node_by_id(down).start().await.expect("restarts");
    let report = client.maintain_once().await;
    assert_eq!(
        (
            report.hints_delivered,
            report.hints_dropped,
            report.hints_pending
        ),
        (1, 1, 0),
        "{report:?}"
    );
    let down_addr = cluster.node_by_id(down).addr();
    assert_eq!(
        local_value(&t, &down_addr, name, &key).await,
        Some(b"longest".to_vec())
    );
    assert_eq!(
        hint_count(&first_hint_page(&t, &stand_in_addr, down).await.0),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_of_large_values_are_paged_under_the_frame_limit_and_all_delivered() {
    const FRAME: u32 = 4 << 20;
    const VALUE: usize = (1 << 20) - 64;
    const KEYS: usize = 8;
    let limits = Limits {
        value_bytes_max: 1 << 20,
        frame_bytes_max: FRAME,
        ..Limits::default()
    };
    let mut cluster = TestCluster::start_with(4, vec![store("big")], limits).await;
    let client = cluster.client().await;
    let ids: Vec<NodeId> = cluster.membership.members.iter().map(|m| m.id).collect();
    let (down, stand_in) = (ids[0], ids[1]);
    // Keys that `down` is a home replica of (not the coordinator) and
    // whose stand-in is `stand_in`: all their hints gather there.
    let keys: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("big-{i}").into_bytes())
        .filter(|k| {
            let list = client.locate("big", k).unwrap();
            list.home()[1..].contains(&down) && list.extended()[0] == stand_in
        })
        .take(KEYS)
        .collect();
    assert_eq!(keys.len(), KEYS);
    cluster.node_by_id(down).stop().await;
    for (i, key) in keys.iter().enumerate() {
        client
            .put("big", key, vec![i as u8; VALUE], &Context::empty())
            .await
            .expect("hinted put");
    }

    let t = cluster.transport();
    let stand_in_addr = cluster.node_by_id(stand_in).addr();
    let (page, frame_bytes) = first_hint_page(&t, &stand_in_addr, down).await;
    assert!(
        frame_bytes <= FRAME as usize,
        "a page of {frame_bytes} bytes exceeds the {FRAME}-byte frame limit"
    );
    match &page {
        Reply::Hints { hints, next } => {
            assert!(!hints.is_empty() && hints.len() < KEYS);
            assert!(next.is_some(), "more pages follow");
        }
        other => panic!("{other:?}"),
    }

    cluster.node_by_id(down).start().await.expect("restarts");
    let report = client.maintain_once().await;
    assert_eq!(
        (
            report.hints_delivered,
            report.hints_dropped,
            report.hints_pending
        ),
        (KEYS as u64, KEYS as u64, 0),
        "{report:?}"
    );
    let down_addr = cluster.node_by_id(down).addr();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            local_value(&t, &down_addr, "big", key).await,
            Some(vec![i as u8; VALUE]),
            "key {i} is home"
        );
    }
    assert_eq!(
        hint_count(&first_hint_page(&t, &stand_in_addr, down).await.0),
        0
    );
}

/// A hint its home node refuses (the key there is at its sibling limit)
/// stays pending, and the hints after it in the page still go home: one
/// stuck key must not block a node's whole handoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hint_does_not_block_the_hints_after_it() {
    let mut tight = store("tight");
    tight.durability = Durability::Sync;
    tight.limits = StoreLimits {
        siblings_warn: 1,
        siblings_max: 1,
        ..StoreLimits::default()
    };
    let cluster = TestCluster::start_with(3, vec![tight], Limits::default()).await;
    let t = cluster.transport();
    let doc = &cluster.membership;
    // Two keys, the refused one first in the stand-in's page order
    // (partition, then key).
    let keys: Vec<Vec<u8>> = (0..64u32).map(|i| format!("k{i}").into_bytes()).collect();
    let mut by_page: Vec<(u32, Vec<u8>)> = keys
        .into_iter()
        .map(|k| (doc.partition_of("tight", &k), k))
        .collect();
    by_page.sort();
    by_page.dedup_by_key(|(p, _)| *p);
    let (stuck, fine) = (by_page[0].1.clone(), by_page[1].1.clone());
    let (home, stand_in) = (&cluster.nodes[0], &cluster.nodes[1]);
    let value = |actor: u64, v: &str| {
        let mut o = quire::shared::Object::new();
        o.event(
            quire::shared::ActorId(actor),
            quire::shared::Value::bytes(v.as_bytes().to_vec(), 1),
        );
        o
    };
    let replicate = |key: &[u8], object, hint| Request::Replicate {
        store: "tight".into(),
        key: key.to_vec(),
        object,
        hint,
    };
    // The home holds one value of `stuck`; the hint holds a concurrent one:
    // together they would be two siblings, over the limit of one.
    let at_home = t
        .call(&home.addr(), &replicate(&stuck, value(1, "home"), None), T)
        .await;
    assert!(matches!(at_home.unwrap().result, Ok(Reply::Stored(_))));
    for (key, v) in [(&stuck, "held"), (&fine, "fine")] {
        let hinted = replicate(key, value(2, v), Some(home.node_id));
        let held = t.call(&stand_in.addr(), &hinted, T).await.unwrap();
        assert!(matches!(held.result, Ok(Reply::Stored(_))), "{held:?}");
    }
    let client = cluster.client().await;
    let report = client.maintain_once().await;
    assert_eq!(report.hints_delivered, 1, "{report:?}");
    assert!(report.hints_pending >= 1, "{report:?}");
    assert!(report.unreachable.is_empty(), "the home is up: {report:?}");
    assert_eq!(
        local_value(&t, &home.addr(), "tight", &fine)
            .await
            .as_deref(),
        Some(&b"fine"[..])
    );
}
