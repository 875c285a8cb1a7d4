//! Jepsen-style: concurrent clients add unique elements to shared sets in
//! siblings stores (union resolver) and write a last-write-wins register in
//! LWW stores, at R = 1, R = 2 and R = N, while a nemesis
//! ([`common::nemesis`]) kills, pauses and partitions node processes and
//! the maintenance loop runs anti-entropy, hint delivery and transfers.
//! Then heal, converge, read every key cold and check
//! ([`common::checker`]): no acknowledged add lost, and every LWW loss
//! classified, with none that the store's rules forbid.
//!
//! The default run lasts 20 s. The long mode, run on purpose, adds every
//! fault kind (one-way partitions, loss, delay, clock skew of nodes and
//! clients) and a join and a leave during the faults:
//!
//! ```sh
//! QUIRE_FAULT_SECS=600 cargo test --release --test jepsen -- --nocapture
//! ```
//!
//! (`QUIRE_FAULT_SEED` picks another schedule; `QUIRE_FAULT_MEMBERSHIP=0`
//! leaves out the join and the leave.)

mod common;

use common::checker::{check_lww, check_sets, FinalValue, LwwReport, RegisterWrite};
use common::nemesis::{Kind, Nemesis};
use common::proxy::FaultProxy;
use common::workload::{key, run_client, union_of, History, KEYS};
use common::TestCluster;
use quire::shared::{Change, ConflictPolicy, Durability, StoreConfig};
use quire::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 5;
const CLIENTS: usize = 4;
/// The default run: the one the suite runs.
const DEFAULT_SECS: u64 = 20;

fn store(name: &str, r: u8, policy: ConflictPolicy) -> StoreConfig {
    StoreConfig {
        name: name.into(),
        n: 3,
        r,
        w: 2,
        durability: Durability::Sync,
        policy,
        limits: Default::default(),
    }
}

