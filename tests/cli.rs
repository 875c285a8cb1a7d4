//! The `quire` binary end to end: `quire up` starts three node processes,
//! `put`/`get --json` round-trip through them, a node killed with SIGKILL
//! does not stop reads or writes, SIGINT stops every node, and `up` again
//! brings the data back.

use quire::cluster::process::{is_node_alive, read_pid};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const QUIRE: &str = env!("CARGO_BIN_EXE_quire");

/// A running `quire up`; on drop (a failed test) its nodes are stopped.
struct Up {
    child: Child,
    dir: PathBuf,
}

impl Up {
    /// A new cluster in a temporary directory: the directory's guard (it
    /// goes when dropped), the cluster directory, the running cluster and
    /// its client config.
    fn in_tempdir() -> (tempfile::TempDir, PathBuf, Self, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cluster");
        let up = Up::start(&dir);
        let config = dir.join("client.toml");
        (tmp, dir, up, config)
    }

    /// Starts `quire up` and waits for its `ready` line.
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(QUIRE)
            .args(["up", "--base-port", "0", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn quire up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let up = Up {
            child,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("ready") => return up,
                Ok(_) => {}
                Err(e) => panic!("quire up never printed ready: {e}"),
            }
        }
    }

    fn pids(&self) -> Vec<i32> {
        (1..=3)
            .map(|k| {
                read_pid(&self.dir.join(format!("node-{k}/pid"))).expect("quire up wrote a pid")
            })
            .collect()
    }

