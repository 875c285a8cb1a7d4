//! Membership change across hosts: a node joins, a node leaves and a dead
//! node is replaced, each driven by cold `quire` processes in a client
//! host while the nodes run in hosts of their own (network namespaces
//! joined by a bridge, see `common/netns.rs`), addressed 10.77.X.K, never
//! 127.0.0.1. Every key written before and between the changes reads back
//! at the end.
//!
//! Hosts 1-3 start as the cluster; host 4 joins; host 1 leaves; host 2's
//! node is killed (a dead machine) and host 5 replaces it. The client is
//! host 6.
//!
//! Skips, saying so on stderr, where namespaces cannot be made (not root,
//! no `ip`).

mod common;

use common::netns::{self, Hosts};
use common::netns_cluster::{self, HostNode};
use quire::cluster::LocalCluster;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Hosts 1..=3 start as the cluster; 4 and 5 come later.
const FIRST_NODES: usize = 3;
const NODE_HOSTS: usize = 5;
const CLIENT: usize = NODE_HOSTS + 1;

/// Cold `quire` processes run at once (a batch of puts or gets).
const PARALLEL: usize = 8;

/// How long `transfers --wait` may drive one change.
const CHANGE_LIMIT_S: &str = "40";

/// The whole test must finish within this.
const TEST_BOUND: Duration = Duration::from_secs(60);

/// What the test holds. Field order is drop order: the added nodes and
/// the cluster stop before the directory goes, and all of them before the
/// namespaces are deleted.
struct World {
    added: Vec<HostNode>,
    cluster: LocalCluster,
    dir: tempfile::TempDir,
    hosts: Hosts,
}

impl World {
    fn start() -> Self {
        let hosts = Hosts::create(CLIENT);
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = netns_cluster::start(&hosts, FIRST_NODES, CLIENT, dir.path());
        Self {
            added: Vec::new(),
            cluster,
            dir,
            hosts,
        }
    }

    fn addr(&self, k: usize) -> String {
        netns_cluster::node_addr(&self.hosts, k).to_string()
    }

    /// `quire --config CLIENT.toml --json ARGS` with its arguments, as
    /// passed to the process.
    fn argv<'a>(&'a self, config: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut argv = vec!["--config", config, "--json"];
        argv.extend_from_slice(args);
        argv
    }

    fn config(&self) -> String {
        let path = self.cluster.layout().client_config();
        path.to_str().expect("a UTF-8 temp dir").to_owned()
    }

    /// Runs `quire --json ARGS` as a fresh process in the client host.
    fn quire(&self, args: &[&str]) -> Value {
        let config = self.config();
        netns_cluster::quire_in(&self.hosts, CLIENT, &self.argv(&config, args))
    }

    /// Runs every call as its own process in the client host,
    /// [`PARALLEL`] at a time; the answers in order.
    fn quire_each(&self, calls: &[Vec<&str>]) -> Vec<Value> {
        let config = self.config();
        let mut answers = Vec::new();
        for chunk in calls.chunks(PARALLEL) {
            let running: Vec<_> = chunk
                .iter()
                .map(|args| {
                    let child = netns_cluster::quire_command(
                        &self.hosts,
                        CLIENT,
                        &self.argv(&config, args),
                    )
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start quire in the client host");
                    (args, child)
                })
                .collect();
            for (args, child) in running {
                let out = child.wait_with_output().expect("quire finishes");
                answers.push(netns_cluster::json_answer(&format!("{args:?}"), out));
            }
        }
        answers
    }

    fn put_all(&self, pairs: &[(String, String)]) {
        let calls: Vec<Vec<&str>> = pairs
            .iter()
            .map(|(k, v)| vec!["put", "default", k.as_str(), v.as_str()])
            .collect();
        for (answer, (key, _)) in self.quire_each(&calls).iter().zip(pairs) {
            assert_eq!(answer["ok"], true, "put {key}: {answer}");
        }
    }

    fn assert_all_read(&self, pairs: &[(String, String)]) {
        let calls: Vec<Vec<&str>> = pairs
            .iter()
            .map(|(k, _)| vec!["get", "default", k.as_str()])
            .collect();
        for (answer, (key, value)) in self.quire_each(&calls).iter().zip(pairs) {
            assert_eq!(answer["found"], true, "get {key}: {answer}");
            assert_eq!(answer["values"], serde_json::json!([value]), "get {key}");
        }
    }

    /// `quire status`: its node entries.
    fn status(&self) -> Vec<Value> {
        let status = self.quire(&["status"]);
        status["nodes"]
            .as_array()
            .expect("status lists nodes")
            .clone()
    }

    /// Stages `change`, plans, commits and waits for the data to move;
    /// returns the plan.
    fn change(&self, change: &[&str]) -> Value {
        let mut stage = vec!["cluster"];
        stage.extend_from_slice(change);
        let staged = self.quire(&stage);
        assert_eq!(
            staged["staged"].as_array().map(Vec::len),
            Some(1),
            "{staged}"
        );
        let plan = self.quire(&["cluster", "plan"]);
        assert!(
            !plan["moves"]
                .as_array()
                .expect("plan lists moves")
                .is_empty(),
            "{change:?} moves nothing: {plan}"
        );
        let committed = self.quire(&["cluster", "commit"]);
        assert!(committed["transfers"].as_u64() > Some(0), "{committed}");
        let moved = self.quire(&[
            "cluster",
            "transfers",
            "--wait",
            "--timeout-s",
            CHANGE_LIMIT_S,
        ]);
        assert_eq!(moved["flipped"], true, "{change:?}: {moved}");
        assert_eq!(
            (moved["pending"].as_u64(), moved["active"].as_u64()),
            (Some(0), Some(0)),
            "{moved}"
        );
        plan
    }

    /// Creates node K for host K and starts it there.
    fn add_node(&mut self) -> SocketAddr {
        let node = netns_cluster::add_node(&self.hosts, self.cluster.layout(), self.dir.path());
        let addr = node.addr;
        self.added.push(node);
        addr
    }

    /// kill -9 node K of the first three (a dead machine) and wait,
    /// bounded, until it is gone.
    fn kill(&mut self, k: usize) {
        let node = self.cluster.node(k);
        let pid = node.pid().expect("node runs as a process");
        quire::cluster::process::signal(pid as i32, quire::cluster::process::KILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while node.exited().is_none() {
            assert!(Instant::now() < deadline, "node-{k} survived SIGKILL");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The entry for `addr` in a list of plan or status nodes.
fn entry<'a>(nodes: &'a [Value], addr: &str) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["addr"] == addr)
        .unwrap_or_else(|| panic!("no node at {addr} in {nodes:?}"))
}