/// The stores under test: each policy at R = 1, 2 and N (= 3).
fn stores() -> Vec<StoreConfig> {
    let mut all = Vec::new();
    for (prefix, policy) in [
        ("sets", ConflictPolicy::Siblings),
        ("lww", ConflictPolicy::Lww),
    ] {
        for r in 1..=3 {
            all.push(store(&format!("{prefix}-r{r}"), r, policy));
        }
    }
    all
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// Joins the node behind `proxy_addr` (started, not a member) during the
/// faults, lets the
/// change move, then makes it leave again; the maintenance loop moves the
/// data meanwhile. Returns what happened, for the report.
async fn join_then_leave(client: Client, proxy_addr: String, run: Duration) -> Vec<String> {
    let mut log = Vec::new();
    let t0 = Instant::now();
    tokio::time::sleep(run / 6).await;
    let member = match client
        .member_at(&proxy_addr, "local", 1, Duration::from_secs(30))
        .await
    {
        Ok(m) => m,
        Err(e) => return vec![format!("join: no hello from the new node: {e}")],
    };
    // Each change must be committed by the first time and flipped by the
    // second (fractions of the run).
    for (what, change, commit_by, flip_by) in [
        ("join", Change::Join(member.clone()), 2, 3),
        ("leave", Change::Leave(member.id), 4, 5),
    ] {
        // A commit fails when a node is down or another change is pending:
        // try again while the run lasts.
        let committed = loop {
            let doc = client.membership();
            match client
                .commit_change(std::slice::from_ref(&change), doc.version())
                .await
            {
                Ok((d, _)) => break Some(d.epoch),
                Err(e) if t0.elapsed() < run * commit_by / 5 => {
                    let why = format!("{what} commit retried: {e}");
                    if !log.last().is_some_and(|l: &String| l.ends_with(&why)) {
                        log.push(format!("{:.1}s {why}", t0.elapsed().as_secs_f64()));
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    log.push(format!("{what} not committed: {e}"));
                    break None;
                }
            }
        };
        let Some(epoch) = committed else { break };
        log.push(format!(
            "{:.1}s {what} committed (epoch {epoch})",
            t0.elapsed().as_secs_f64()
        ));
        // Wait for the maintenance loop to flip it.
        while client.membership().pending.is_some() && t0.elapsed() < run * flip_by / 5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        log.push(format!(
            "{:.1}s {what} {}",
            t0.elapsed().as_secs_f64(),
            if client.membership().pending.is_none() {
                "flipped"
            } else {
                "still moving"
            }
        ));
    }
    log
}

/// After the faults: hints delivered, transfers flipped, and anti-entropy
/// passes until one repairs nothing, so that an R = 1 read sees every
/// acknowledged write.
async fn converge(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let moved = client
            .transfer_until_flipped(64, Duration::from_millis(20), Duration::from_secs(60))
            .await;
        let hints = client.maintain_once().await;
        let repair = client.repair_once(None, |_, _| {}).await;
        let quiet = client.membership().pending.is_none()
            && hints.hints_pending == 0
            && hints.hints_delivered == 0
            && hints.unreachable.is_empty()
            && repair.keys_repaired == 0
            && repair.unreachable.is_empty();
        if quiet {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never converged: {hints:?} {repair:?} {moved:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every node's own copy of `store`/`key` (its entries: actor, counter,
/// values with their stamps), for the report of a violation.
async fn dump_key(cluster: &TestCluster, store: &str, key: &str) -> String {
    let t = cluster.transport();
    let get = quire::shared::wire::Request::Get {
        store: store.into(),
        key: key.as_bytes().to_vec(),
        hint: None,
    };
    let mut out = String::new();
    for node in &cluster.nodes {
        let answer = t.call(&node.addr(), &get, Duration::from_secs(5)).await;
        let copy = match answer.map(|a| a.result) {
            Ok(Ok(quire::shared::wire::Reply::Object(Some(o)))) => o
                .entries()
                .iter()
                .map(|e| {
                    let values: Vec<String> = e
                        .values
                        .iter()
                        .map(|v| {
                            let data = v.data.as_deref().unwrap_or(b"<tombstone>");
                            format!("{}@{}", String::from_utf8_lossy(data), v.timestamp_ms)
                        })
                        .collect();
                    format!("{:?}:{}{values:?}", e.actor, e.counter)
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => format!("{other:?}"),
        };
        out.push_str(&format!("\n  node {} ({:?}): {copy}", node.k, node.node_id));
        for home in &cluster.nodes {
            let hinted = quire::shared::wire::Request::Get {
                store: store.into(),
                key: key.as_bytes().to_vec(),
                hint: Some(home.node_id),
            };
            if let Ok(a) = t.call(&node.addr(), &hinted, Duration::from_secs(5)).await {
                if let Ok(quire::shared::wire::Reply::Object(Some(o))) = a.result {
                    out.push_str(&format!("\n    hint for node {}: {o:?}", home.k));
                }
            }
        }
        let log = std::fs::read_to_string(node.log()).unwrap_or_default();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        out.push_str(&format!("\n    log: {} warnings", warnings.len()));
        for w in warnings.iter().rev().take(3) {
            out.push_str(&format!(
                "\n    {}",
                w.chars().take(300).collect::<String>()
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_adds_survive_kills_and_partitions() {
    let long = env_u64("QUIRE_FAULT_SECS");
    let run = Duration::from_secs(long.unwrap_or(DEFAULT_SECS));
    let seed = env_u64("QUIRE_FAULT_SEED").unwrap_or(0x0e3e_5151);
    let stores = stores();
    let builder = common::builder(NODES)
        .processes(common::QUIRE)
        .partitions(64)
        .stores(stores.clone());
    let mut cluster = TestCluster::from(builder, true).await;
    // The long mode's joiner: started now, a member only once it joins.
    let mut joiner: Option<(FaultProxy, String)> = None;
    if long.is_some() && env_u64("QUIRE_FAULT_MEMBERSHIP") != Some(0) {
        let addr = cluster.add_node().await.expect("node 6 starts").listen;
        let proxy = FaultProxy::start(addr).await;
        let at = proxy.addr.to_string();
        joiner = Some((proxy, at));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let max_siblings = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let names: Vec<(String, ConflictPolicy)> =
        stores.iter().map(|s| (s.name.clone(), s.policy)).collect();
    let mut workers = Vec::new();
    for c in 0..CLIENTS {
        let client = cluster.client().await;
        let args = (names.clone(), stop.clone(), max_siblings.clone());
        workers.push(tokio::spawn(run_client(
            c, client, args.0, args.1, args.2, started,
        )));
    }
    // Anti-entropy, hints and transfers during the faults.
    let maintainer = cluster.client().await;
    let maintenance = maintainer.spawn_maintenance(Duration::from_millis(100));
    let membership = joiner.as_ref().map(|(_, at)| {
        let client = maintainer.clone();
        tokio::spawn(join_then_leave(client, at.clone(), run))
    });

    let kinds: Vec<Kind> = if long.is_some() {
        Kind::ALL.to_vec()
    } else {
        vec![Kind::Kill, Kind::Partition, Kind::Pause, Kind::ClientSkew]
    };
    let node_skew_ms_max = if long.is_some() { 30_000 } else { 0 };
    let mut nemesis = Nemesis::new(seed, &kinds, NODES, 2, node_skew_ms_max);
    while started.elapsed() < run {
        tokio::time::sleep(nemesis.pause_before_step()).await;
        nemesis.step(&mut cluster).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = History::default();
    for w in workers {
        w.await.unwrap().merge_into(&mut all);
    }
    nemesis.heal_all(&mut cluster).await;
    let membership_log = match membership {
        Some(task) => task.await.unwrap(),
        None => Vec::new(),
    };
    maintenance.abort();
    let faults_secs = started.elapsed().as_secs_f64();
    converge(&maintainer).await;

    // Read every key of every store with a cold client, at the store's R.
    let checker = cluster.client().await;
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut finals: BTreeMap<String, BTreeMap<String, Option<FinalValue>>> = BTreeMap::new();
    for s in &stores {
        for i in 0..KEYS {
            let read = checker.get(&s.name, key(i).as_bytes()).await.unwrap();
            max_siblings.fetch_max(read.siblings.len(), Ordering::Relaxed);
            let slot = format!("{}/{}", s.name, key(i));
            match s.policy {
                ConflictPolicy::Siblings => {
                    sets.insert(slot, union_of(&read.siblings));
                }
                ConflictPolicy::Lww => {
                    let value = read.siblings.first().map(|v| FinalValue {
                        value: String::from_utf8_lossy(&v.value).into_owned(),
                        stamp_ms: v.timestamp_ms,
                    });
                    finals
                        .entry(s.name.clone())
                        .or_default()
                        .insert(key(i), value);
                }
            }
        }
    }
    let slot = |(s, k, e): &(String, String, String)| (format!("{s}/{k}"), e.clone());
    let acked: Vec<_> = all.adds_acked.iter().map(slot).collect();
    let unacked: Vec<_> = all.adds_unacked.iter().map(slot).collect();
    let set_report = check_sets(&acked, &unacked, &sets);
    let mut lww_reports: Vec<(String, LwwReport)> = Vec::new();
    for (store, keys) in &finals {
        let writes: Vec<RegisterWrite> = all
            .writes
            .iter()
            .filter(|(s, _)| s == store)
            .map(|(_, w)| w.clone())
            .collect();
        lww_reports.push((store.clone(), check_lww(&writes, keys, nemesis.node_skewed)));
    }

    let writes_acked = all.writes.iter().filter(|(_, w)| w.acked.is_some()).count();
    let mut report = format!(
        "seed {seed:#x}, faults for {faults_secs:.0} s; faults injected: {}\n\
         nemesis: {}\nmembership: {}\n\
         operations {} ({} register reads failed); set adds acknowledged {}, lost {}, \
         unacknowledged {} ({} present); register writes {}, acknowledged {}; max siblings {}",
        nemesis.summary(),
        nemesis.log.join(", "),
        membership_log.join(", "),
        all.ops(),
        all.reads_failed,
        set_report.acked,
        set_report.lost.len(),
        set_report.unacked,
        set_report.unacked_present,
        all.writes.len(),
        writes_acked,
        max_siblings.load(Ordering::Relaxed),
    );
    for (store, r) in &lww_reports {
        report.push_str(&format!("\n{store}: {r}"));
        for l in r.lost_to_older.iter().take(5) {
            report.push_str(&format!("\n  lost to an older write: {l}"));
        }
        for l in &r.replayed {
            report.push_str(&format!("\n  back through a second copy: {l}"));
        }
    }
    // Evidence for a violation: every node's copy, then the same read once
    // old owners have handed their copies off.
    let mut flagged: Vec<(String, String)> = set_report
        .lost
        .iter()
        .filter_map(|(slot, _)| slot.split_once('/'))
        .map(|(s, k)| (s.to_string(), k.to_string()))
        .collect();
    for (store, r) in &lww_reports {
        for v in &r.violations {
            if let Some((k, _)) = v.split_once(':') {
                flagged.push((store.clone(), k.to_string()));
            }
        }
    }
    flagged.dedup();
    if !flagged.is_empty() {
        let doc = checker.membership();
        let states: Vec<_> = doc
            .members
            .iter()
            .map(|m| (m.id, doc.state_of(m.id)))
            .collect();
        report.push_str(&format!("\nmembership now: epoch {} {states:?}", doc.epoch));
        for (store, k) in &flagged {
            report.push_str(&format!(
                "\n{store}/{k}:{}",
                dump_key(&cluster, store, k).await
            ));
        }
        let dropped = checker.hand_off_and_drop().await;
        report.push_str(&format!("\nafter hand-off {dropped:?}"));
        for (store, k) in &flagged {
            let read = checker.get(store, k.as_bytes()).await;
            let values: Vec<String> = read
                .map(|r| {
                    r.siblings
                        .iter()
                        .map(|v| String::from_utf8_lossy(&v.value).chars().take(80).collect())
                        .collect()
                })
                .unwrap_or_default();
            report.push_str(&format!("\n{store}/{k} reads {values:?}"));
        }
    }
    eprintln!("{report}");
    assert!(
        set_report.acked >= 100,
        "too little work got done: {report}"
    );
    assert!(
        set_report.lost.is_empty(),
        "lost acknowledged adds {:?}\n{report}",
        set_report.lost
    );
    for (store, r) in &lww_reports {
        assert!(
            r.violations.is_empty(),
            "{store}: {:?}\n{report}",
            r.violations
        );
    }
}

/// The register checker on a hand-made history: what it classifies, and
/// what it flags.
#[test]
fn the_lww_checker_classifies_and_flags() {
    // Each write's acknowledged copy is stamped at its acknowledgement.
    let w = |value: &str, read: Option<&str>, invoked: u64, acked: Option<u64>| RegisterWrite {
        key: "k".into(),
        value: value.into(),
        read: read.map(str::to_string),
        invoked: Duration::from_millis(invoked),
        acked: acked.map(Duration::from_millis),
        stored_on: String::new(),
        stamp_ms: acked,
    };
    let writes = [
        w("a", None, 0, Some(10)),
        w("b", Some("a"), 20, Some(30)),
        w("c", None, 25, Some(35)),
        w("d", None, 200, Some(210)),
    ];
    let stamp_of = |v: &str| {
        writes
            .iter()
            .find(|w| w.value == v)
            .and_then(|w| w.stamp_ms)
            .unwrap_or(0)
    };
    let copy = |v: &str, stamp_ms: u64| {
        BTreeMap::from([(
            "k".to_string(),
            Some(FinalValue {
                value: v.to_string(),
                stamp_ms,
            }),
        )])
    };
    let finals = |v: &str| copy(v, stamp_of(v));
    // d began well after c was acknowledged, yet c won: only node clock
    // skew may do that.
    let report = check_lww(&writes, &finals("c"), false);
    assert_eq!(report.read_over, 1);
    assert_eq!(report.concurrent, 1);
    assert_eq!(report.lost_to_older.len(), 1);
    assert_eq!(report.violations.len(), 1);
    assert!(check_lww(&writes, &finals("c"), true).violations.is_empty());
    // a was read and replaced by an acknowledged write: it may not win.
    assert_eq!(check_lww(&writes, &finals("a"), true).violations.len(), 1);
    // ... unless what won is a second copy of a's put, stamped by another
    // coordinator's clock, and node clocks disagree.
    let second = check_lww(&writes, &copy("a", 9_000), true);
    assert!(second.violations.is_empty(), "{second:?}");
    assert_eq!(second.replayed.len(), 1);
    let unskewed = check_lww(&writes, &copy("a", 9_000), false);
    assert!(
        unskewed
            .violations
            .iter()
            .any(|v| v.contains("was read and replaced")),
        "{unskewed:?}"
    );
    // A value nobody wrote.
    assert_eq!(check_lww(&writes, &finals("z"), true).violations.len(), 1);
    let ok = check_lww(&writes, &finals("d"), false);
    assert!(ok.violations.is_empty(), "{ok:?}");
    assert_eq!((ok.read_over, ok.superseded, ok.survived), (1, 2, 1));
}
