//! Certificate rotation on a running cluster of node processes: `quire
//! cert rotate` gives every node a new certificate (same node id) and
//! tells it to reload; clients under load see no failed request, and new
//! connections meet the new certificates.

mod common;

use common::TestCluster;
use quire::config::{TlsPem, TlsSource};
use quire::shared::Context;
use quire::Client;
use quire_net::identity::serial_of;
use quire_net::tls::{load_certs, NODE_SERVER_NAME};
use rustix::process::{kill_process, Pid, Signal};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The serial of the certificate the node at `addr` presents to a new
/// connection.
async fn presented_serial(tls: &quire_net::tls::TlsSource, addr: std::net::SocketAddr) -> String {
    let material = quire_net::tls::TlsMaterial::load(tls).unwrap();
    let crypto = quire_net::tls::client_config_from(&material).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(addr, NODE_SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    let chain = conn
        .peer_identity()
        .unwrap()
        .downcast::<Vec<quinn::rustls::pki_types::CertificateDer<'static>>>()
        .unwrap();
    let serial = serial_of(&chain[0]).unwrap().to_string();
    conn.close(0u32.into(), b"done");
    serial
}

/// Runs `quire cert rotate --json --dir DIR` and returns its report.
fn rotate(dir: &std::path::Path) -> serde_json::Value {
    let rotated = std::process::Command::new(common::QUIRE)
        .args(["cert", "rotate", "--json", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&rotated.stderr);
    assert!(rotated.status.success(), "{stderr}");
    serde_json::from_slice(&rotated.stdout).unwrap()
}

/// Revokes the certificate with serial `serial` with a cold `quire cert
/// revoke` as the directory's operator.
fn revoke(layout: &quire::cluster::layout::Layout, serial: &str) {
    let revoked = std::process::Command::new(common::QUIRE)
        .arg("--config")
        .arg(layout.client_config())
        .args(["cert", "revoke", "--serial", serial])
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
}

fn file_serial(path: &std::path::Path) -> String {
    serial_of(&load_certs(path, "certificate").unwrap()[0])
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    let cluster = TestCluster::processes(3, false).await;
    let layout = cluster.layout().clone();
    let tls = cluster.client_config.tls.clone();
    let before: Vec<String> = (1..=3)
        .map(|k| file_serial(&layout.node_dir(k).join("node.pem")))
        .collect();
    for (k, addr) in cluster.node_addrs.iter().enumerate() {
        assert_eq!(presented_serial(&tls, *addr).await, before[k]);
    }

    let client = cluster.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ops, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for w in 0..8 {
        let (client, stop) = (client.clone(), stop.clone());
        let (ops, failures) = (ops.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{w}-{i}").into_bytes();
                let empty = Context::empty();
                let put = client.put("default", &key, vec![7; 256], &empty);
                let ok = put.await.is_ok() && client.get("default", &key).await.is_ok();
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                ops.fetch_add(2, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = rotate(&layout.dir);
    let reloaded = report["nodes"].as_array().unwrap();
    assert!(reloaded.iter().all(|n| n["reloaded"] == true), "{report}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (ops, failures) = (
        ops.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    eprintln!("{ops} operations during the rotation, {failures} failed");
    assert!(ops > 100, "only {ops} operations ran");
    assert_eq!(failures, 0, "{failures} of {ops} operations failed");

    // New connections meet the new certificates, with the same node ids.
    for (k, addr) in cluster.node_addrs.iter().enumerate() {
        let now = file_serial(&layout.node_dir(k + 1).join("node.pem"));
        assert_ne!(now, before[k], "node-{} kept its certificate", k + 1);
        assert_eq!(presented_serial(&tls, *addr).await, now);
    }
    // The operator's new certificate works from a cold client.
    let fresh = quire::Client::connect(cluster.client_config.clone())
        .await
        .expect("the new admin certificate is accepted");
    fresh.get("default", b"k0-0").await.unwrap();
}

/// The sum of every `errors` field in a bench report.
fn errors_in(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match (k.as_str(), v.as_u64()) {
                ("errors", Some(n)) => n,
                _ => errors_in(v),
            })
            .sum(),
        serde_json::Value::Array(a) => a.iter().map(errors_in).sum(),
        _ => 0,
    }
}

/// `quire bench` (workload A, 8 concurrent, `secs` seconds, no warm-up)
/// as the directory's operator, its JSON report on stdout.
fn spawn_bench(layout: &quire::cluster::layout::Layout, secs: u32) -> std::process::Child {
    std::process::Command::new(common::QUIRE)
        .arg("--config")
        .arg(layout.client_config())
        .args(["--json", "bench", "--workloads", "a", "--records", "200"])
        .args(["--concurrency", "8", "--duration-s", &secs.to_string()])
        // Every request counts: a failure during a warm-up would go
        // unreported.
        .args(["--warmup-s", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `bench` and checks it: exit 0, no refused reload, no error
/// in its report, and over 500 operations run.
async fn bench_saw_no_error(bench: std::process::Child) {
    let out = tokio::task::spawn_blocking(move || bench.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("reload refused"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(errors_in(&report), 0, "{report}");
    let ops = report[0]["runs"][0]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["ops"].as_u64().unwrap())
        .sum::<u64>();
    assert!(ops > 500, "the bench ran only {ops} operations: {report}");
}

/// `quire bench` runs through a rotation of every node's certificate and
/// its own (it reloads on SIGHUP, as nodes do) with no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quire_bench_sees_no_failed_request_through_a_rotation() {
    let cluster = TestCluster::processes(3, false).await;
    let layout = cluster.layout().clone();
    let bench = spawn_bench(&layout, 4);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    rotate(&layout.dir);
    let pid = rustix::process::Pid::from_raw(bench.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    bench_saw_no_error(bench).await;
    let node_serial = file_serial(&layout.node_dir(1).join("node.pem"));
    assert_eq!(
        presented_serial(&cluster.client_config.tls, cluster.node_addrs[0]).await,
        node_serial
    );
}

/// A client that reloads its certificate uses it from its next request
/// on: its open connections are replaced, so once the old certificate is
/// revoked the reloaded client is not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_client_presents_its_new_certificate_on_its_next_request() {
    let cluster = TestCluster::start(3).await;
    let layout = cluster.layout().clone();
    let client = cluster.client().await;
    client
        .put("default", b"k", b"v".to_vec(), &Context::empty())
        .await
        .unwrap();
    let old = file_serial(&layout.dir.join("client.pem"));
    rotate(&layout.dir);
    assert_ne!(file_serial(&layout.dir.join("client.pem")), old);
    client.reload_tls().unwrap();
    revoke(&layout, &old);
    // The revocation reaches the nodes with the document; the reloaded
    // client still reads and writes.
    for i in 0..20 {
        let key = format!("after-{i}").into_bytes();
        client
            .put("default", &key, b"v".to_vec(), &Context::empty())
            .await
            .unwrap_or_else(|e| panic!("refused after the reload: {e}"));
        client.get("default", &key).await.unwrap();
    }
}

/// An application holding its identity as PEM in memory (from a secret
/// store) is handed the rotated one with `replace_tls`; once the old
/// certificate is revoked, a client that was not handed it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_pem_in_memory_takes_a_rotated_identity() {
    let cluster = TestCluster::start(3).await;
    let layout = cluster.layout().clone();
    let pem = || {
        let read = |name: &str| std::fs::read_to_string(layout.dir.join(name)).unwrap();
        TlsSource::Pem(TlsPem {
            cert: read("client.pem"),
            key: read("client-key.pem"),
            ca: read("ca.pem"),
        })
    };
    let in_memory = || async {
        let mut config = cluster.client_config.clone();
        config.tls = pem();
        Client::connect(config).await.unwrap()
    };
    let (rotated, stale) = (in_memory().await, in_memory().await);
    let old = file_serial(&layout.dir.join("client.pem"));
    rotate(&layout.dir);
    rotated.replace_tls(pem()).expect("the new identity loads");
    revoke(&layout, &old);
    // A key that does not match the certificate is refused, and the
    // identity in use stays.
    let TlsSource::Pem(mut broken) = pem() else {
        unreachable!()
    };
    broken.key = std::fs::read_to_string(layout.node_dir(1).join("node-key.pem")).unwrap();
    assert!(rotated.replace_tls(TlsSource::Pem(broken)).is_err());
    for i in 0..20 {
        let key = format!("pem-{i}").into_bytes();
        rotated
            .put("default", &key, b"v".to_vec(), &Context::empty())
            .await
            .unwrap_or_else(|e| panic!("refused after the new identity: {e}"));
    }
    // The client still presenting the revoked certificate is refused
    // (its connections were opened before the revocation, and every
    // request is checked).
    let mut refused = None;
    for i in 0..50 {
        let key = format!("stale-{i}").into_bytes();
        match stale
            .put("default", &key, b"v".to_vec(), &Context::empty())
            .await
        {
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let refused = refused.expect("the revoked identity kept writing");
    assert!(refused.contains("revoked"), "{refused}");
}

/// Runs `quire cert rotate-ca STEP --json --dir DIR` and returns its report.
fn rotate_ca(dir: &std::path::Path, step: &str) -> serde_json::Value {
    let out = std::process::Command::new(common::QUIRE)
        .args(["cert", "rotate-ca", step, "--json", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rotate-ca {step}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The cluster CA itself rotates under `quire bench` load, in three steps
/// with the bench reloaded (SIGHUP) after each: no failed request. After
/// the last step only the new CA is trusted: the membership document
/// verifies under it alone (a cold client takes it), and an identity of
/// the old CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_rotates_under_quire_bench_load_without_a_failed_request() {
    let cluster = TestCluster::processes(3, false).await;
    let layout = cluster.layout().clone();
    let old = tempfile::tempdir().unwrap();
    for name in ["ca.pem", "client.pem", "client-key.pem"] {
        std::fs::copy(layout.dir.join(name), old.path().join(name)).unwrap();
    }
    let bench = spawn_bench(&layout, 8);
    let pid = rustix::process::Pid::from_raw(bench.id() as i32).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for step in ["begin", "switch", "finish"] {
        let report = rotate_ca(&layout.dir, step);
        let nodes = report["nodes"].as_array().unwrap();
        assert!(nodes.iter().all(|n| n["reloaded"] == true), "{report}");
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    bench_saw_no_error(bench).await;

    // Only the new CA is trusted, and the document verifies under it.
    let bundle = std::fs::read_to_string(layout.dir.join("ca.pem")).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
    assert_ne!(
        bundle,
        std::fs::read_to_string(old.path().join("ca.pem")).unwrap()
    );
    let fresh = Client::connect(cluster.client_config.clone())
        .await
        .expect("a cold client takes the re-signed document");
    fresh.get("default", b"anything").await.unwrap();
    // The old CA's operator identity is refused now.
    let mut stale = cluster.client_config.clone();
    stale.tls = TlsSource::Files(quire::config::TlsFiles {
        cert: old.path().join("client.pem"),
        key: old.path().join("client-key.pem"),
        ca: layout.dir.join("ca.pem"),
    });
    assert!(
        Client::connect(stale).await.is_err(),
        "an identity of the old CA still connects"
    );
    // A client still trusting only the old CA cannot talk to the nodes.
    let mut unaware = cluster.client_config.clone();
    unaware.tls = TlsSource::Files(quire::config::TlsFiles {
        cert: layout.dir.join("client.pem"),
        key: layout.dir.join("client-key.pem"),
        ca: old.path().join("ca.pem"),
    });
    assert!(Client::connect(unaware).await.is_err());
}

/// A node keeps its id across certificates: given a certificate naming
/// another node, a SIGHUP reload is refused and the node serves on as
/// itself (a client checking who answers connects afresh), and a restart
/// with that certificate is refused because the data directory belongs to
/// the node it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_naming_another_node_is_refused_at_reload_and_at_restart() {
    let mut cluster = TestCluster::processes(1, false).await;
    let ca = common::cluster_ca(&cluster);
    let me = cluster.membership.members[0].id;
    let stranger = quire::shared::NodeId(me.0 ^ 0x5a5a);
    common::replace_node_certificate(&cluster, 1, &ca.node(stranger, 30).unwrap());
    let pid = cluster.pid(1).expect("a node process");
    kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::HUP).unwrap();
    let log = cluster.log(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("a node keeps its id across certificates")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no refused reload in {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A new client (new connections, node identity checked) is served.
    let client = cluster.client().await;
    client
        .put("default", b"k", b"v".to_vec(), &Context::empty())
        .await
        .expect("the node serves as itself");

    cluster.stop(1).await;
    let restarted = cluster.cluster.node(1).start().await;
    let err = format!("{:?}", restarted.expect_err("the restart is refused"));
    assert!(err.contains("the data directory belongs to node"), "{err}");
}
