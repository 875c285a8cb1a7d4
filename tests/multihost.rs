//! Three hosts, one node process each, and a client host: every request
//! crosses veth pairs and a bridge between network namespaces (see
//! `common/netns.rs`), addressed 10.77.X.K, never 127.0.0.1. The client
//! is the `quire` CLI, one cold process per operation, run in host 4.
//!
//! Skips, saying so on stderr, where namespaces cannot be made (not root,
//! no `ip`).

mod common;

use common::netns::{self, Hosts};
use common::netns_cluster;
use quire::cluster::LocalCluster;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Node hosts are 1..=NODES; the client host comes after them.
const NODES: usize = 3;
const CLIENT: usize = NODES + 1;

/// The whole test must finish well within this.
const TEST_BOUND: Duration = Duration::from_secs(30);

/// What the test holds. Field order is drop order: nodes stop before the
/// directory goes, and both before the namespaces are deleted.
struct World {
    cluster: LocalCluster,
    _dir: tempfile::TempDir,
    hosts: Hosts,
}

impl World {
    fn start() -> Self {
        let hosts = Hosts::create(CLIENT);
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = netns_cluster::start(&hosts, NODES, CLIENT, dir.path());
        Self {
            cluster,
            _dir: dir,
            hosts,
        }
    }

    /// Runs `quire --json ARGS` as a fresh process in the client host and
    /// returns its JSON answer; a failure shows stderr.
    fn quire(&self, args: &[&str]) -> Value {
        let config = self.cluster.layout().client_config();
        let mut argv = vec!["--config", config.to_str().expect("UTF-8 path"), "--json"];
        argv.extend_from_slice(args);
        netns_cluster::quire_in(&self.hosts, CLIENT, &argv)
    }

    fn put(&self, key: &str, value: &str) {
        let answer = self.quire(&["put", "default", key, value]);
        assert_eq!(answer["ok"], true, "put {key}: {answer}");
    }

    fn assert_reads(&self, key: &str, value: &str) {
        let answer = self.quire(&["get", "default", key]);
        assert_eq!(answer["found"], true, "get {key}: {answer}");
        assert_eq!(answer["values"], serde_json::json!([value]), "get {key}");
    }

    /// `quire status`: each node's address and whether it answered.
    fn status(&self) -> Vec<(String, bool)> {
        let answer = self.quire(&["status"]);
        let nodes = answer["nodes"].as_array().expect("status lists nodes");
        nodes
            .iter()
            .map(|n| {
                let addr = n["addr"].as_str().expect("node address").to_string();
                (addr, n["up"].as_bool().expect("node up flag"))
            })
            .collect()
    }

    /// kill -9 node K and wait (bounded) until it is gone.
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

#[test]
fn nodes_on_separate_hosts_serve_a_cold_cli_and_survive_a_killed_host() {
    if !netns::available() {
        return;
    }
    let started = Instant::now();
    let mut world = World::start();

    // Each node runs inside its own host, listening on that host's address.
    for k in 1..=NODES {
        let pid = world.cluster.node(k).pid().expect("node process");
        assert!(world.hosts.holds(k, pid), "node-{k} runs in host {k}");
        assert_eq!(
            world.cluster.node(k).listen,
            netns_cluster::node_addr(&world.hosts, k)
        );
    }
    let expected: Vec<(String, bool)> = (1..=NODES)
        .map(|k| (netns_cluster::node_addr(&world.hosts, k).to_string(), true))
        .collect();
    let mut seen = world.status();
    seen.sort();
    assert_eq!(seen, expected, "every node up at its host address");

    world.put("cart", "apple");
    world.assert_reads("cart", "apple");

    // Host 1 loses its node; the other two still make W = 2 and R = 2.
    world.kill(1);
    let mut seen = world.status();
    seen.sort();
    let down: Vec<&str> = seen
        .iter()
        .filter(|(_, up)| !up)
        .map(|(a, _)| a.as_str())
        .collect();
    let killed = netns_cluster::node_addr(&world.hosts, 1).to_string();
    assert_eq!(down, [killed.as_str()], "only the killed node is down");

    world.put("cart-2", "banana");
    world.assert_reads("cart-2", "banana");
    world.assert_reads("cart", "apple");

    let took = started.elapsed();
    eprintln!("multi-host test took {} ms", took.as_millis());
    assert!(took < TEST_BOUND, "took {took:?}, bound {TEST_BOUND:?}");
}
