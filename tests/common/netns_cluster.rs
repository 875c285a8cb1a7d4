//! A cluster whose nodes each run in their own [`Hosts`] namespace,
//! started by the project's own launcher.
//!
//! The cluster directory is laid out by [`Layout`] as for `quire up`; only
//! each node's `listen` is changed to its host's address and
//! [`NODE_PORT`]. Node certificates need nothing new: clients verify the
//! name `quire-node`, which every node certificate carries whatever its
//! address.
//!
//! The nodes are then started by [`quire::cluster::ClusterBuilder`] as
//! node processes, through a small shell script that runs node K inside
//! host K (`ip netns exec`, which execs in place: the launcher's pid, kill
//! and restart handling keep working). Forming needs the admin library call
//! ([`quire::cluster::Launched::form`]), which the `quire` CLI has no
//! command for yet; it runs on a thread moved into the client's host, so
//! no packet of the test leaves the namespaces either way.
//!
//! Nodes added later ([`add_node`]) are made as an operator makes them:
//! `quire node new` in the new host, its listen address set to that
//! host's, and started in that host through the same script.
//! [`quire_in`] runs one cold `quire` process in a host.

use super::netns::{Hosts, NODE_PORT};
use super::{builder, QUIRE};
use quire::cluster::layout::{Layout, NodeSettings};
use quire::cluster::{process, LocalCluster};
use quire_node::config::{Limits, StorageSettings};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Node K's address: host K, [`NODE_PORT`].
pub fn node_addr(hosts: &Hosts, k: usize) -> SocketAddr {
    SocketAddr::from((hosts.addr(k), NODE_PORT))
}

/// The script [`start`] writes into `dir`: it runs node K in host K.
fn launcher(dir: &Path) -> PathBuf {
    dir.join("node-in-host.sh")
}

/// Writes the script that runs `quire --config DIR/node-K/node.toml node`
/// inside host K, and returns its path.
fn write_launcher(hosts: &Hosts, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        r#"#!/bin/sh
# Runs node K of a multi-host test inside host K's network namespace.
# Called by the cluster launcher as: $0 --config DIR/node-K/node.toml node
set -eu
[ "$1" = --config ] || {{ echo "$0: expected --config DIR/node-K/node.toml" >&2; exit 2; }}
k=$(basename "$(dirname "$2")")
exec ip netns exec '{prefix}'"${{k#node-}}" '{quire}' "$@"
"#,
        prefix = hosts.ns_prefix(),
        quire = QUIRE,
    );
    let path = launcher(dir);
    std::fs::write(&path, script).expect("write launcher script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make launcher executable");
    path
}

/// Lays out an `n`-node cluster in `dir/cluster`, starts node K in host K
/// (K = 1..=n) and forms the cluster from host `client`. Dropping the
/// result stops every node; drop it before `hosts`.
pub fn start(hosts: &Hosts, n: usize, client: usize, dir: &Path) -> LocalCluster {
    let layout = Layout::new(dir.join("cluster"));
    let settings = NodeSettings {
        limits: Limits::default(),
        storage: StorageSettings {
            map_size_bytes: 256 << 20,
            ..StorageSettings::default()
        },
        ..NodeSettings::default()
    };
    layout
        .create_with(n, 0, &settings)
        .expect("lay out cluster");
    for k in 1..=n {
        layout
            .write_node_config_at(k, node_addr(hosts, k))
            .expect("node config");
    }
    let launcher = write_launcher(hosts, dir);
    let builder = builder(n).dir(&layout.dir).processes(launcher);
    hosts.run_in(client, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(builder.start())
            .expect("nodes start in their hosts and form a cluster")
    })
}

/// A node process started in its host by [`add_node`]. Dropping it stops
/// the node (SIGTERM, then SIGKILL after a bounded wait); drop it before
/// the directory and the hosts.
pub struct HostNode {
    /// Its number in the cluster directory, which is also its host.
    pub k: usize,
    /// Where it listens: its host's address, [`NODE_PORT`].
    pub addr: SocketAddr,
    child: Child,
}

impl HostNode {
    /// Its process id (the node's own: the launcher execs in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HostNode {
    fn drop(&mut self) {
        process::signal(self.child.id() as i32, process::STOP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
    }
}

/// Adds the next node of the cluster [`start`] laid out in `dir` the way
/// an operator would: `quire node new` run in its host (node K goes to
/// host K, which must exist), its config pointed at that host's address,
/// then started there. Returns once it listens; it is not a member until
/// it joins.
pub fn add_node(hosts: &Hosts, layout: &Layout, dir: &Path) -> HostNode {
    let k = layout
        .read()
        .expect("cluster.toml")
        .expect("a cluster")
        .nodes
        + 1;
    let dir_arg = layout.dir.to_str().expect("a UTF-8 temp dir");
    let created = quire_in(hosts, k, &["--json", "node", "new", "--dir", dir_arg]);
    let config = created["config"].as_str().expect("node new names a config");
    assert!(
        config.ends_with(&format!("node-{k}/node.toml")),
        "node new made {created}, not node-{k}"
    );
    let addr = node_addr(hosts, k);
    layout
        .write_node_config_at(k, addr)
        .expect("node config at the host's address");
    let mut child = process::spawn_node(&launcher(dir), layout, k, 0).expect("start node");
    let deadline = Instant::now() + Duration::from_secs(30);
    let bound = layout.bound_addr_file(k);
    loop {
        let written = std::fs::read_to_string(&bound).ok();
        if let Some(bound) = written.and_then(|t| t.trim().parse::<SocketAddr>().ok()) {
            assert_eq!(bound, addr, "node-{k} bound elsewhere");
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(layout.log_file(k)).unwrap_or_default();
            panic!("node-{k} exited while starting ({status}): {log}");
        }
        assert!(
            Instant::now() < deadline,
            "node-{k} did not start listening"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(hosts.holds(k, child.id()), "node-{k} runs in host {k}");
    HostNode { k, addr, child }
}

/// `quire ARGS` as a fresh process in host `host` (RUST_LOG from
/// `$QUIRE_TEST_LOG`), not yet started.
pub fn quire_command(hosts: &Hosts, host: usize, args: &[&str]) -> Command {
    let mut command = hosts.exec(host, QUIRE);
    command
        .env(
            "RUST_LOG",
            std::env::var("QUIRE_TEST_LOG").unwrap_or_default(),
        )
        .env_remove("QUIRE_CONFIG")
        .args(args);
    command
}

/// The JSON a finished `quire` process printed; panics with its stderr
/// if it failed.
pub fn json_answer(what: &str, out: Output) -> Value {
    assert!(
        out.status.success(),
        "quire {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "quire {what} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `quire ARGS` in host `host` and returns its JSON answer.
pub fn quire_in(hosts: &Hosts, host: usize, args: &[&str]) -> Value {
    let out = quire_command(hosts, host, args)
        .output()
        .expect("run quire in a host");
    json_answer(&format!("{args:?} in host {host}"), out)
}
