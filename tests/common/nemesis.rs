//! The nemesis of the Jepsen-style test: which faults it injects, on which
//! node, and when it heals them, all drawn from one seed.
//!
//! Faults are made real: kill -9 and restart of node processes, SIGSTOP /
//! SIGCONT, and the UDP fault proxy in front of each node (both directions
//! dropped, one direction dropped, a share of datagrams dropped, delay).
//! A node killed and restarted while clock skew is enabled comes back with
//! its clock shifted; the SDK's clock (every client of the test process)
//! can be shifted too. At most `faulty_max` nodes are faulty at a time, so
//! a sloppy quorum can always find N healthy nodes; which faults, on which
//! nodes and in which order follows from the seed (the timing is the real
//! clock's, so a run is reproducible in its schedule, not to the datagram).

use super::proxy::Fault;
use super::TestCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A kind of fault the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// kill -9 a node process; healed by a restart on the same data.
    Kill,
    /// Drop every datagram to and from a node.
    Partition,
    /// Drop datagrams to a node only.
    DropToNode,
    /// Drop datagrams from a node only: its writes land unacknowledged.
    DropFromNode,
    /// Drop 10–50 % of a node's datagrams.
    Loss,
    /// Delay a node's datagrams by 20–400 ms.
    Delay,
    /// SIGSTOP a node process; healed by SIGCONT.
    Pause,
    /// Shift the SDK's clock by up to an hour either way; healed by
    /// setting it back. Not a node fault: it takes no node slot.
    ClientSkew,
}

impl Kind {
    /// Every kind, for the long mode.
    pub const ALL: [Kind; 8] = [
        Kind::Kill,
        Kind::Partition,
        Kind::DropToNode,
        Kind::DropFromNode,
        Kind::Loss,
        Kind::Delay,
        Kind::Pause,
        Kind::ClientSkew,
    ];
}

/// What the nemesis does to one node right now.
#[derive(Clone, Copy, Debug)]
enum Active {
    Killed,
    Proxy(Kind),
    Paused,
}

/// The nemesis: a seeded schedule of faults and heals applied to a
/// proxied cluster of node processes.
pub struct Nemesis {
    rng: StdRng,
    kinds: Vec<Kind>,
    /// Nodes the nemesis may touch: 1..=nodes.
    nodes: usize,
    faulty_max: usize,
    /// Clock shift a restarted node may get (0: no node skew).
    node_skew_ms_max: i64,
    active: BTreeMap<usize, Active>,
    client_skewed: bool,
    /// Whether some node ran with a shifted clock at some point: its
    /// last-write-wins stamps may then misorder writes.
    pub node_skewed: bool,
    started: Instant,
    /// Every action, with the time since the start.
    pub log: Vec<String>,
    /// How many faults of each kind were injected.
    pub counts: BTreeMap<String, usize>,
}

impl Nemesis {
    /// A nemesis over nodes 1..=`nodes` injecting `kinds`, seeded by `seed`.
    /// A non-zero `node_skew_ms_max` restarts killed nodes with a clock
    /// shifted by up to that much either way.
    pub fn new(
        seed: u64,
        kinds: &[Kind],
        nodes: usize,
        faulty_max: usize,
        node_skew_ms_max: i64,
    ) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            kinds: kinds.to_vec(),
            nodes,
            faulty_max,
            node_skew_ms_max,
            active: BTreeMap::new(),
            client_skewed: false,
            node_skewed: false,
            started: Instant::now(),
            log: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// How long to wait before the next step.
    pub fn pause_before_step(&mut self) -> Duration {
        Duration::from_millis(self.rng.gen_range(700..1_800))
    }

    fn note(&mut self, what: String) {
        let at = self.started.elapsed().as_secs_f64();
        self.log.push(format!("{at:.1}s {what}"));
    }

