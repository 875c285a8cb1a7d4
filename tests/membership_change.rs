//! Membership change on real nodes: a node joins and a node leaves while
//! writers run; data moves to the new owners without losing an
//! acknowledged write, and the change flips once it has moved.

mod common;

use common::TestCluster;
use quire::shared::wire::{Reply, Request};
use quire::shared::{Change, MemberState, Membership, NodeId};
use quire::{Client, Context};
use quire_client::transport::Transport;
use quire_client::TransferPace;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// Writers putting fresh keys until `stop`; every acknowledged key with
/// its value lands in `acked`.
fn writers(
    client: &Client,
    lanes: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
        set.spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k-{lane}-{i}").into_bytes();
                let value = format!("v-{lane}-{i}").into_bytes();
                if client
                    .put("default", &key, value.clone(), &Context::empty())
                    .await
                    .is_ok()
                {
                    acked.lock().unwrap().insert(key, value);
                }
                i += 1;
            }
        });
    }
    set
}

/// Every acknowledged key reads back with its value (R = 2 of the
/// current owners).
async fn all_readable(client: &Client, acked: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for (key, value) in acked {
        let got = client.get("default", key).await.expect("read");
        assert!(
            got.siblings.iter().any(|s| &s.value == value),
            "{} lost",
            String::from_utf8_lossy(key)
        );
    }
}

/// Checks that the node `id` at `addr` holds every one of `keys` it is a
/// home replica of in `doc`; returns how many that is.
async fn held_where_home(
    cluster: &TestCluster,
    (doc, id, addr): (&Membership, NodeId, &str),
    keys: &[Vec<u8>],
) -> u64 {
    let raw = cluster.transport();
    let mut held = 0;
    for key in keys {
        if doc.preference_list("default", key, 3).home().contains(&id) {
            assert!(
                holds(&raw, addr, key).await,
                "{} not on the new node",
                String::from_utf8_lossy(key)
            );
            held += 1;
        }
    }
    held
}

/// Node `addr`'s own copy of `key` exists (a raw local read through
/// `raw`: one transport for a whole check, so that a loop over many keys
/// makes one handshake per node, not one per key).
async fn holds(raw: &Transport, addr: &str, key: &[u8]) -> bool {
    let get = Request::Get {
        store: "default".into(),
        key: key.to_vec(),
        hint: None,
    };
    match raw.call(addr, &get, T).await.unwrap().result {
        Ok(Reply::Object(o)) => o.is_some(),
        other => panic!("expected an object, got {other:?}"),
    }
}

/// Puts `count` keys `key-NNNN` with `value` and waits for their
/// background work; returns the keys.
async fn put_keys(client: &Client, count: usize, value: &[u8]) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for i in 0..count {
        let key = format!("key-{i:04}").into_bytes();
        client
            .put("default", &key, value.to_vec(), &Context::empty())
            .await
            .unwrap();
        keys.push(key);
    }
    client.settle(Duration::from_secs(10)).await;
    keys
}

