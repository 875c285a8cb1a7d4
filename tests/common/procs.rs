//! A cluster of node *processes* (`quire --config node.toml node`), for
//! tests that kill -9 a node. Optionally each node sits behind a fault
//! proxy, and the membership names the proxies.

use super::proxy::FaultProxy;
use quire::admin::form_cluster;
use quire::local::layout::Layout;
use quire::local::process::spawn_node;
use quire::shared::Membership;
use quire::ClientConfig;
use quire_client::transport::Transport;
use rustix::process::{kill_process, Pid, Signal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

const QUIRE: &str = env!("CARGO_BIN_EXE_quire");

/// Node processes of one cluster; every process is killed on drop.
pub struct ProcCluster {
    /// Holds the cluster directory.
    pub dir: tempfile::TempDir,
    /// The directory layout (configs, certificates, data).
    pub layout: Layout,
    /// Node K's process (index K-1), while it runs.
    pub children: Vec<Option<Child>>,
    /// Node K's own address (index K-1), fixed after the first start.
    pub node_addrs: Vec<SocketAddr>,
    /// Proxies in front of the nodes (same order), if proxied.
    pub proxies: Vec<FaultProxy>,
    /// The membership document.
    pub membership: Membership,
    /// A client config reaching every member.
    pub client_config: ClientConfig,
}

fn wait_for_addr(layout: &Layout, k: usize) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(layout.bound_addr_file(k)) {
            if let Ok(addr) = text.trim().parse() {
                return addr;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node-{k} never started listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl ProcCluster {
    /// Starts `n` node processes (behind proxies if `proxied`) and forms a
    /// cluster with the `default` store.
    pub async fn start(n: usize, proxied: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("cluster"));
        let file = layout.create(n, 0).expect("cluster directory");
        let mut children = Vec::new();
        let mut node_addrs = Vec::new();
        for k in 1..=n {
            children.push(Some(spawn_node(QUIRE.as_ref(), &layout, k).expect("spawn")));
        }
        for k in 1..=n {
            let addr = wait_for_addr(&layout, k);
            // Restarts come back on the same address.
            layout.write_node_config_at(k, addr).unwrap();
            node_addrs.push(addr);
        }
        let mut proxies = Vec::new();
        if proxied {
            for addr in &node_addrs {
                proxies.push(FaultProxy::start(*addr).await);
            }
        }
        let members: Vec<String> = if proxied {
            proxies.iter().map(|p| p.addr.to_string()).collect()
        } else {
            node_addrs.iter().map(|a| a.to_string()).collect()
        };
        layout.write_client_config(members.clone()).unwrap();
        let client_config = ClientConfig::load(&layout.client_config()).unwrap();
        let transport = Transport::new(&client_config.tls, &client_config.timeouts).unwrap();
        let membership = form_cluster(
            &transport,
            file.id().unwrap(),
            &members,
            Vec::new(),
            Duration::from_secs(30),
        )
        .await
        .expect("cluster forms");
        transport.close();
        Self {
            dir,
            layout,
            children,
            node_addrs,
            proxies,
            membership,
            client_config,
        }
    }

    /// Node K's pid, while it runs.
    pub fn pid(&self, k: usize) -> Option<u32> {
        self.children[k - 1].as_ref().map(Child::id)
    }

    /// kill -9 node K and reap it.
    pub fn kill(&mut self, k: usize) {
        if let Some(mut child) = self.children[k - 1].take() {
            let pid = Pid::from_raw(child.id() as i32).unwrap();
            let _ = kill_process(pid, Signal::KILL);
            let _ = child.wait();
        }
    }

    /// Restarts node K on its address and waits until it listens.
    pub fn restart(&mut self, k: usize) {
        assert!(self.children[k - 1].is_none(), "node-{k} is running");
        let _ = std::fs::remove_file(self.layout.bound_addr_file(k));
        let child = spawn_node(QUIRE.as_ref(), &self.layout, k).expect("respawn");
        self.children[k - 1] = Some(child);
        let addr = wait_for_addr(&self.layout, k);
        assert_eq!(addr, self.node_addrs[k - 1], "node-{k} came back elsewhere");
    }

    /// Whether node K runs.
    pub fn running(&self, k: usize) -> bool {
        self.children[k - 1].is_some()
    }

    /// The node number of member `id`.
    pub fn k_of(&self, id: u64) -> usize {
        let addr = &self.membership.member(id).expect("member").addr;
        let pos = if self.proxies.is_empty() {
            self.node_addrs.iter().position(|a| a.to_string() == *addr)
        } else {
            self.proxies
                .iter()
                .position(|p| p.addr.to_string() == *addr)
        };
        pos.expect("a node for the member") + 1
    }

    /// The log of node K, for failure messages.
    pub fn log(&self, k: usize) -> PathBuf {
        self.layout.log_file(k)
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for k in 1..=self.children.len() {
            self.kill(k);
        }
    }
}
