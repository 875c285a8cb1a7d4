//! Membership cannot fork: admin changes are compare-and-set on the
//! document they were built on, equal-epoch documents settle on one
//! everywhere, the last epoch is refused, and a fresh node takes a first
//! document only for the cluster named in its config.

mod common;

use common::TestCluster;
use quire::shared::access::{access_of, set_grant, Access};
use quire::shared::wire::{ErrorCode, Reply, Request};
use quire::shared::{ClusterId, ConflictPolicy, Durability, Membership, StoreConfig};
use quire_client::transport::Transport;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn store(name: &str) -> StoreConfig {
    StoreConfig {
        name: name.into(),
        n: 3,
        r: 2,
        w: 2,
        durability: Durability::Sync,
        policy: ConflictPolicy::Siblings,
        limits: Default::default(),
    }
}

async fn held(t: &Transport, addr: &str) -> Membership {
    match t
        .call(addr, &Request::GetMembership, T)
        .await
        .unwrap()
        .result
    {
        Ok(Reply::Membership(Some(doc))) => doc,
        other => panic!("no document at {addr}: {other:?}"),
    }
}

/// The document every node of `cluster` holds, checked to be the same
/// on all of them.
async fn agreed(cluster: &TestCluster) -> Membership {
    let t = cluster.transport();
    let mut docs = Vec::new();
    for node in &cluster.nodes {
        docs.push(held(&t, &node.addr()).await);
    }
    assert!(
        docs.iter().all(|d| *d == docs[0]),
        "nodes disagree: epochs {:?}: {docs:#?}",
        docs.iter().map(|d| d.epoch).collect::<Vec<_>>()
    );
    docs.swap_remove(0)
}

/// Two documents of the next epoch, signed: the one with the smaller
/// digest first (the one gossip would lose), then the other.
fn rivals(cluster: &TestCluster, a: Membership, b: Membership) -> (Membership, Membership) {
    let sign = |mut d: Membership| {
        d.epoch = cluster.membership.epoch + 1;
        common::sign(&cluster.client_config.tls, d)
    };
    let (a, b) = (sign(a), sign(b));
    if a.digest() > b.digest() {
        (b, a)
    } else {
        (a, b)
    }
}