/// Starts a fourth node and commits its join; its address, its member
/// entry and the committed document.
async fn join_a_fourth_node(
    cluster: &mut TestCluster,
    client: &Client,
) -> (String, quire::shared::Member, Membership) {
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let member = client.member_at(&addr, "local", 1, T).await.unwrap();
    let doc = client.membership();
    let (committed, _) = client
        .commit_change(&[Change::Join(member.clone())], doc.version())
        .await
        .unwrap();
    (addr, member, committed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_leaves_under_load_without_losing_a_write() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(64), false).await;
    let client = cluster.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let mut load = writers(&client, 4, &stop, &acked);
    // Some data before the change, more during it.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Join: a fourth node, started but not a member, is staged and
    // committed; the plan moves about a quarter of the partitions to it.
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let member = client.member_at(&addr, "local", 1, T).await.expect("hello");
    let before = client.membership();
    let (committed, missed) = client
        .commit_change(&[Change::Join(member.clone())], before.version())
        .await
        .expect("commit");
    assert!(missed.is_empty(), "{missed:?}");
    assert_eq!(committed.state_of(member.id), MemberState::Joining);
    let moving = committed.partitions_owned(member.id).1;
    assert!(
        (12..=20).contains(&moving),
        "node 4 will own {moving} of 64"
    );
    // A second commit planned on the old document must re-plan.
    let again = client
        .commit_change(&[Change::Leave(before.members[0].id)], before.version())
        .await;
    assert!(again.is_err(), "a stale plan was committed: {again:?}");

    let report = client
        .transfer_until_flipped(64, Duration::from_millis(20), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    let joined = client.membership();
    assert_eq!(joined.state_of(member.id), MemberState::Member);
    assert!(joined.pending.is_none());
    assert_eq!(joined.partitions_owned(member.id).0, moving);

    // Leave: node 1's partitions move to the others, writers still on.
    let leaver = before.members[0].id;
    let (left, _) = client
        .commit_change(&[Change::Leave(leaver)], joined.version())
        .await
        .expect("commit leave");
    assert_eq!(left.state_of(leaver), MemberState::Leaving);
    let report = client
        .transfer_until_flipped(64, Duration::from_millis(20), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    client.settle(Duration::from_secs(10)).await;

    let after = client.membership();
    assert_eq!(after.state_of(leaver), MemberState::Idle);
    assert_eq!(after.partitions_owned(leaver), (0, 0));
    // Its copies handed off and dropped, the idle node is removed from
    // the document.
    let dropped = client.hand_off_and_drop().await;
    assert!(dropped.unreachable.is_empty(), "{dropped:?}");
    let gone = after.member(leaver).unwrap().clone();
    let held = client.node_stats(&gone).await.unwrap();
    assert_eq!(held.stores.iter().map(|s| s.objects).sum::<u64>(), 0);
    let (removed, _) = client
        .commit_change(&[Change::Remove(leaver)], after.version())
        .await
        .expect("remove an idle member");
    assert!(removed.member(leaver).is_none());
    assert!(removed.pending.is_none());
    // The removed node is told, so a cold client that starts from it as
    // its only seed still starts from the newest document.
    let mut config = cluster.client_config.clone();
    config.seeds = vec![gone.addr.clone()];
    let cold = Client::connect(config).await.unwrap();
    assert_eq!(cold.membership().epoch, removed.epoch);
    assert!(cold.membership().member(leaver).is_none());
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{} writes acknowledged across a join and a leave",
        acked.len()
    );
    all_readable(&client, &acked).await;
    // A cold client, which learns the flipped document from the nodes.
    let fresh = Client::connect(cluster.client_config.clone())
        .await
        .unwrap();
    all_readable(&fresh, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transferred_partitions_are_held_by_the_new_node_itself() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(16), false).await;
    let client = cluster.client().await;
    let keys = put_keys(&client, 200, b"v").await;
    let (addr, member, _) = join_a_fourth_node(&mut cluster, &client).await;
    let report = client
        .transfer_until_flipped(64, Duration::from_millis(20), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    // The pages moved the data; the closing exchange found nothing left
    // (no write raced with them).
    assert_eq!(report.keys_repaired_at_close, 0, "{report:?}");
    let held = held_where_home(&cluster, (&client.membership(), member.id, &addr), &keys).await;
    assert!(held > 20, "only {held} keys moved to the new node");
    assert!(report.keys_copied >= held, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_and_its_partitions_rebuilt_from_the_others() {
    let mut cluster = TestCluster::from(
        common::builder(3).partitions(16).processes(common::QUIRE),
        false,
    )
    .await;
    let client = cluster.client().await;
    let mut keys = Vec::new();
    for i in 0..150 {
        let key = format!("key-{i}").into_bytes();
        client
            .put("default", &key, key.clone(), &Context::empty())
            .await
            .unwrap();
        keys.push(key);
    }
    client.settle(Duration::from_secs(10)).await;
    // The machine of node 3 dies with its disk.
    let dead = cluster.membership.members[2].clone();
    let k = cluster.k_of(dead.id);
    cluster.kill(k).await;
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let member = client.member_at(&addr, "local", 1, T).await.unwrap();
    let doc = client.membership();
    let (committed, _) = client
        .commit_change(
            &[Change::Replace {
                old: dead.id,
                new: member.clone(),
            }],
            doc.version(),
        )
        .await
        .expect("a majority takes the change with one node down");
    assert_eq!(
        committed.partitions_owned(member.id).1,
        doc.partitions_owned(dead.id).0,
        "the new node takes exactly the dead one's partitions"
    );
    let report = client
        .transfer_until_flipped(64, Duration::from_millis(50), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    let after = client.membership();
    assert_eq!(after.state_of(dead.id), MemberState::Idle);
    let raw = cluster.transport();
    for key in &keys {
        if after
            .preference_list("default", key, 3)
            .home()
            .contains(&member.id)
        {
            assert!(holds(&raw, &addr, key).await, "not rebuilt on the new node");
        }
    }
    all_readable_keys(&client, &keys).await;
}

async fn all_readable_keys(client: &Client, keys: &[Vec<u8>]) {
    for key in keys {
        let got = client.get("default", key).await.expect("read");
        assert!(got.siblings.iter().any(|s| &s.value == key));
    }
}

/// Killing the client that runs a transfer, the receiver and a sender:
/// the transfer resumes from the cursor the receiver keeps, re-sending
/// nothing it marked; at most the page in flight (a page is under 20 % of
/// a partition here) is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transfer_resumes_from_the_receivers_cursor() {
    let frame = 32 << 10;
    let limits = quire_node::config::Limits {
        frame_bytes_max: frame,
        value_bytes_max: 4 << 10,
        ..Default::default()
    };
    let mut cluster = TestCluster::from(
        common::builder(3)
            .partitions(4)
            .node_limits(limits)
            .processes(common::QUIRE),
        false,
    )
    .await;
    let client = cluster.client().await;
    let value = vec![b'v'; 1024];
    for i in 0..800 {
        let key = format!("key-{i:04}").into_bytes();
        client
            .put("default", &key, value.clone(), &Context::empty())
            .await
            .unwrap();
    }
    client.settle(Duration::from_secs(10)).await;
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let receiver = cluster.cluster.nodes.len();
    let member = client.member_at(&addr, "local", 1, T).await.unwrap();
    let doc = client.membership();
    client
        .commit_change(&[Change::Join(member)], doc.version())
        .await
        .unwrap();

    // Client A copies a page at a time and is killed mid-way.
    let a = Client::connect(cluster.client_config.clone())
        .await
        .unwrap();
    let run = tokio::spawn(async move {
        a.transfer_until_flipped(1, Duration::ZERO, Duration::from_secs(60))
            .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = client.transfers().await;
        if now.transfers.iter().map(|t| t.keys).sum::<u64>() >= 100 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    let _ = run.await;
    // The receiver restarts: its record of progress is durable.
    cluster.kill(receiver).await;
    cluster.restart(receiver).await;
    // (The first call after the restart may meet the dead connection.)
    let mut marked_report = client.transfers().await;
    for _ in 0..50 {
        if marked_report.unreachable.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        marked_report = client.transfers().await;
    }
    let marked: u64 = marked_report.transfers.iter().map(|t| t.keys).sum();
    assert!(marked >= 100, "{marked_report:?}");
    assert!(marked_report.active + marked_report.done > 0);

    // Client B resumes with a sender down for a while: the other home
    // replicas serve the pages. (Eight seconds: on a loaded machine the
    // connect timeouts to the dead sender take a good part of them.)
    let sender = cluster.k_of(doc.members[0].id);
    cluster.kill(sender).await;
    let b = Client::connect(cluster.client_config.clone())
        .await
        .unwrap();
    let partial = b
        .transfer_until_flipped(2, Duration::ZERO, Duration::from_secs(8))
        .await;
    assert!(!partial.flipped, "flipped with a staying replica down");
    assert!(
        partial.keys_copied > 0,
        "no page copied from the other sources: {partial:?}"
    );
    cluster.restart(sender).await;
    let report = b
        .transfer_until_flipped(64, Duration::from_millis(50), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    let total: u64 = report.transfers.iter().map(|t| t.keys).sum();
    assert_eq!(
        partial.keys_copied + report.keys_copied,
        total - marked,
        "B resumed exactly from the receivers' cursors"
    );
    for t in &report.transfers {
        assert!(
            t.bytes >= 5 * u64::from(frame),
            "a page is over 20 % of partition {}: {t:?}",
            t.partition
        );
    }
}

/// Hints held for a node that then leaves go to the keys' home replicas
/// after the change, not to the node that left (which would refuse them
/// and keep them pending forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_for_a_node_that_left_go_to_the_new_home_replicas() {
    let cluster = TestCluster::from(common::builder(4).partitions(16), true).await;
    let client = cluster.client().await;
    let gone = cluster.cluster.nodes[3].node_id;
    cluster.proxies[3].set(common::proxy::Fault::DropAll);
    let mut keys = Vec::new();
    for i in 0..100 {
        let key = format!("key-{i}").into_bytes();
        client
            .put("default", &key, key.clone(), &Context::empty())
            .await
            .expect("W=2 of the reachable replicas");
        keys.push(key);
    }
    client.settle(Duration::from_secs(10)).await;
    let doc = client.membership();
    let mut held_for_gone = 0;
    for m in doc.members.iter().filter(|m| m.id != gone) {
        let stats = client.node_stats(m).await.expect("stats");
        held_for_gone += stats
            .hints
            .iter()
            .filter(|(home, _)| *home == gone)
            .map(|(_, n)| n)
            .sum::<u64>();
    }
    assert!(
        held_for_gone > 0,
        "stand-ins hold hints for the partitioned node"
    );

    client
        .commit_change(&[Change::Leave(gone)], doc.version())
        .await
        .expect("a majority takes the change");
    let report = client
        .transfer_until_flipped(64, Duration::from_millis(50), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    let delivered = client.maintain_once().await;
    assert!(delivered.hints_delivered >= held_for_gone, "{delivered:?}");
    let after = client.membership();
    for m in after.members.iter().filter(|m| m.id != gone) {
        let stats = client.node_stats(m).await.expect("stats");
        assert!(
            stats.hints.iter().all(|(home, n)| *home != gone || *n == 0),
            "{}: {:?}",
            m.addr,
            stats.hints
        );
    }
    let raw = cluster.transport();
    for key in &keys {
        for home in after.preference_list("default", key, 3).home() {
            let addr = &after.member(*home).unwrap().addr;
            assert!(holds(&raw, addr, key).await, "a new home lacks a key");
        }
    }
}

/// After a join has flipped, each old owner hands its copies of the
/// partitions it lost to their home replicas and drops them: every node
/// then holds exactly the keys it is a home replica of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_owners_drop_their_copies_once_the_change_has_flipped() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(16), false).await;
    let client = cluster.client().await;
    let mut keys = Vec::new();
    for i in 0..200 {
        let key = format!("key-{i}").into_bytes();
        client
            .put("default", &key, key.clone(), &Context::empty())
            .await
            .unwrap();
        keys.push(key);
    }
    client.settle(Duration::from_secs(10)).await;
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let member = client.member_at(&addr, "local", 1, T).await.unwrap();
    let joined = member.id;
    // While the change moves data, nothing is dropped.
    client
        .commit_change(&[Change::Join(member)], client.membership().version())
        .await
        .unwrap();
    assert_eq!(
        client.hand_off_and_drop().await.partitions_dropped,
        0,
        "dropped while a change was moving"
    );
    let report = client
        .transfer_until_flipped(64, Duration::from_millis(20), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    // A drop naming a copy other than the one held is refused: nothing
    // goes that was not handed off.
    let doc = client.membership();
    let (old_owner, key) = doc
        .members
        .iter()
        .filter(|m| m.id != joined)
        .find_map(|m| {
            keys.iter()
                .find(|k| !doc.preference_list("default", k, 3).home().contains(&m.id))
                .map(|k| (m.clone(), k.clone()))
        })
        .expect("an old owner of some key");
    let count = |stats: quire::shared::wire::NodeStats| -> u64 {
        stats.stores.iter().map(|s| s.objects).sum()
    };
    let before = count(client.node_stats(&old_owner).await.unwrap());
    {
        let stale = Request::DropPartition {
            store: "default".into(),
            partition: doc.partition_of("default", &key),
            root: [0; 16],
        };
        let answer = cluster
            .transport()
            .call(&old_owner.addr, &stale, T)
            .await
            .unwrap();
        assert_eq!(
            answer.result.unwrap_err().code,
            quire::shared::wire::ErrorCode::CopyChanged
        );
        assert_eq!(count(client.node_stats(&old_owner).await.unwrap()), before);
        assert!(before > 0);
    }
    let dropped = client.hand_off_and_drop().await;
    assert!(dropped.partitions_dropped > 0, "{dropped:?}");
    assert!(dropped.unreachable.is_empty(), "{dropped:?}");
    let doc = client.membership();
    let raw = cluster.transport();
    for m in &doc.members {
        let home_of = keys
            .iter()
            .filter(|k| doc.preference_list("default", k, 3).home().contains(&m.id))
            .count() as u64;
        let stats = client.node_stats(m).await.unwrap();
        let held: u64 = stats.stores.iter().map(|s| s.objects).sum();
        assert_eq!(held, home_of, "{} holds other keys than its own", m.addr);
        for key in &keys {
            if doc
                .preference_list("default", key, 3)
                .home()
                .contains(&m.id)
            {
                assert!(holds(&raw, &m.addr, key).await);
            }
        }
    }
    all_readable_keys(&client, &keys).await;
    // A second sweep finds nothing left to drop.
    assert_eq!(client.hand_off_and_drop().await.partitions_dropped, 0);
}

/// A `TransferPage` is checked before anything is written: a key of
/// another partition is refused as malformed, a node that is not an
/// incoming replica of the partition (or a page of another change) gets
/// `NotOwner`, and the receiver holds none of the refused keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_pages_are_checked_before_anything_is_written() {
    use quire::shared::wire::{Entry, ErrorCode, Reply, Request};
    use quire::shared::{ActorId, Object, Value};
    let mut cluster = TestCluster::from(common::builder(3).partitions(4), false).await;
    let client = cluster.client().await;
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let member = client.member_at(&addr, "local", 1, T).await.unwrap();
    let doc = client.membership();
    let (committed, _) = client
        .commit_change(&[Change::Join(member.clone())], doc.version())
        .await
        .unwrap();
    let change = committed.pending.as_ref().unwrap().since;
    let t = committed
        .transfers()
        .into_iter()
        .find(|t| t.to == member.id)
        .expect("node 4 receives a partition");
    let key_in = |inside: bool| {
        (0..)
            .map(|i| format!("key-{i}").into_bytes())
            .find(|k| (committed.partition_of("default", k) == t.partition) == inside)
            .unwrap()
    };
    let mut object = Object::new();
    object.event(ActorId(77), Value::bytes(b"v".to_vec(), 1));
    let page = |key: Vec<u8>, change: u64| Request::TransferPage {
        store: "default".into(),
        partition: t.partition,
        change,
        entries: vec![
            Entry {
                key: key_in(true),
                object: object.clone(),
            },
            Entry {
                key,
                object: object.clone(),
            },
        ],
        progress: None,
    };
    let transport = cluster.transport();
    let code = |answer: quire::shared::wire::Response| answer.result.unwrap_err().code;
    let outside = transport
        .call(&addr, &page(key_in(false), change), T)
        .await
        .unwrap();
    assert_eq!(code(outside), ErrorCode::Malformed);
    let stale = transport
        .call(&addr, &page(key_in(true), change - 1), T)
        .await
        .unwrap();
    assert_eq!(code(stale), ErrorCode::NotOwner);
    let owner = committed.member(t.from[0]).unwrap().addr.clone();
    let not_incoming = transport
        .call(&owner, &page(key_in(true), change), T)
        .await
        .unwrap();
    assert_eq!(code(not_incoming), ErrorCode::NotOwner);
    let get = Request::Get {
        store: "default".into(),
        key: key_in(true),
        hint: None,
    };
    let held = transport.call(&addr, &get, T).await.unwrap();
    assert!(
        matches!(held.result, Ok(Reply::Object(None))),
        "nothing of a refused page is stored: {held:?}"
    );
}

/// `drive_transfers` (what `quire cluster transfers --wait` runs): many
/// transfers at once, each of several pages (small frames), while writers
/// run; stopped part way and driven again, it resumes from the receivers'
/// marks and flips, and every acknowledged write reads back, with the new
/// node holding its partitions' keys itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_transfers_resume_and_flip_with_every_key_readable() {
    let limits = quire_node::config::Limits {
        frame_bytes_max: 32 << 10,
        value_bytes_max: 4 << 10,
        ..Default::default()
    };
    let mut cluster =
        TestCluster::from(common::builder(3).partitions(16).node_limits(limits), false).await;
    let client = cluster.client().await;
    let value = vec![b'v'; 512];
    let keys = put_keys(&client, 600, &value).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let mut load = writers(&client, 2, &stop, &acked);
    let (addr, member, committed) = join_a_fourth_node(&mut cluster, &client).await;
    let transfers = committed.transfers().len() as u64;

    // A first drive is stopped once some keys have moved.
    let first = client.clone();
    let run = tokio::spawn(async move {
        first
            .drive_transfers(
                (8, TransferPace::UNLIMITED),
                Duration::from_secs(60),
                |_| {},
            )
            .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = client.transfers().await;
        if now.transfers.iter().map(|t| t.keys).sum::<u64>() >= 100 || run.is_finished() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    let _ = run.await;

    // A second one finishes it, reporting progress as transfers end.
    let mut seen = Vec::new();
    let report = client
        .drive_transfers((8, TransferPace::UNLIMITED), Duration::from_secs(60), |r| {
            seen.push((r.pending + r.active + r.done, r.done))
        })
        .await;
    assert!(report.flipped, "{report:?}");
    assert!(report.unreachable.is_empty(), "{report:?}");
    assert!(report.bytes > 0, "{report:?}");
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|&(total, done)| total == transfers && done <= total),
        "{seen:?} of {transfers} transfers"
    );
    let after = client.membership();
    assert!(after.pending.is_none());
    assert_eq!(after.state_of(member.id), MemberState::Member);

    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    client.settle(Duration::from_secs(10)).await;
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    all_readable(&client, &acked).await;
    for key in &keys {
        let got = client.get("default", key).await.expect("read");
        assert!(got.siblings.iter().any(|s| s.value == value));
    }
    let held = held_where_home(&cluster, (&after, member.id, &addr), &keys).await;
    assert!(held > 100, "only {held} keys moved to the new node");
}

/// A paced drive (`quire cluster transfers --wait --max-rate`) moves no
/// faster than its rate, summed over its transfers in flight, and still
/// flips with every key readable. Unpaced, the same move takes a small
/// fraction of the time asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_drive_moves_no_faster_than_its_rate() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(16), false).await;
    let client = cluster.client().await;
    let value = vec![b'v'; 1000];
    let keys = put_keys(&client, 300, &value).await;
    let (addr, member, _) = join_a_fourth_node(&mut cluster, &client).await;
    let pace = TransferPace::per_second(200_000);
    let page = u64::from(pace.page_bytes().expect("paced"));
    let started = std::time::Instant::now();
    let report = client
        .drive_transfers((4, pace), Duration::from_secs(60), |_| {})
        .await;
    let took = started.elapsed();
    assert!(report.flipped, "{report:?}");
    assert!(
        report.bytes > 8 * page,
        "too little moved to show a pace: {report:?}"
    );
    // The schedule's first page goes at once; every byte after it waits
    // for its turn at the rate.
    let least = Duration::from_secs_f64((report.bytes - page) as f64 / 200_000.0);
    assert!(
        took >= least,
        "{} bytes moved in {took:?}, faster than 200 000 B/s allows ({least:?})",
        report.bytes
    );
    let after = client.membership();
    for key in &keys {
        let got = client.get("default", key).await.expect("read");
        assert!(got.siblings.iter().any(|s| s.value == value));
    }
    let held = held_where_home(&cluster, (&after, member.id, &addr), &keys).await;
    assert!(held > 100, "only {held} keys moved to the new node");
}

/// The transfer slots the node whose metrics endpoint is `metrics` holds
/// now (`quire_node_transfers_receiving`).
async fn slots_held(metrics: SocketAddr) -> u64 {
    scrape(metrics, "quire_node_transfers_receiving ").await
}

/// The metrics endpoint the node at `addr` names in its `Hello`.
async fn metrics_of(raw: &Transport, addr: &str) -> SocketAddr {
    let hello = Request::Hello {
        protocol_version: quire::shared::wire::PROTOCOL_VERSION,
        cluster_id: None,
    };
    match raw.call(addr, &hello, T).await {
        Ok(quire::shared::wire::Response {
            result: Ok(Reply::Hello {
                metrics: Some(m), ..
            }),
            ..
        }) => m,
        other => panic!("no metrics address from {addr}: {other:?}"),
    }
}

/// The value of the metric line starting `prefix` (name and labels) on
/// the node at `addr`, found through its `Hello`; 0 if it has no such
/// line yet (a counter not yet counted).
async fn metric(cluster: &TestCluster, addr: &str, prefix: &'static str) -> u64 {
    scrape(metrics_of(&cluster.transport(), addr).await, prefix).await
}

/// The value of the line starting `prefix` at the metrics endpoint
/// `metrics`; 0 if there is none.
async fn scrape(metrics: SocketAddr, prefix: &'static str) -> u64 {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(metrics).expect("metrics listener");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        assert!(body.contains("quire_node_"), "no metrics in {body}");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map_or(0, |v| v.trim().parse().expect("a number"))
    })
    .await
    .unwrap()
}

/// Two clients each drive 8 transfers at once into nodes whose
/// `transfers_in_max` is 1: no node ever holds more than one transfer
/// slot (its own gauge, read throughout), transfers that found the slot
/// held are reported waiting (not failed), and the change still flips
/// with every key on the new node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_receives_no_more_partitions_at_once_than_its_limit() {
    let limits = quire_node::config::Limits {
        // Pages of about a dozen keys: each transfer takes several.
        frame_bytes_max: 8 << 10,
        value_bytes_max: 1 << 10,
        transfers_in_max: 1,
        ..Default::default()
    };
    let mut cluster =
        TestCluster::from(common::builder(3).partitions(16).node_limits(limits), false).await;
    let client = cluster.client().await;
    let keys = put_keys(&client, 800, &[b'v'; 512]).await;
    let (addr, member, _) = join_a_fourth_node(&mut cluster, &client).await;

    let waited = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut drives = tokio::task::JoinSet::new();
    // The second driver starts once the first holds the new node's slot:
    // its transfers then find the slot held by another client, which is
    // what makes a transfer wait (one of its own driver's simply queues).
    // Started together, one driver could finish every transfer before
    // the other's first claim on a loaded machine.
    // Each node's metrics endpoint, asked once: the loops below read
    // them every few milliseconds.
    let raw = cluster.transport();
    let mut nodes = Vec::new();
    for m in &client.membership().members {
        nodes.push((m.addr.clone(), metrics_of(&raw, &m.addr).await));
    }
    let new_node = nodes.iter().find(|(a, _)| *a == addr).expect("node 4").1;
    for second in [false, true] {
        let (driver, waited) = (cluster.client().await, waited.clone());
        if second {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while slots_held(new_node).await == 0 {
                if let Some(done) = drives.try_join_next() {
                    panic!("the first drive ended before a slot was seen held: {done:?}");
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no slot was ever held"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        drives.spawn(async move {
            driver
                .drive_transfers((8, TransferPace::UNLIMITED), Duration::from_secs(60), |r| {
                    waited.fetch_add(r.waiting, Ordering::Relaxed);
                })
                .await
        });
    }
    // Reads that saw a slot held: the check below had something to check.
    let mut watched = 0;
    while !drives.is_empty() {
        for (node, metrics) in &nodes {
            let held = slots_held(*metrics).await;
            assert!(held <= 1, "{node} held {held} transfer slots at once");
            watched += u32::from(held == 1);
        }
        while let Some(done) = drives.try_join_next() {
            let report = done.expect("a drive");
            assert!(report.flipped, "{report:?}");
            assert!(report.unreachable.is_empty(), "{report:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        waited.load(Ordering::Relaxed) > 0,
        "no transfer ever waited for a slot: the limit was never met"
    );
    assert!(watched > 0, "no transfer slot was ever seen held");
    // This client only watched: a new one reads the flipped document.
    let after = cluster.client().await.membership();
    assert!(after.pending.is_none());
    assert_eq!(after.state_of(member.id), MemberState::Member);
    let held = held_where_home(&cluster, (&after, member.id, &addr), &keys).await;
    assert!(held > 50, "only {held} keys moved to the new node");
}

/// One client driving 8 transfers at once into a new node that takes 2
/// (the default): once refused, the client runs no more to a receiver at
/// once than it had under way, so the node refuses few claims. (Before
/// the client learned receivers' caps, a node refused 438 claims in a
/// join of 192 transfers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_learns_how_many_transfers_a_receiver_takes_at_once() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(64), false).await;
    let client = cluster.client().await;
    put_keys(&client, 100, b"v").await;
    let (addr, member, committed) = join_a_fourth_node(&mut cluster, &client).await;
    let incoming = committed
        .transfers()
        .iter()
        .filter(|t| t.to == member.id)
        .count() as u64;
    let report = client
        .drive_transfers(
            (8, TransferPace::UNLIMITED),
            Duration::from_secs(60),
            |_| {},
        )
        .await;
    assert!(report.flipped, "{report:?}");
    let refused = metric(
        &cluster,
        &addr,
        "quire_node_requests_total{kind=\"transfer-page\",outcome=\"Unavailable\"} ",
    )
    .await;
    println!("{incoming} transfers into the new node, {refused} claims refused");
    assert!(incoming >= 40, "only {incoming} transfers: too few to tell");
    assert!(
        refused <= 8,
        "the new node refused {refused} claims of {incoming} transfers"
    );
}

/// A receiver's mark of a transfer, once done, stays done for its change:
/// a slower client's page (a mark further back) is stored but does not
/// move the mark, so the transfer does not look unfinished again. A mark
/// of the same change that is not done still moves, back as well as on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_transfer_mark_is_not_moved_back_by_a_slower_client() {
    use quire::shared::wire::TransferProgress;
    let mut cluster = TestCluster::from(common::builder(3).partitions(4), false).await;
    let client = cluster.client().await;
    let (addr, member, committed) = join_a_fourth_node(&mut cluster, &client).await;
    let change = committed.pending.as_ref().unwrap().since;
    let t = committed
        .transfers()
        .into_iter()
        .find(|t| t.to == member.id)
        .expect("node 4 receives a partition");
    let mark = |after: &[u8], done: bool| TransferProgress {
        change,
        after: Some(after.to_vec()),
        done,
        ..TransferProgress::default()
    };
    let transport = cluster.transport();
    let record = |progress: TransferProgress| {
        let request = Request::TransferPage {
            store: "default".into(),
            partition: t.partition,
            change,
            entries: Vec::new(),
            progress: Some(progress),
        };
        let (transport, addr) = (transport.clone(), addr.clone());
        async move {
            match transport.call(&addr, &request, T).await.unwrap().result {
                Ok(Reply::Transfer(held)) => held,
                other => panic!("expected a mark, got {other:?}"),
            }
        }
    };
    assert_eq!(record(mark(b"m", false)).await, mark(b"m", false));
    // Not done: a slower client may move it back.
    assert_eq!(record(mark(b"c", false)).await, mark(b"c", false));
    assert_eq!(record(mark(b"z", true)).await, mark(b"z", true));
    // Done: it stays so.
    assert_eq!(record(mark(b"c", false)).await, mark(b"z", true));
}

/// While a change moves a key, a put is acknowledged only once `W` of the
/// key's home replicas to come hold it as well as `W` of today's, so a
/// read of the new owners right after the flip meets it. Here the leaving
/// node and one staying node would make `W` today; the other staying node
/// is cut off and the incoming one is slow, and the put waits for the
/// incoming copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_during_a_move_waits_for_w_among_the_owners_to_come() {
    use common::proxy::Fault;
    let cluster = TestCluster::from(common::builder(4).partitions(16), true).await;
    let client = cluster.client().await;
    let before = client.membership();
    for member in &before.members {
        client.node_stats(member).await.expect("a warm connection");
    }
    let leaving = cluster.cluster.nodes[3].node_id;
    let (doc, _) = client
        .commit_change(&[Change::Leave(leaving)], before.version())
        .await
        .expect("the leave commits");
    let key = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|k| {
            doc.preference_list("default", k, 3)
                .home()
                .contains(&leaving)
        })
        .expect("a key the leaving node holds");
    let incoming = doc.incoming(doc.partition_of("default", &key), 3);
    assert_eq!(incoming.len(), 1, "one node takes the leaving one's place");
    let staying: Vec<NodeId> = doc
        .preference_list("default", &key, 3)
        .home()
        .iter()
        .copied()
        .filter(|&id| id != leaving)
        .collect();
    let (cut, slow) = (staying[1], incoming[0]);
    cluster.proxies[cluster.k_of(cut) - 1].set(Fault::DropAll);
    cluster.proxies[cluster.k_of(slow) - 1].set(Fault::Delay(Duration::from_millis(150)));

    let put = client
        .put("default", &key, b"joint".to_vec(), &Context::empty())
        .await
        .expect("W now, and W to come through the slow node");
    assert!(
        put.stored_on.contains(&slow),
        "acknowledged before the incoming replica had it: {:?}",
        put.stored_on
    );
    let direct = cluster.node_addrs[cluster.k_of(slow) - 1].to_string();
    assert!(
        holds(&cluster.transport(), &direct, &key).await,
        "the incoming replica holds the write when it is acknowledged"
    );

    for proxy in &cluster.proxies {
        proxy.set(Fault::Pass);
    }
    let report = client
        .transfer_until_flipped(64, Duration::from_millis(20), Duration::from_secs(60))
        .await;
    assert!(report.flipped, "{report:?}");
    let read = client
        .get("default", &key)
        .await
        .expect("read after the flip");
    assert!(read.siblings.iter().any(|s| s.value == b"joint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_that_waits_for_a_down_replica_says_which_and_follows_once_it_is_back() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(16), false).await;
    let client = cluster.client().await;
    let keys = put_keys(&client, 60, b"cart").await;
    let (_, member, committed) = join_a_fourth_node(&mut cluster, &client).await;
    // A member that stays a home replica of the partitions it holds goes
    // down before the move: its closing exchanges cannot run.
    let down = committed
        .members
        .iter()
        .find(|m| m.id != member.id)
        .expect("an old member")
        .clone();
    let k = cluster.k_of(down.id);
    cluster.stop(k).await;
    // Short drives until one has tried the closing exchanges (a slow
    // machine may need more than one to finish the transfers first).
    let started = std::time::Instant::now();
    let report = loop {
        let report = client
            .drive_transfers((2, TransferPace::UNLIMITED), Duration::from_secs(3), |_| {})
            .await;
        assert!(!report.flipped, "flipped without {}: {report:?}", down.addr);
        if !report.flip_waits_for.is_empty() || started.elapsed() > Duration::from_secs(60) {
            break report;
        }
    };
    assert!(
        !report.flip_waits_for.is_empty()
            && report
                .flip_waits_for
                .iter()
                .all(|why| why.contains(&down.addr)),
        "the flip names the replica it waits for: {report:?}"
    );
    assert_eq!(
        client.membership().pending.as_ref().map(|p| p.since),
        committed.pending.as_ref().map(|p| p.since)
    );
    // Back with its data: the closing exchanges run and the change flips.
    cluster.restart(k).await;
    let report = client
        .drive_transfers(
            (2, TransferPace::UNLIMITED),
            Duration::from_secs(60),
            |_| {},
        )
        .await;
    assert!(report.flipped, "{report:?}");
    assert!(report.flip_waits_for.is_empty(), "{report:?}");
    assert!(client.membership().partitions_owned(member.id).0 > 0);
    let acked = keys.into_iter().map(|k| (k, b"cart".to_vec())).collect();
    all_readable(&client, &acked).await;
}
