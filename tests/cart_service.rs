//! The example cart service (`examples/cart_service.rs`) as a real
//! process, driven over HTTP by `curl` against three real node processes,
//! one of which is killed with SIGKILL midway: every add the service
//! acknowledged is in the final cart, removes it acknowledged are gone, and
//! its `/metrics` shows the SDK's operations and the node it took for
//! down.

mod common;

use common::TestCluster;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example's binary, built by cargo into the same target directory
/// and profile as this test.
fn build_service() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/cart_service-HASH
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("profile dir");
    let target_dir = profile_dir.parent().expect("target dir");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "--example",
            "cart_service",
            "--target-dir",
        ])
        .arg(target_dir);
    if profile_dir.ends_with("release") {
        cargo.arg("--release");
    }
    // What cargo sets for this test process only: build scripts that watch
    // these variables would otherwise rebuild every time (ring, here), and
    // the next `cargo test` would rebuild them back.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let for_this_test = name == "CARGO"
            || name == "LD_LIBRARY_PATH"
            || name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name);
        if for_this_test {
            cargo.env_remove(name);
        }
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "the example builds");
    profile_dir.join("examples").join("cart_service")
}

/// The service process; killed when dropped, so a failing test leaves
/// nothing behind.
struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(exe: &PathBuf, config: &std::path::Path) -> Self {
        let mut child = Command::new(exe)
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the service starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the service prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self { child, url }
    }

    /// `curl -X method url+path`: the HTTP status and the body.
    fn call(&self, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "20",
                "-X",
                method,
                "-w",
                "\n%{http_code}",
            ])
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

/// The value of the series `name` in Prometheus text, 0 if absent.
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cart_service_keeps_every_acknowledged_add_through_a_node_kill() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed (.ci/run installs it)");
    }
    let exe = build_service();
    let mut cluster = TestCluster::processes(3, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("client.toml");
    std::fs::write(&config, toml::to_string(&cluster.client_config).unwrap()).unwrap();
    let service = Service::start(&exe, &config);

    let (carts, adds_per_phase) = (3, 40);
    let mut acked: Vec<(usize, String)> = Vec::new();
    let mut removed: Vec<(usize, String)> = Vec::new();
    let mut failed = 0;
    let started = Instant::now();
    for phase in 0..2 {
        if phase == 1 {
            // Midway: a node process dies without a goodbye.
            cluster.kill(2).await;
        }
        for i in 0..adds_per_phase {
            let (cart, item) = (i % carts, format!("p{phase}-item{i}"));
            let (code, body) = service.call("POST", &format!("/carts/c{cart}/items/{item}"));
            if code == 200 {
                assert!(
                    body.contains(&format!("\"{item}\"")),
                    "the answer shows the add: {body}"
                );
                acked.push((cart, item));
            } else {
                failed += 1;
            }
        }
        // Remove one acknowledged add per phase.
        let (cart, item) = acked[acked.len() / 2].clone();
        let (code, _) = service.call("DELETE", &format!("/carts/c{cart}/items/{item}"));
        if code == 200 {
            removed.push((cart, item));
        }
    }
    eprintln!(
        "{} adds acknowledged, {failed} failed, {} removes, in {:?}",
        acked.len(),
        removed.len(),
        started.elapsed()
    );
    assert!(
        acked.len() >= adds_per_phase,
        "with one node of three down the service keeps taking adds"
    );

    let mut missing = Vec::new();
    for cart in 0..carts {
        let (code, body) = service.call("GET", &format!("/carts/c{cart}"));
        assert_eq!(code, 200, "{body}");
        let view: serde_json::Value = serde_json::from_str(&body).unwrap();
        let items: Vec<&str> = view["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for (c, item) in &acked {
            let was_removed = removed.iter().any(|(rc, ri)| rc == c && ri == item);
            if *c == cart && !was_removed && !items.contains(&item.as_str()) {
                missing.push(item.clone());
            }
        }
        for (c, item) in &removed {
            assert!(
                *c != cart || !items.contains(&item.as_str()),
                "{item} was removed yet shows"
            );
        }
    }
    assert!(missing.is_empty(), "acknowledged adds lost: {missing:?}");

    let (code, metrics) = service.call("GET", "/metrics");
    assert_eq!(code, 200);
    let puts = series(
        &metrics,
        "quire_client_operation_duration_seconds_count{kind=\"put\",outcome=\"ok\"}",
    );
    let gets = series(
        &metrics,
        "quire_client_operation_duration_seconds_count{kind=\"get\",outcome=\"ok\"}",
    );
    assert!(
        puts >= acked.len() as f64,
        "puts counted: {puts}\n{metrics}"
    );
    assert!(gets > 0.0, "gets counted\n{metrics}");
    // The SDK learns that the killed node is down when a request to it
    // fails; replication past W goes on after each answer, so that may
    // come a little after the last add.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut down_metrics = metrics.clone();
    while series(&down_metrics, "quire_client_nodes_marked_down_total") < 1.0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        down_metrics = service.call("GET", "/metrics").1;
    }
    assert!(
        series(&down_metrics, "quire_client_nodes_marked_down_total") >= 1.0,
        "the killed node was marked down\n{down_metrics}"
    );
    assert!(
        series(
            &metrics,
            "cart_requests_total{route=\"add\",status=\"200\"}"
        ) >= acked.len() as f64,
        "the service's own counter\n{metrics}"
    );
    drop(service);
    cluster.stop_all().await;
}
