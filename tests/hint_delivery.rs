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

/// A hint its home node refuses stays pending, and the hints after it in
/// the page still go home: one stuck key must not block a node's whole
/// handoff. Here the refusal is `InvalidObject`: the stuck hint claims a
/// dot of the home node's own actor that the home never issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hint_does_not_block_the_hints_after_it() {
    let cluster = TestCluster::start(4).await;
    let t = cluster.transport();
    let doc = &cluster.membership;
    let (target, stand_in) = (&cluster.nodes[0], &cluster.nodes[1]);
    let hello = Request::Hello {
        protocol_version: quire::shared::wire::PROTOCOL_VERSION,
        cluster_id: None,
    };
    let Ok(Reply::Hello { actor_id, .. }) = t.call(&target.addr(), &hello, T).await.unwrap().result
    else {
        panic!("hello answered");
    };
    let home_of =
        |key: &[u8]| doc.preference_list("default", key, 3).nodes[..3].contains(&target.node_id);
    // Two keys of the target, the refused one first in the stand-in's
    // page order (partition, then key).
    let mut candidates: Vec<(u32, Vec<u8>)> = (0..200u32)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|k| home_of(k))
        .map(|k| (doc.partition_of("default", &k), k))
        .collect();
    candidates.sort();
    let stuck = candidates[0].1.clone();
    let fine = candidates
        .iter()
        .find(|c| c.0 > candidates[0].0)
        .expect("a key in a later partition")
        .1
        .clone();
    for (key, actor) in [(&stuck, actor_id), (&fine, quire::shared::ActorId(2))] {
        let mut object = quire::shared::Object::new();
        object.event(actor, quire::shared::Value::bytes(b"v".to_vec(), 1));
        let hinted = Request::Replicate {
            store: "default".into(),
            key: key.clone(),
            object,
            hint: Some(target.node_id),
        };
        let held = t.call(&stand_in.addr(), &hinted, T).await.unwrap();
        assert!(matches!(held.result, Ok(Reply::Stored(_))), "{held:?}");
    }
    let client = cluster.client().await;
    let report = client.maintain_once().await;
    assert_eq!(report.hints_delivered, 1, "{report:?}");
    assert_eq!(report.hints_pending, 1, "{report:?}");
    assert!(
        report.unreachable.is_empty(),
        "the target is up: {report:?}"
    );
    assert_eq!(
        local_value(&t, &target.addr(), "default", &fine)
            .await
            .as_deref(),
        Some(&b"v"[..])
    );
}
