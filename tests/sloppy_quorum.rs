//! Always writeable, and as readable: with two of a key's three home
//! replicas down, a put succeeds on stand-ins (hinted), a get succeeds
//! (warm, and cold from a fresh `quire` process per call), and one
//! maintenance pass after the nodes return puts the value home and empties
//! the hints.

mod common;

use common::{local_value, TestCluster};
use quire::shared::wire::{Reply, Request};
use quire::Context;
use quire_client::transport::Transport;
use std::path::Path;
use std::time::{Duration, Instant};

const STORE: &str = "default";
const T: Duration = Duration::from_secs(5);

async fn hints_held(t: &Transport, addr: &str, target: quire::shared::NodeId) -> usize {
    let req = Request::Hints {
        target,
        after: None,
        limit: 100,
    };
    match t.call(addr, &req, T).await.unwrap().result {
        Ok(Reply::Hints { hints, .. }) => hints.len(),
        other => panic!("hints: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_home_replicas_down_writes_go_to_stand_ins_and_come_home() {
    let mut cluster = TestCluster::start(5).await;
    let client = cluster.client().await;
    let key = b"cart-42";
    let list = client.locate(STORE, key).unwrap();
    let home = list.home().to_vec();
    let extended = list.extended().to_vec();
    assert_eq!((home.len(), extended.len()), (3, 2));

    for &id in &home[1..] {
        cluster.node_by_id(id).stop().await;
    }

    // The client does not know yet that they are down: the first put finds
    // out and hands their copies to stand-ins.
    let started = Instant::now();
    let put = client
        .put(STORE, key, b"apple".to_vec(), &Context::empty())
        .await
        .expect("sloppy quorum: the put succeeds");
    assert!(put.acknowledged >= 2);
    eprintln!("first put with two homes down: {:?}", started.elapsed());
    let mut expected = home[1..].to_vec();
    expected.sort();
    // Both failed calls end within a moment of each other; the put may
    // return between them.
    let deadline = Instant::now() + Duration::from_secs(3);
    while client.down_nodes() != expected {
        assert!(Instant::now() < deadline, "down: {:?}", client.down_nodes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Later requests skip them at once.
    let started = Instant::now();
    client
        .put(STORE, b"cart-43", b"pear".to_vec(), &Context::empty())
        .await
        .unwrap();
    let read = client.get(STORE, key).await.expect("R=2 with stand-ins");
    assert_eq!(read.values(), vec![b"apple"]);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "requests did not skip the down nodes: {:?}",
        started.elapsed()
    );

    // The stand-ins hold the copies as hints, outside their data.
    let t = cluster.transport();
    let mut hinted = 0;
    for &s in &extended {
        let addr = cluster.node_by_id(s).addr();
        for &h in &home[1..] {
            hinted += hints_held(&t, &addr, h).await;
        }
        assert_eq!(
            local_value(&t, &addr, STORE, key).await,
            None,
            "hints stay out of data"
        );
    }
    assert!(hinted >= 2, "one hint per down home replica, got {hinted}");

    // The home replicas come back; one pass delivers.
    for &id in &home[1..] {
        cluster.node_by_id(id).start().await.expect("node restarts");
    }
    let report = client.maintain_once().await;
    assert!(report.hints_delivered >= 2, "{report:?}");
    assert_eq!(report.hints_pending, 0, "{report:?}");
    for &id in &home {
        let addr = cluster.node_by_id(id).addr();
        assert_eq!(
            local_value(&t, &addr, STORE, key).await,
            Some(b"apple".to_vec()),
            "home replica {id} holds the value"
        );
    }
    for &s in &extended {
        let addr = cluster.node_by_id(s).addr();
        for &h in &home {
            assert_eq!(hints_held(&t, &addr, h).await, 0, "hints dropped");
        }
    }

    // The client notices the nodes are back (probes) and uses them again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.down_nodes().is_empty() {
        assert!(Instant::now() < deadline, "nodes never marked up again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let targets = client.targets(STORE, key).unwrap();
    assert!(targets
        .iter()
        .all(|t| t.hint.is_none() && home.contains(&t.node)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_home_replica_down_a_stand_in_coordinates() {
    let mut cluster = TestCluster::start(5).await;
    // Reads ask every home replica, so the one no hint reached is read,
    // and repaired, even while the two that got hints agree.
    let client = cluster.client_reading_all().await;
    let key = b"lonely";
    let list = client.locate(STORE, key).unwrap();
    let home = list.home().to_vec();
    // Two reads fail over... stop all three home replicas.
    for &id in &home {
        cluster.node_by_id(id).stop().await;
    }
    // W=2 needs two stores: only two stand-ins exist, both get hints.
    let put = client
        .put(STORE, key, b"v1".to_vec(), &Context::empty())
        .await
        .expect("a stand-in coordinates");
    assert_eq!(put.acknowledged, 2);
    // A second write builds on the first (the stand-in merges its hints).
    client
        .put(STORE, key, b"v2".to_vec(), &put.context)
        .await
        .unwrap();

    for &id in &home {
        cluster.node_by_id(id).start().await.expect("node restarts");
    }
    let report = client.maintain_once().await;
    // Two stand-ins exist, so two home replicas got hints; the third gets
    // the value from read repair.
    assert!(report.hints_delivered >= 2, "{report:?}");
    assert_eq!(report.hints_pending, 0, "{report:?}");
    // Until this client sees the home replicas up again it reads from the
    // stand-ins, which dropped their hints: the window Dynamo's sloppy
    // quorum has too. The maintenance pass told it they are back.
    assert!(client.down_nodes().is_empty(), "{:?}", client.down_nodes());
    // Only the newest value: the second write replaced the first.
    let read = client.get(STORE, key).await.unwrap();
    assert_eq!(read.values(), vec![b"v2"]);
    let t = cluster.transport();
    let deadline = Instant::now() + Duration::from_secs(5);
    for &id in &home {
        let addr = cluster.node_by_id(id).addr();
        while local_value(&t, &addr, STORE, key).await != Some(b"v2".to_vec()) {
            assert!(Instant::now() < deadline, "{id} never got v2");
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = client.get(STORE, key).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_home_replicas_killed_with_sigkill_then_restarted() {
    let mut cluster = common::TestCluster::processes(5, false).await;
    let client = quire::Client::connect(cluster.client_config.clone())
        .await
        .unwrap();
    let key = b"cart-99";
    let home = client.locate(STORE, key).unwrap().home().to_vec();
    let killed: Vec<usize> = home[1..].iter().map(|&id| cluster.k_of(id)).collect();
    for &k in &killed {
        cluster.kill(k).await;
    }
    client
        .put(STORE, key, b"kiwi".to_vec(), &Context::empty())
        .await
        .expect("hinted put with two home replicas killed");
    let read = client.get(STORE, key).await.expect("get with R=2");
    assert_eq!(read.values(), vec![b"kiwi"]);

    for &k in &killed {
        cluster.restart(k).await;
    }
    // The client's connections to the killed processes are dead; its
    // probes reconnect and mark the restarted nodes up.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client.down_nodes().is_empty() {
        assert!(Instant::now() < deadline, "down: {:?}", client.down_nodes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = client.maintain_once().await;
    assert!(report.hints_delivered >= 2, "{report:?}");
    assert_eq!(report.hints_pending, 0, "{report:?}");
    let t = Transport::new(&cluster.client_config.tls, &Default::default()).unwrap();
    for &id in &home {
        let addr = cluster.node_addrs[cluster.k_of(id) - 1].to_string();
        assert_eq!(
            local_value(&t, &addr, STORE, key).await,
            Some(b"kiwi".to_vec())
        );
    }
    for m in &cluster.membership.members {
        for &h in &home {
            assert_eq!(hints_held(&t, &m.addr, h).await, 0, "hints are gone");
        }
    }
}

/// Runs `quire --config CONFIG ARGS --json` as its own process (a cold
/// client with no failure history) and returns its JSON, or its stderr.
async fn quire_cold(config: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let run = tokio::process::Command::new(common::QUIRE)
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(args)
        .env_remove("QUIRE_CONFIG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .map_err(|_| format!("quire {args:?} did not finish in 30 s"))?
        .map_err(|e| format!("quire {args:?} did not run: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("quire {args:?}: no JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_cli_reads_what_it_wrote_with_two_home_replicas_killed() {
    let mut cluster = TestCluster::processes(5, false).await;
    let config = cluster.layout().client_config();
    let key = "cart-cold";
    let home = cluster
        .client()
        .await
        .locate(STORE, key.as_bytes())
        .unwrap()
        .home()
        .to_vec();
    for &id in &home[1..] {
        let k = cluster.k_of(id);
        cluster.kill(k).await;
    }

    // Each call a new process: none knows the two homes are gone.
    let put = quire_cold(&config, &["put", STORE, key, "plum"]).await;
    assert_eq!(put.expect("cold put")["ok"], true);
    for attempt in ["first", "second"] {
        let read = quire_cold(&config, &["get", STORE, key])
            .await
            .unwrap_or_else(|e| panic!("{attempt} cold get failed: {e}"));
        assert_eq!(read["values"], serde_json::json!(["plum"]), "{attempt}");
    }
}