    /// One step: heal a fault or inject one (a coin decides, and the
    /// bound on faulty nodes).
    pub async fn step(&mut self, cluster: &mut TestCluster) {
        if !self.active.is_empty() && self.rng.gen_bool(0.5) {
            let nodes: Vec<usize> = self.active.keys().copied().collect();
            let k = nodes[self.rng.gen_range(0..nodes.len())];
            self.heal(cluster, k).await;
            return;
        }
        let kind = self.kinds[self.rng.gen_range(0..self.kinds.len())];
        if kind == Kind::ClientSkew {
            self.skew_client();
            return;
        }
        if self.active.len() >= self.faulty_max {
            return;
        }
        let healthy: Vec<usize> = (1..=self.nodes)
            .filter(|k| !self.active.contains_key(k))
            .collect();
        let k = healthy[self.rng.gen_range(0..healthy.len())];
        *self.counts.entry(format!("{kind:?}")).or_default() += 1;
        let what = match kind {
            Kind::Kill => {
                cluster.kill(k).await;
                self.active.insert(k, Active::Killed);
                "kill -9".to_string()
            }
            Kind::Pause => {
                assert!(cluster.node(k).pause(true), "node {k} is a process");
                self.active.insert(k, Active::Paused);
                "SIGSTOP".to_string()
            }
            proxied => {
                let fault = match proxied {
                    Kind::Partition => Fault::DropAll,
                    Kind::DropToNode => Fault::DropToNode,
                    Kind::DropFromNode => Fault::DropFromNode,
                    Kind::Loss => Fault::DropShare(self.rng.gen_range(0.1..0.5)),
                    _ => Fault::Delay(Duration::from_millis(self.rng.gen_range(20..400))),
                };
                cluster.proxies[k - 1].set(fault);
                self.active.insert(k, Active::Proxy(proxied));
                format!("{fault:?}")
            }
        };
        self.note(format!("node {k}: {what}"));
    }

    /// Shifts the SDK clock (or sets it back when it is shifted).
    fn skew_client(&mut self) {
        let skew_ms = if self.client_skewed {
            0
        } else {
            *self.counts.entry("ClientSkew".into()).or_default() += 1;
            self.rng.gen_range(-3_600_000..=3_600_000)
        };
        self.client_skewed = skew_ms != 0;
        quire_client::clock::set_skew_ms(skew_ms);
        self.note(format!("client clock {skew_ms:+} ms"));
    }

    /// Ends node K's fault: restart (with a clock skew, if enabled),
    /// SIGCONT, or a clean proxy.
    async fn heal(&mut self, cluster: &mut TestCluster, k: usize) {
        let Some(active) = self.active.remove(&k) else {
            return;
        };
        let what = match active {
            Active::Killed => {
                let skew_ms = if self.node_skew_ms_max > 0 && self.rng.gen_bool(0.5) {
                    self.rng
                        .gen_range(-self.node_skew_ms_max..=self.node_skew_ms_max)
                } else {
                    0
                };
                self.node_skewed |= skew_ms != 0;
                cluster.node(k).clock_skew_ms = skew_ms;
                cluster.restart(k).await;
                format!("restart (clock {skew_ms:+} ms)")
            }
            Active::Paused => {
                cluster.node(k).pause(false);
                "SIGCONT".to_string()
            }
            Active::Proxy(kind) => {
                cluster.proxies[k - 1].set(Fault::Pass);
                format!("heal {kind:?}")
            }
        };
        self.note(format!("node {k}: {what}"));
    }

    /// Heals every fault (clock skews of nodes stay: they are a
    /// condition, not a fault to heal).
    pub async fn heal_all(&mut self, cluster: &mut TestCluster) {
        let nodes: Vec<usize> = self.active.keys().copied().collect();
        for k in nodes {
            self.heal(cluster, k).await;
        }
        if self.client_skewed {
            self.skew_client();
        }
    }

    /// A one-line summary: faults injected by kind.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        counts.join(", ")
    }
}