    /// Sends `signal` and waits for `quire up` to exit.
    fn stop(mut self, signal: Signal) -> std::process::ExitStatus {
        let pid = Pid::from_raw(self.child.id() as i32).unwrap();
        kill_process(pid, signal).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "quire up did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = quire::local::down(&self.dir);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `quire --config CONFIG ARGS` from a directory without a
/// `quire-local/` and without `$QUIRE_CONFIG`, so a command that dropped
/// `--config` on the way would fail instead of finding another cluster.
fn quire(config: &Path, args: &[&str]) -> Output {
    let cwd = config
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    Command::new(QUIRE)
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(cwd)
        .env_remove("QUIRE_CONFIG")
        .output()
        .expect("run quire")
}

/// Runs a command that must succeed and print one JSON document.
fn quire_json(config: &Path, args: &[&str]) -> Json {
    let out = quire(config, args);
    assert!(
        out.status.success(),
        "quire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "quire {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn values(doc: &Json) -> Vec<&str> {
    doc["values"]
        .as_array()
        .expect("values is an array")
        .iter()
        .map(|v| v.as_str().expect("values are strings"))
        .collect()
}

#[test]
fn up_put_get_kill_a_node_stop_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let config = dir.join("client.toml");

    let up = Up::start(&dir);
    for k in 1..=3 {
        assert!(dir.join(format!("node-{k}/node.toml")).exists());
    }
    let pids = up.pids();
    assert!(
        pids.iter().all(|&p| is_node_alive(p)),
        "three node processes"
    );
    assert_eq!(
        pids.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );

    // Status and locate shapes.
    let status = quire_json(&config, &["status", "--json"]);
    assert!(status["epoch"].as_u64().unwrap() >= 1);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["up"] == true && n["id"].is_string()));
    let stores = status["stores"].as_array().unwrap();
    assert_eq!(stores[0]["name"], "default");
    assert_eq!(
        (
            stores[0]["n"].clone(),
            stores[0]["r"].clone(),
            stores[0]["w"].clone()
        ),
        (3.into(), 2.into(), 2.into())
    );
    let located = quire_json(&config, &["locate", "default", "cart", "--json"]);
    assert!(located["partition"].as_u64().unwrap() < 256);
    assert_eq!(located["preference_list"].as_array().unwrap().len(), 3);

    // Round trip.
    let put = quire_json(&config, &["put", "default", "cart", "apple", "--json"]);
    assert_eq!(put["ok"], true);
    let got = quire_json(&config, &["get", "default", "cart", "--json"]);
    assert_eq!(got["found"], true);
    assert_eq!(values(&got), ["apple"]);
    let token = got["context"].as_str().unwrap().to_string();
    quire_json(
        &config,
        &[
            "put",
            "default",
            "cart",
            "apple,pear",
            "--context",
            &token,
            "--json",
        ],
    );
    let got = quire_json(&config, &["get", "default", "cart", "--json"]);
    assert_eq!(values(&got), ["apple,pear"]);

    // Two writes with the same stale context: siblings, shown by `get`;
    // a write with that get's context replaces both.
    let stale = quire_json(&config, &["get", "default", "cart", "--json"])["context"]
        .as_str()
        .unwrap()
        .to_string();
    for v in ["apple,pear,fig", "apple,pear,kiwi"] {
        let put = quire_json(
            &config,
            &["put", "default", "cart", v, "--context", &stale, "--json"],
        );
        assert!(put["context"].is_string());
    }
    let got = quire_json(&config, &["get", "default", "cart", "--json"]);
    let mut siblings = values(&got);
    siblings.sort();
    assert_eq!(siblings, ["apple,pear,fig", "apple,pear,kiwi"]);
    let text = quire(&config, &["get", "default", "cart"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("sibling 1:") && text.contains("sibling 2:"),
        "{text}"
    );
    let merged_ctx = got["context"].as_str().unwrap().to_string();
    quire_json(
        &config,
        &[
            "put",
            "default",
            "cart",
            "apple,pear",
            "--context",
            &merged_ctx,
            "--json",
        ],
    );
    let got = quire_json(&config, &["get", "default", "cart", "--json"]);
    assert_eq!(values(&got), ["apple,pear"]);
    let bad_ctx = quire(&config, &["put", "default", "cart", "x", "--context", "zz"]);
    assert!(!bad_ctx.status.success());
    assert!(String::from_utf8_lossy(&bad_ctx.stderr).contains("context"));

    // Delete, and a missing key.
    quire_json(&config, &["put", "default", "gone", "x", "--json"]);
    let ctx = quire_json(&config, &["get", "default", "gone", "--json"])["context"].clone();
    let del = quire_json(
        &config,
        &[
            "delete",
            "default",
            "gone",
            "--context",
            ctx.as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(del["ok"], true);
    let got = quire_json(&config, &["get", "default", "gone", "--json"]);
    assert_eq!(got["found"], false);
    assert!(values(&got).is_empty());

    // Errors: one line on stderr, non-zero exit.
    let bad = quire(&config, &["get", "nostore", "k"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line reason: {stderr}"
    );
    assert!(stderr.contains("nostore"), "{stderr}");
    let missing = quire(&tmp.path().join("nope.toml"), &["get", "default", "k"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("quire up"));

    // kill -9 one node: reads and writes go on.
    kill_process(Pid::from_raw(pids[1]).unwrap(), Signal::KILL).unwrap();
    let mut written = Vec::new();
    for i in 0..6 {
        let key = format!("after-kill-{i}");
        quire_json(
            &config,
            &["put", "default", &key, &format!("v{i}"), "--json"],
        );
        written.push(key);
    }
    for (i, key) in written.iter().enumerate() {
        let got = quire_json(&config, &["get", "default", key, "--json"]);
        assert_eq!(values(&got), [format!("v{i}").as_str()]);
    }
    let got = quire_json(&config, &["get", "default", "cart", "--json"]);
    assert_eq!(values(&got), ["apple,pear"], "acknowledged before the kill");
    let status = quire_json(&config, &["status", "--json"]);
    let up_count = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["up"] == true)
        .count();
    assert_eq!(up_count, 2);

    // SIGINT: `quire up` stops every node process and exits cleanly.
    let exit = up.stop(Signal::INT);
    assert!(exit.success(), "quire up exited with {exit}");
    for pid in &pids {
        assert!(!is_node_alive(*pid), "node pid {pid} outlived quire up");
    }

    // `quire up` again: same cluster, same data (including what was
    // written while a node was dead).
    let up = Up::start(&dir);
    let got = quire_json(&config, &["get", "default", "cart", "--json"]);
    assert_eq!(values(&got), ["apple,pear"]);
    for (i, key) in written.iter().enumerate() {
        let got = quire_json(&config, &["get", "default", key, "--json"]);
        assert_eq!(values(&got), [format!("v{i}").as_str()]);
    }
    let status = quire_json(&config, &["status", "--json"]);
    assert!(status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["up"] == true));
    let pids = up.pids();
    let exit = up.stop(Signal::TERM);
    assert!(exit.success());
    for pid in &pids {
        assert!(!is_node_alive(*pid));
    }
}

#[test]
fn a_second_up_on_a_running_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let up = Up::start(&dir);
    let second = Command::new(QUIRE)
        .args(["up", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    // The first cluster is unharmed.
    let config = dir.join("client.toml");
    quire_json(&config, &["put", "default", "k", "v", "--json"]);

    // A new store, usable at once by the next command.
    let created = quire_json(
        &config,
        &[
            "store",
            "create",
            "prices",
            "--n",
            "2",
            "--r",
            "1",
            "--w",
            "1",
            "--policy",
            "lww",
            "--durability",
            "buffered",
            "--siblings-max",
            "40",
            "--json",
        ],
    );
    assert_eq!(created["ok"], true);
    let status = quire_json(&config, &["status", "--json"]);
    let prices = status["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prices")
        .expect("the new store is listed")
        .clone();
    assert_eq!(
        (prices["n"].as_u64(), prices["policy"].as_str()),
        (Some(2), Some("lww"))
    );
    assert_eq!(prices["durability"], "buffered");
    assert_eq!(
        (
            prices["siblings_warn"].as_u64(),
            prices["siblings_max"].as_u64()
        ),
        (Some(25), Some(40))
    );
    quire_json(&config, &["put", "prices", "p", "1", "--json"]);
    quire_json(&config, &["put", "prices", "p", "2", "--json"]);
    let again = quire(&config, &["store", "create", "prices"]);
    assert!(!again.status.success(), "a store cannot be created twice");
    let too_big = quire(&config, &["store", "create", "big", "--n", "5"]);
    assert!(
        !too_big.status.success(),
        "N above the node count is refused"
    );
    let loose = quire(
        &config,
        &["store", "create", "loose", "--siblings-max", "0"],
    );
    assert!(!loose.status.success(), "a store needs a sibling limit");
    assert!(up.stop(Signal::TERM).success());
}

/// `quire bench --config FILE --store-nrw` creates its extra store in the
/// configured cluster and goes on measuring that same cluster (it once
/// reconnected without the config after creating the store).
#[test]
fn bench_with_a_config_creates_its_store_in_that_cluster() {
    let (_tmp, _, up, config) = Up::in_tempdir();
    let reports = quire_json(
        &config,
        &[
            "bench",
            "--records",
            "50",
            "--duration-s",
            "1",
            "--concurrency",
            "2",
            "--workloads",
            "c",
            "--mode",
            "closed",
            "--store-nrw",
            "1,1,1",
            "--json",
        ],
    );
    let targets: Vec<&str> = reports
        .as_array()
        .expect("a list of reports")
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["quire default (3,2,2)", "quire bench_nrw (1,1,1)"]
    );
    // Without --threads the client's runtime has one thread per core.
    let cores = std::thread::available_parallelism().unwrap().get();
    for r in reports.as_array().unwrap() {
        assert_eq!(r["runtime_threads"], cores, "{}", r["target"]);
    }
    let status = quire_json(&config, &["status", "--json"]);
    let stores: Vec<&str> = status["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stores, ["bench_nrw", "default"]);
    // Closed-set options refuse anything else with a clear message.
    let bad = quire(&config, &["bench", "--mode", "sideways"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("closed"));
    // A thread count no runtime should start is refused, not attempted.
    let bad = quire(&config, &["bench", "--threads", "5000"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0..=1024"));
    up.stop(Signal::INT);
}

/// Benchmarks run again against the same cluster, with a load and with
/// `--no-load`, replace the records of the earlier run: no read of a
/// later run sees siblings (one worker, so no two updates of a record
/// meet), and a record holds one value. Loads and updates without the
/// records' contexts once added a sibling to every record at every run.
#[test]
fn bench_runs_against_one_cluster_replace_their_records() {
    let (_tmp, _, up, config) = Up::in_tempdir();
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--records",
            "40",
            "--duration-s",
            "1",
            "--warmup-s",
            "0",
            "--concurrency",
            "1",
            "--workloads",
            "a,c",
            "--mode",
            "closed",
            "--json",
        ];
        args.extend_from_slice(extra);
        let reports = quire_json(&config, &args);
        let runs = reports[0]["runs"].as_array().expect("runs").clone();
        assert_eq!(runs.len(), 2, "{reports}");
        runs
    };
    bench(&[]);
    for extra in [&[][..], &["--no-load"][..]] {
        for run in bench(extra) {
            assert!(run["ops_per_sec"].as_f64().unwrap() > 0.0, "{run}");
            assert_eq!(run["siblings_seen"], 0, "{extra:?}: {run}");
        }
    }
    let got = quire_json(&config, &["get", "default", "user000000000007", "--json"]);
    assert_eq!(got["values"].as_array().map(Vec::len), Some(1), "{got}");
    up.stop(Signal::INT);
}

/// `quire node compact` on a running node is refused and leaves it be;
/// on the stopped cluster it rewrites each node's data file no larger
/// than before, and the cluster started again reads every key back.
#[test]
fn node_compact_is_refused_while_the_node_runs_and_keeps_every_key() {
    let (_tmp, dir, up, config) = Up::in_tempdir();
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i:03}")).collect();
    for key in &keys {
        quire_json(
            &config,
            &["put", "default", key, &format!("v-{key}"), "--json"],
        );
    }
    quire_json(&config, &["delete", "default", &keys[0], "--json"]);
    let node_config = |k: usize| dir.join(format!("node-{k}/node.toml"));
    let running = quire(&node_config(1), &["node", "compact"]);
    assert!(!running.status.success(), "compacted a running node");
    let stderr = String::from_utf8_lossy(&running.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    quire_json(&config, &["get", "default", &keys[1], "--json"]);
    assert!(up.stop(Signal::INT).success());

    let mut records = Vec::new();
    for k in 1..=3 {
        let report = quire_json(&node_config(k), &["node", "compact", "--json"]);
        let (before, after) = (
            report["bytes_before"].as_u64().unwrap(),
            report["bytes_after"].as_u64().unwrap(),
        );
        assert!(after > 0 && after <= before, "{report}");
        assert_eq!(report["databases"], 6, "{report}");
        records.push(report["records"].as_u64().unwrap());
    }
    // N = 3 on three nodes: each holds every key (60, one a tombstone),
    // besides its Merkle segments and meta records, the same on each.
    assert!(records[0] >= 60, "{records:?}");
    assert!(records.iter().all(|&r| r == records[0]), "{records:?}");
    let up = Up::start(&dir);
    for key in &keys[1..] {
        let got = quire_json(&config, &["get", "default", key, "--json"]);
        assert_eq!(
            got["values"],
            serde_json::json!([format!("v-{key}")]),
            "{got}"
        );
    }
    let gone = quire_json(&config, &["get", "default", &keys[0], "--json"]);
    assert_eq!(gone["found"], false, "{gone}");
    up.stop(Signal::INT);
}

/// `quire repair --once --json` against a running `quire up` cluster:
/// every partition checked, nothing to repair on a converged cluster; a
/// deleted key of a store without grace period is reaped.
#[test]
fn repair_once_prints_its_counts_as_json() {
    let (_tmp, _, up, config) = Up::in_tempdir();
    let put = quire_json(&config, &["put", "default", "k", "v", "--json"]);
    assert!(put.is_object());
    let report = quire_json(&config, &["repair", "--once", "--json"]);
    assert!(
        report["partitions_checked"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["segments_differing"], 0, "{report}");
    assert_eq!(report["keys_repaired"], 0, "{report}");
    assert!(report["bytes"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["tombstones_reaped"], 0, "{report}");
    let one = quire(&config, &["repair", "--once", "--store", "nope"]);
    assert!(!one.status.success(), "an unknown store is refused");

    // A store whose tombstones may go at once: a deleted key is reaped
    // by the next pass.
    let created = quire_json(
        &config,
        &[
            "store",
            "create",
            "brief",
            "--tombstone-grace-ms",
            "0",
            "--json",
        ],
    );
    assert_eq!(created["ok"], true, "{created}");
    let status = quire_json(&config, &["status", "--json"]);
    let brief = status["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "brief")
        .expect("the new store is listed")
        .clone();
    assert_eq!(brief["tombstone_grace_ms"], 0, "{brief}");
    quire_json(&config, &["put", "brief", "k", "v", "--json"]);
    let ctx = quire_json(&config, &["get", "brief", "k", "--json"])["context"].clone();
    let del = quire_json(
        &config,
        &[
            "delete",
            "brief",
            "k",
            "--context",
            ctx.as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(del["ok"], true);
    let report = quire_json(&config, &["repair", "--once", "--store", "brief", "--json"]);
    assert_eq!(report["tombstones_reaped"], 1, "{report}");
    drop(up);
}

/// The operator's path through a membership change, each step its own
/// `quire` process: `node new`, start it, `cluster join`, `plan`,
/// `commit`, `transfers --wait`, `status`; every key written before
/// reads back afterwards.
#[test]
fn a_node_created_started_and_joined_from_the_cli_takes_its_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let config = dir.join("client.toml");
    let up = Up::start(&dir);
    for i in 0..20 {
        let key = format!("key-{i}");
        quire_json(&config, &["--json", "put", "default", &key, &key]);
    }
    let new = quire_json(
        &config,
        &["--json", "node", "new", "--dir", dir.to_str().unwrap()],
    );
    let node_config = new["config"].as_str().unwrap().to_owned();
    let addr = new["addr"].as_str().unwrap().to_owned();
    assert!(node_config.ends_with("node-4/node.toml"), "{new}");
    // Killed on drop, so a failing assertion leaves no node behind.
    struct Node(Child);
    impl Drop for Node {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Its log, to say why when it does not answer.
    let log_path = tmp.path().join("node-4.log");
    let _node = Node(
        Command::new(QUIRE)
            .args(["node", "--config", &node_config])
            .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
            .spawn()
            .expect("start node 4"),
    );

    let join = quire(&config, &["--json", "cluster", "join", &addr]);
    assert!(
        join.status.success(),
        "quire cluster join {addr} failed: {}\nnode 4's log:\n{}",
        String::from_utf8_lossy(&join.stderr),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    let staged: Json = serde_json::from_slice(&join.stdout).unwrap();
    assert_eq!(staged["staged"].as_array().unwrap().len(), 1, "{staged}");
    // A commit needs a plan first.
    assert!(!quire(&config, &["cluster", "commit"]).status.success());
    let plan = quire_json(&config, &["--json", "cluster", "plan"]);
    let moves = plan["moves"].as_array().unwrap().len();
    assert!((48..=80).contains(&moves), "{moves} of 256 move: {plan}");
    let joining: Vec<&Json> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "joining")
        .collect();
    assert_eq!(joining.len(), 1, "{plan}");
    assert_eq!(joining[0]["addr"], addr.as_str());
    let committed = quire_json(&config, &["--json", "cluster", "commit"]);
    assert!(committed["transfers"].as_u64().unwrap() > 0, "{committed}");

    // --parallel and --max-rate are checked before anything is asked:
    // 1 to 64 transfers, a rate of at least 0.1 or `unlimited`, a
    // timeout, each only with --wait.
    for (bad, option) in [
        (
            &["cluster", "transfers", "--wait", "--parallel", "0"][..],
            "--parallel",
        ),
        (
            &["cluster", "transfers", "--wait", "--parallel", "65"],
            "--parallel",
        ),
        (&["cluster", "transfers", "--parallel", "2"], "--parallel"),
        (
            &["cluster", "transfers", "--wait", "--max-rate", "0"],
            "--max-rate",
        ),
        (
            &["cluster", "transfers", "--wait", "--max-rate", "0.01"],
            "--max-rate",
        ),
        (
            &["cluster", "transfers", "--wait", "--max-rate=-3"],
            "--max-rate",
        ),
        (
            &["cluster", "transfers", "--wait", "--max-rate", "fast"],
            "--max-rate",
        ),
        (
            &["cluster", "transfers", "--wait", "--max-rate", "NaN"],
            "--max-rate",
        ),
        (&["cluster", "transfers", "--max-rate", "8"], "--max-rate"),
        (&["cluster", "transfers", "--timeout-s", "5"], "--timeout-s"),
    ] {
        let refused = quire(&config, bad);
        assert!(!refused.status.success(), "{bad:?} was accepted");
        let why = String::from_utf8_lossy(&refused.stderr);
        assert!(why.contains(option), "{bad:?}: {why}");
    }
    let moved = quire_json(
        &config,
        &[
            "--json",
            "cluster",
            "transfers",
            "--wait",
            "--parallel",
            "3",
            "--max-rate",
            "0.5",
        ],
    );
    assert_eq!(moved["flipped"], true, "{moved}");
    assert_eq!(
        (moved["pending"].as_u64(), moved["active"].as_u64()),
        (Some(0), Some(0))
    );
    let status = quire_json(&config, &["--json", "status"]);
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "{status}");
    assert!(nodes
        .iter()
        .all(|n| n["state"] == "member" && n["up"] == true));
    // A change that cannot apply is refused when staged, not at plan.
    let again = quire(&config, &["cluster", "join", &addr]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not staged"));
    assert!(
        !quire(&config, &["cluster", "plan"]).status.success(),
        "nothing is staged"
    );
    let newcomer = nodes.iter().find(|n| n["addr"] == addr.as_str()).unwrap();
    assert_eq!(newcomer["partitions"].as_u64(), Some(moves as u64));
    for i in 0..20 {
        let key = format!("key-{i}");
        let got = quire_json(&config, &["--json", "get", "default", &key]);
        assert_eq!(values(&got), vec![key.as_str()]);
    }
    // A leave: the node ends idle, and status says it still holds copies
    // (dropped by maintenance a minute after the change), so it is not
    // yet safe to stop.
    let leaver = nodes[0]["addr"].as_str().unwrap().to_owned();
    quire_json(&config, &["--json", "cluster", "leave", &leaver]);
    quire_json(&config, &["--json", "cluster", "plan"]);
    quire_json(&config, &["--json", "cluster", "commit"]);
    // The default number of transfers in flight.
    let moved = quire_json(&config, &["--json", "cluster", "transfers", "--wait"]);
    assert_eq!(moved["flipped"], true, "{moved}");
    let status = quire_json(&config, &["--json", "status"]);
    let left = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["addr"] == leaver.as_str())
        .unwrap()
        .clone();
    assert_eq!(left["state"], "idle", "{status}");
    assert!(left["held_keys"].as_u64().unwrap() > 0, "{status}");
    // It cannot be removed from the document while it holds copies.
    let early = quire(&config, &["cluster", "remove", &leaver]);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("still holds"));
    for i in 0..20 {
        let key = format!("key-{i}");
        let got = quire_json(&config, &["--json", "get", "default", &key]);
        assert_eq!(values(&got), vec![key.as_str()]);
    }
    up.stop(Signal::INT);
    // `quire down` also stops the node started by hand (it has no pid
    // file): a later `quire up` would otherwise find its port taken.
    let down = quire(&config, &["down", "--dir", dir.to_str().unwrap()]);
    assert!(down.status.success(), "{down:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut node = _node;
    while node.0.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "node 4 still runs after `quire down`: {}",
            String::from_utf8_lossy(&down.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