fn plan_nodes(plan: &Value) -> &[Value] {
    plan["nodes"].as_array().expect("plan lists nodes")
}

/// `count` keys named after `tag`, each with its own value.
fn pairs(tag: &str, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("{tag}-{i:02}"), format!("{tag}-value-{i}")))
        .collect()
}

#[test]
fn join_leave_and_replace_across_hosts_keep_every_key() {
    if !netns::available() {
        return;
    }
    let started = Instant::now();
    let mut world = World::start();
    let mut written = pairs("before", 50);
    world.put_all(&written);
    let lap = |what: &str| eprintln!("{what}: {} ms", started.elapsed().as_millis());
    lap("cluster up, 50 keys written");

    // Join: node 4, made and started in host 4.
    let addr4 = world.add_node().to_string();
    assert_eq!(addr4, world.addr(4));
    let plan = world.change(&["join", &addr4]);
    let moves = plan["moves"].as_array().unwrap().len();
    let joining = entry(plan_nodes(&plan), &addr4);
    assert_eq!(joining["state"], "joining", "{plan}");
    assert_eq!(joining["partitions_after"].as_u64(), Some(moves as u64));
    let status = world.status();
    assert_eq!(status.len(), 4, "{status:?}");
    for node in &status {
        assert_eq!(
            (&node["state"], &node["up"]),
            (&"member".into(), &true.into())
        );
    }
    assert_eq!(
        entry(&status, &addr4)["partitions"].as_u64(),
        Some(moves as u64)
    );
    let more = pairs("after-join", 10);
    world.put_all(&more);
    written.extend(more);
    lap("node 4 joined");

    // Leave: host 1's node hands its partitions to the others and stays
    // up, owning nothing.
    let addr1 = world.addr(1);
    let plan = world.change(&["leave", &addr1]);
    let leaving = entry(plan_nodes(&plan), &addr1);
    assert_eq!(leaving["state"], "leaving", "{plan}");
    assert_eq!(leaving["partitions_after"].as_u64(), Some(0), "{plan}");
    let status = world.status();
    let left = entry(&status, &addr1);
    assert_eq!(left["state"], "idle", "{status:?}");
    assert_eq!(left["partitions"].as_u64(), Some(0), "{status:?}");
    assert_eq!(left["up"], true, "{status:?}");
    let more = pairs("after-leave", 10);
    world.put_all(&more);
    written.extend(more);
    lap("node 1 left");

    // Replace: host 2's machine dies; a fresh node in host 5 takes exactly
    // its partitions, rebuilt from the other replicas.
    let addr2 = world.addr(2);
    let owned = entry(&world.status(), &addr2)["partitions"].as_u64();
    assert!(owned > Some(0), "node 2 owns nothing before it dies");
    world.kill(2);
    let addr5 = world.add_node().to_string();
    assert_eq!(addr5, world.addr(5));
    let plan = world.change(&["replace", &addr2, &addr5]);
    assert_eq!(
        plan["moves"].as_array().unwrap().len() as u64,
        owned.unwrap()
    );
    assert_eq!(
        entry(plan_nodes(&plan), &addr5)["partitions_after"].as_u64(),
        owned
    );
    let status = world.status();
    let replaced = entry(&status, &addr2);
    assert_eq!(replaced["state"], "idle", "{status:?}");
    assert_eq!(replaced["partitions"].as_u64(), Some(0), "{status:?}");
    assert_eq!(replaced["up"], false, "{status:?}");
    let new = entry(&status, &addr5);
    assert_eq!(
        (&new["state"], &new["up"]),
        (&"member".into(), &true.into())
    );
    assert_eq!(new["partitions"].as_u64(), owned, "{status:?}");
    let more = pairs("after-replace", 10);
    world.put_all(&more);
    written.extend(more);
    lap("node 2 replaced by node 5");

    world.assert_all_read(&written);
    lap("every key read back");
    let took = started.elapsed();
    assert!(took < TEST_BOUND, "took {took:?}, bound {TEST_BOUND:?}");
}
