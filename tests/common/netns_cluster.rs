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

use super::netns::{Hosts, NODE_PORT};
use super::{builder, QUIRE};
use quire::cluster::layout::{Layout, NodeSettings};
use quire::cluster::LocalCluster;
use quire_node::config::{Limits, StorageSettings};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Node K's address: host K, [`NODE_PORT`].
pub fn node_addr(hosts: &Hosts, k: usize) -> SocketAddr {
    SocketAddr::from((hosts.addr(k), NODE_PORT))
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
    let path = dir.join("node-in-host.sh");
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
