//! Membership change with a member down: driving the transfers does not
//! wait on the dead member at every step.

mod common;

use common::TestCluster;
use quire::shared::{Change, MemberState};
use quire::Context;
use std::time::{Duration, Instant};

/// A dead node is replaced and its partitions are copied one page per
/// step (32 transfers, so at least 32 steps). Between steps the client
/// refreshes its membership document; a member it knows is down must not
/// be asked, or every step waits a connect timeout (1 s here) on it and
/// the change takes 32 s or more instead of a few (the commit and the
/// flip still wait on it once or twice each: they tell every member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_steps_do_not_wait_on_a_dead_member() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(32), false).await;
    let client = cluster.client().await;
    for i in 0..50 {
        let key = format!("key-{i}").into_bytes();
        client
            .put("default", &key, key.clone(), &Context::empty())
            .await
            .unwrap();
    }
    client.settle(Duration::from_secs(10)).await;
    let dead = cluster.membership.members[2].clone();
    let k = cluster.k_of(dead.id);
    cluster.kill(k).await;
    let addr = cluster.add_node().await.expect("node 4 starts").addr();
    let member = client
        .member_at(&addr, "local", 1, Duration::from_secs(5))
        .await
        .unwrap();
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
        .expect("commit with one member down");
    let transfers = committed.transfers().len();
    assert!(transfers >= 32, "{transfers} transfers");

    let started = Instant::now();
    let report = client
        .transfer_until_flipped(1, Duration::ZERO, Duration::from_secs(60))
        .await;
    let took = started.elapsed();
    eprintln!("{transfers} one-page steps with a member down: {took:?}");
    assert!(report.flipped, "{report:?}");
    assert_eq!(client.membership().state_of(dead.id), MemberState::Idle);
    assert!(
        took < Duration::from_secs(15),
        "{transfers} one-page steps took {took:?}: each waited on the dead member"
    );
    for i in 0..50 {
        let key = format!("key-{i}").into_bytes();
        let got = client.get("default", &key).await.expect("read");
        assert!(got.siblings.iter().any(|s| s.value == key), "key-{i} lost");
    }
}

/// A change whose new node dies before its data has moved is aborted from
/// the CLI (a cold `quire cluster abort`): the owners stay as they were,
/// the dead joiner is idle, every key written before and during the change
/// reads back, and the cluster can change again (the joiner is removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_new_node_died_is_aborted_and_nothing_is_lost() {
    let mut cluster = TestCluster::from(common::builder(3).partitions(32), false).await;
    let client = cluster.client().await;
    async fn put(client: &quire::Client, i: usize) {
        let key = format!("key-{i}").into_bytes();
        client
            .put("default", &key, key.clone(), &Context::empty())
            .await
            .unwrap();
    }
    for i in 0..30 {
        put(&client, i).await;
    }
    let before = client.membership();
    let node = cluster.add_node().await.expect("node 4 starts");
    let (addr, joiner) = (node.addr(), node.k);
    let member = client
        .member_at(&addr, "local", 1, Duration::from_secs(5))
        .await
        .unwrap();
    client
        .commit_change(&[Change::Join(member.clone())], before.version())
        .await
        .expect("commit the join");
    // Writes during the change also go to the joiner, then it dies.
    for i in 30..40 {
        put(&client, i).await;
    }
    cluster.kill(joiner).await;
    let answer = common::quire_json(&cluster.layout().client_config(), &["cluster", "abort"]);
    assert_eq!(answer["ok"], true, "{answer}");
    // A client that starts now learns the aborting document.
    let client = cluster.client().await;
    let after = client.membership();
    assert!(after.pending.is_none());
    assert_eq!(after.owners, before.owners, "nothing moved");
    assert_eq!(after.state_of(member.id), MemberState::Idle);
    for i in 40..50 {
        put(&client, i).await;
    }
    for i in 0..50 {
        let key = format!("key-{i}").into_bytes();
        let got = client.get("default", &key).await.expect("read");
        assert!(got.siblings.iter().any(|s| s.value == key), "key-{i} lost");
    }
    // A second abort finds nothing to abort; the dead joiner can go.
    let again = std::process::Command::new(common::QUIRE)
        .arg("--config")
        .arg(cluster.layout().client_config())
        .args(["cluster", "abort"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to abort"));
    let (removed, _) = client
        .commit_change(&[Change::Remove(member.id)], after.version())
        .await
        .expect("remove the dead joiner");
    assert!(removed.member(member.id).is_none());
}
