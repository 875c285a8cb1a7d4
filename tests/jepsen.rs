//! Jepsen-style: concurrent clients add unique elements to shared carts
//! (union resolver) while a nemesis kills and restarts node processes and
//! partitions nodes from clients. Then heal, deliver hints, read: every
//! acknowledged add must be there.

mod common;

use common::proxy::Fault;
use common::TestCluster;
use quire::{Client, Sibling};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STORE: &str = "default";
const NODES: usize = 5;
const CLIENTS: usize = 4;
const CARTS: usize = 4;
const NEMESIS_RUN: Duration = Duration::from_secs(20);

fn decode(bytes: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn encode(set: &BTreeSet<String>) -> Vec<u8> {
    set.iter()
        .map(|e| format!("{e}\n"))
        .collect::<String>()
        .into_bytes()
}

fn union_of(siblings: &[Sibling]) -> BTreeSet<String> {
    siblings.iter().flat_map(|s| decode(&s.value)).collect()
}

#[derive(Default)]
struct Log {
    acked: Vec<(usize, String)>,
    unacked: Vec<(usize, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_adds_survive_kills_and_partitions() {
    let mut cluster = TestCluster::processes(NODES, true).await;
    let stop = Arc::new(AtomicBool::new(false));
    let max_siblings = Arc::new(AtomicUsize::new(1));

    let mut workers = Vec::new();
    for c in 0..CLIENTS {
        let client = Client::connect(cluster.client_config.clone())
            .await
            .unwrap();
        let seen = max_siblings.clone();
        let store = client
            .store(STORE)
            .unwrap()
            .with_resolver(move |s: Vec<Sibling>| {
                seen.fetch_max(s.len(), Ordering::Relaxed);
                vec![Sibling {
                    value: encode(&union_of(&s)),
                    timestamp_ms: s.iter().map(|s| s.timestamp_ms).max().unwrap_or(0),
                }]
            });
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(c as u64);
            let mut log = Log::default();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let cart = rng.gen_range(0..CARTS);
                let element = format!("c{c}-{i}");
                i += 1;
                let result = store
                    .update(format!("cart-{cart}").as_bytes(), |current| {
                        let mut set = union_of(current);
                        set.insert(element.clone());
                        encode(&set)
                    })
                    .await;
                match result {
                    Ok(_) => log.acked.push((cart, element)),
                    Err(_) => log.unacked.push((cart, element)),
                }
            }
            client.close();
            log
        }));
    }

    // The nemesis: at most two nodes faulty at a time.
    let mut rng = StdRng::seed_from_u64(0x0e3e_5151);
    let mut killed: Vec<usize> = Vec::new();
    let mut partitioned: Vec<usize> = Vec::new();
    let mut actions = Vec::new();
    let started = Instant::now();
    while started.elapsed() < NEMESIS_RUN {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(700..1_800))).await;
        let faulty = killed.len() + partitioned.len();
        if !killed.is_empty() && rng.gen_bool(0.5) {
            let k = killed.swap_remove(rng.gen_range(0..killed.len()));
            cluster.restart(k).await;
            actions.push(format!("restart {k}"));
        } else if !partitioned.is_empty() && rng.gen_bool(0.5) {
            let k = partitioned.swap_remove(rng.gen_range(0..partitioned.len()));
            cluster.proxies[k - 1].set(Fault::Pass);
            actions.push(format!("heal {k}"));
        } else if faulty < 2 {
            let k = loop {
                let k = rng.gen_range(1..=NODES);
                if !killed.contains(&k) && !partitioned.contains(&k) {
                    break k;
                }
            };
            if rng.gen_bool(0.5) {
                cluster.kill(k).await;
                killed.push(k);
                actions.push(format!("kill {k}"));
            } else {
                cluster.proxies[k - 1].set(Fault::DropAll);
                partitioned.push(k);
                actions.push(format!("partition {k}"));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut unacked = Vec::new();
    for w in workers {
        let log = w.await.unwrap();
        acked.extend(log.acked);
        unacked.extend(log.unacked);
    }

    // Heal everything.
    for k in killed {
        cluster.restart(k).await;
    }
    for p in &cluster.proxies {
        p.set(Fault::Pass);
    }
    let checker = Client::connect(cluster.client_config.clone())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = checker.maintain_once().await;
        if report.hints_pending == 0 && report.unreachable.is_empty() && report.hints_delivered == 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "hints never drained: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Read every cart (read repair runs on the way) and check.
    let mut present: Vec<BTreeSet<String>> = Vec::new();
    for cart in 0..CARTS {
        let read = checker
            .get(STORE, format!("cart-{cart}").as_bytes())
            .await
            .unwrap();
        max_siblings.fetch_max(read.siblings.len(), Ordering::Relaxed);
        present.push(union_of(&read.siblings));
    }
    let lost: Vec<&(usize, String)> = acked
        .iter()
        .filter(|(cart, e)| !present[*cart].contains(e))
        .collect();
    let survived_unacked = unacked
        .iter()
        .filter(|(cart, e)| present[*cart].contains(e))
        .count();
    let total = acked.len() + unacked.len();
    let report = format!(
        "nemesis: {}\nadds acknowledged {}, lost {}, unacknowledged {} ({} survived), \
         max siblings {}, failed share {:.1}%",
        actions.join(", "),
        acked.len(),
        lost.len(),
        unacked.len(),
        survived_unacked,
        max_siblings.load(Ordering::Relaxed),
        100.0 * unacked.len() as f64 / total.max(1) as f64
    );
    eprintln!("{report}");
    assert!(acked.len() >= 100, "too little work got done: {report}");
    assert!(lost.is_empty(), "lost acknowledged adds {lost:?}\n{report}");
}