async fn offer(t: &Transport, addr: &str, doc: &Membership) -> Result<Reply, ErrorCode> {
    let push = Request::PutMembership {
        membership: Box::new(doc.clone()),
        base: None,
    };
    t.call(addr, &push, T)
        .await
        .unwrap()
        .result
        .map_err(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_store_creates_both_land_and_every_node_agrees() {
    let cluster = TestCluster::start(3).await;
    for round in 0..3 {
        let (a, b) = (cluster.client().await, cluster.client().await);
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        let (ra, rb) = tokio::join!(a.create_store(store(&x)), b.create_store(store(&y)));
        ra.expect("the first change lands");
        rb.expect("the second change lands");
        let doc = agreed(&cluster).await;
        for name in [&x, &y] {
            assert!(doc.store(name).is_some(), "{name} was lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_epoch_documents_settle_on_one_in_any_order() {
    let cluster = TestCluster::start(3).await;
    let t = cluster.transport();
    let mut a = cluster.membership.clone();
    a.epoch += 1;
    a.stores.push(store("a"));
    let mut b = cluster.membership.clone();
    b.epoch += 1;
    b.stores.push(store("b"));
    b.stores.sort_by(|p, q| p.name.cmp(&q.name));
    let tls = &cluster.client_config.tls;
    let (a, b) = (common::sign(tls, a), common::sign(tls, b));
    let (n1, n2) = (cluster.nodes[0].addr(), cluster.nodes[1].addr());
    // Each node sees the two documents in the opposite order.
    offer(&t, &n1, &a).await.unwrap();
    offer(&t, &n2, &b).await.unwrap();
    offer(&t, &n1, &b).await.unwrap();
    offer(&t, &n2, &a).await.unwrap();
    assert_eq!(held(&t, &n1).await, held(&t, &n2).await);
}

/// A change lands although the newest document is held by one node only
/// and the others hold an older one and a rival (the state two admins
/// racing can leave): the others are brought along before the
/// compare-and-set, which otherwise they refused on every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_lands_when_the_newest_document_is_held_by_one_node_only() {
    let cluster = TestCluster::start(3).await;
    let t = cluster.transport();
    let tls = &cluster.client_config.tls;
    let next = |base: &Membership, name: &str| {
        let mut d = base.clone();
        d.epoch += 1;
        d.stores.push(store(name));
        d.stores.sort_by(|p, q| p.name.cmp(&q.name));
        d
    };
    let a = common::sign(tls, next(&cluster.membership, "a"));
    let b = common::sign(tls, next(&cluster.membership, "b"));
    let a2 = common::sign(tls, next(&a, "a2"));
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr()).collect();
    // Node 1 holds the newest (epoch + 2), node 2 a rival of epoch + 1,
    // node 3 the first document.
    offer(&t, &addrs[0], &a).await.unwrap();
    offer(&t, &addrs[0], &a2).await.unwrap();
    offer(&t, &addrs[1], &b).await.unwrap();
    assert_eq!(held(&t, &addrs[2]).await, cluster.membership);

    // A client that knows only the first document (seeds: every node).
    let client = cluster.client().await;
    client
        .create_store(store("c"))
        .await
        .expect("the change lands");
    let doc = agreed(&cluster).await;
    for name in ["a", "a2", "c"] {
        assert!(doc.store(name).is_some(), "{name} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_epoch_is_refused() {
    let cluster = TestCluster::start(1).await;
    let t = cluster.transport();
    let mut frozen = cluster.membership.clone();
    frozen.epoch = u64::MAX;
    let frozen = common::sign(&cluster.client_config.tls, frozen);
    let addr = cluster.nodes[0].addr();
    assert_eq!(
        offer(&t, &addr, &frozen).await,
        Err(ErrorCode::InvalidMembership)
    );
    assert_eq!(held(&t, &addr).await, cluster.membership);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_takes_a_first_document_only_for_its_own_cluster() {
    let ours = common::builder(1).launch().await.expect("node starts");
    let mut other = common::builder(1).start().await.expect("another cluster");
    let foreign = other.membership().clone();
    let t = Transport::new(ours.layout().client_tls(), &common::test_timeouts()).unwrap();
    let addr = ours.nodes[0].addr();
    assert_eq!(
        offer(&t, &addr, &foreign).await,
        Err(ErrorCode::WrongCluster)
    );
    let get = Request::GetMembership;
    assert!(matches!(
        t.call(&addr, &get, T).await.unwrap().result,
        Ok(Reply::Membership(None))
    ));
    // Its own cluster's document is taken.
    let own_id: ClusterId = ours.layout().read().unwrap().unwrap().id().unwrap();
    let mut own = foreign.clone();
    own.cluster_id = own_id;
    own.members[0].id = ours.nodes[0].node_id;
    own.members[0].addr = addr.clone();
    own.owners = vec![ours.nodes[0].node_id; own.owners.len()];
    let own = common::sign(ours.layout().client_tls(), own);
    assert!(offer(&t, &addr, &own).await.is_ok());
    other.stop_all().await;
}

/// An admin's change that a majority took must survive a document of the
/// same epoch that only one node holds, even when that one's digest would
/// win a tie: the next change builds on what the majority holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_a_majority_took_survives_a_lone_document_of_the_same_epoch() {
    let cluster = TestCluster::start(3).await;
    let t = cluster.transport();
    let with = |name: &str| {
        let mut d = cluster.membership.clone();
        d.stores.push(store(name));
        d.stores.sort_by(|p, q| p.name.cmp(&q.name));
        d
    };
    // The lone document is the one whose digest is greater.
    let (taken, lone) = rivals(&cluster, with("a"), with("b"));
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr()).collect();
    offer(&t, &addrs[0], &taken).await.unwrap();
    offer(&t, &addrs[1], &taken).await.unwrap();
    offer(&t, &addrs[2], &lone).await.unwrap();
    let admin = cluster.client().await;
    admin
        .create_store(store("c"))
        .await
        .expect("the change lands");
    let doc = agreed(&cluster).await;
    let kept = &taken
        .stores
        .iter()
        .find(|s| s.name != "default")
        .unwrap()
        .name;
    assert!(
        doc.store(kept).is_some(),
        "the majority's store {kept} was lost"
    );
    assert!(doc.store("c").is_some());
}

/// The same split, met by a change that is already in the majority's
/// document: the admin must not stop at gossip, which the lone node
/// (holding the greater digest) would ignore for ever, but assert the
/// majority's document at the next epoch so that every node takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_already_in_the_majority_document_heals_a_lone_rival() {
    let cluster = TestCluster::start(3).await;
    let t = cluster.transport();
    let with = |name: &str| {
        let mut d = cluster.membership.clone();
        set_grant(&mut d.grants, name, "default", Some(Access::Write));
        d
    };
    let (taken, lone) = rivals(&cluster, with("a"), with("b"));
    let kept = if access_of(&taken.grants, "a", "default").is_some() {
        "a"
    } else {
        "b"
    };
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr()).collect();
    offer(&t, &addrs[0], &taken).await.unwrap();
    offer(&t, &addrs[1], &taken).await.unwrap();
    offer(&t, &addrs[2], &lone).await.unwrap();
    // The grant is in the majority's document already: nothing to add,
    // but the lone node must still come along.
    let admin = cluster.client().await;
    admin
        .set_grant(kept, "default", Some(Access::Write))
        .await
        .expect("the grant is in place");
    let doc = agreed(&cluster).await;
    assert_eq!(
        access_of(&doc.grants, kept, "default"),
        Some(Access::Write),
        "the grant to {kept} was lost"
    );
}

/// A new epoch shows in every answer at once: a client busy with many
/// gets when an admin changes the membership fetches the new document
/// about once, not once per answer (which queued its gets behind a
/// burst of fetches and signature checks at every commit and flip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_client_fetches_a_new_epoch_once_not_once_per_answer() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client().await;
    client
        .put("default", b"k", b"v".to_vec(), &quire::Context::empty())
        .await
        .unwrap();
    // The put's replication past W lands before the count is taken.
    client.settle(Duration::from_secs(5)).await;
    let before = client.stats().membership_exchanges;
    let admin = cluster.client().await;
    admin.create_store(store("new")).await.expect("lands");
    let epoch = agreed(&cluster).await.epoch;
    assert!(client.membership().epoch < epoch);
    let mut answers = 0;
    while client.membership().epoch < epoch {
        assert!(answers < 20_000, "the client never took the new epoch");
        let mut gets = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let client = client.clone();
            gets.spawn(async move { client.get("default", b"k").await.map(|_| ()) });
        }
        while let Some(read) = gets.join_next().await {
            read.unwrap().expect("a get");
            answers += 2;
        }
    }
    let exchanges = client.stats().membership_exchanges - before;
    assert!(
        (1..=4).contains(&exchanges),
        "{exchanges} exchanges for one new epoch seen in {answers}+ answers"
    );
}
