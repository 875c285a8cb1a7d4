//! Power-loss harness: a cluster of node processes whose data directories
//! live on [`LazyMount`], writers that record every acknowledged write
//! with the moment it was acknowledged, the cut (SIGKILL every node, then
//! drop what was never fsynced) and a survey of what survived on each
//! replica.
//!
//! Each `node-K/data` of the cluster directory is a symlink to `node-K`
//! on the mount; configs, certificates and logs stay on the real disk, so
//! a node's log survives the cut and names what went wrong.

use super::lazyfs::{CutReport, LazyMount};
use super::{TestCluster, QUIRE};
use quire::cluster::layout::{Layout, NodeSettings};
use quire::cluster::process;
use quire::shared::wire::{Reply, Request};
use quire::shared::{NodeId, StoreConfig};
use quire::{Client, Context};
use quire_node::config::{NodeConfig, StorageSettings};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One acknowledged write.
#[derive(Clone, Debug)]
pub struct Acked {
    /// The key, unique per write.
    pub key: String,
    /// The value written.
    pub value: Vec<u8>,
    /// The nodes that acknowledged it.
    pub on: Vec<NodeId>,
    /// When the client saw the acknowledgment.
    pub at: Instant,
}

/// Concurrent writers of unique keys to one store.
pub struct Load {
    acked: Arc<Mutex<Vec<Acked>>>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `writers` tasks, each putting up to `writes_max` new keys to `store`
    /// one after the other, until stopped.
    pub fn start(client: &Client, store: &str, writers: usize, writes_max: usize) -> Self {
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..writers)
            .map(|w| {
                let (client, store) = (client.clone(), store.to_owned());
                let (acked, failed, stop) = (acked.clone(), failed.clone(), stop.clone());
                tokio::spawn(async move {
                    for i in 0..writes_max {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let key = format!("w{w}-{i}");
                        let value = format!("value-{w}-{i}").into_bytes();
                        let put = client
                            .put(&store, key.as_bytes(), value.clone(), &Context::empty())
                            .await;
                        match put {
                            Ok(put) => acked.lock().unwrap().push(Acked {
                                key,
                                value,
                                on: put.stored_on,
                                at: Instant::now(),
                            }),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            acked,
            failed,
            stop,
            writers,
        }
    }

    /// Waits until `n` writes are acknowledged; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acked.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged within {timeout:?} ({} failed)",
                self.acked.lock().unwrap().len(),
                self.failed.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the writers (a put in flight is abandoned: not acknowledged)
    /// and returns the acknowledged writes and the number of failed puts.
    pub async fn stop(self) -> (Vec<Acked>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            w.abort();
            let _ = w.await;
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, self.failed.load(Ordering::Relaxed))
    }
}

/// What the replicas hold of the acknowledged writes after a cut.
#[derive(Debug, Default)]
pub struct Survey {
    /// Writes held by no replica at all.
    pub lost: Vec<Acked>,
    /// Writes that some node which acknowledged them no longer holds (each
    /// write once, however many of its acknowledgers dropped it).
    pub dropped: Vec<Acked>,
}

/// A cluster of node processes with their data directories on LazyFS.
pub struct PowerCluster {
    /// The nodes; declared first so they stop before the unmount.
    pub cluster: TestCluster,
    /// The filesystem under every data directory.
    pub fs: LazyMount,
    /// Configs, certificates and logs (on the real disk).
    _dir: tempfile::TempDir,
}

impl PowerCluster {
    /// Three node processes on LazyFS, formed with `stores` (the `default`
    /// sync store when empty). `None`, after a loud `SKIPPED` line on
    /// stderr, when this machine has no usable FUSE.
    pub async fn start(test: &str, stores: Vec<StoreConfig>) -> Option<Self> {
        let fs = match LazyMount::mount() {
            Ok(fs) => fs,
            Err(why) => {
                // Straight to the process's stderr: the test harness
                // captures `eprintln!` of a passing test, and a skip must
                // never pass unseen.
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "SKIPPED: {test}: FUSE is unavailable here ({}); the power-loss test did NOT run",
                    why.0
                );
                return None;
            }
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let layout = Layout::new(dir.path().join("cluster"));
        let settings = NodeSettings {
            limits: Default::default(),
            storage: StorageSettings {
                map_size_bytes: 256 << 20,
                ..Default::default()
            },
            ..NodeSettings::default()
        };
        layout
            .create_with(3, 0, &settings)
            .expect("cluster directory");
        for k in 1..=3 {
            let data = layout.node_dir(k).join("data");
            let on_fs = fs.path().join(format!("node-{k}"));
            std::fs::create_dir(&on_fs).expect("data directory on LazyFS");
            std::fs::remove_dir(&data).expect("the layout's data directory");
            std::os::unix::fs::symlink(&on_fs, &data).expect("data directory symlink");
        }
        let builder = super::builder(3)
            .processes(QUIRE)
            .dir(&layout.dir)
            .stores(stores);
        let cluster = TestCluster::from(builder, false).await;
        Some(Self {
            cluster,
            fs,
            _dir: dir,
        })
    }

    /// SIGKILLs every node at once and waits for each to be gone; returns
    /// the moment just before the signals.
    pub async fn kill_all(&mut self) -> Instant {
        let at = Instant::now();
        for pid in self.cluster.pids() {
            process::signal(pid as i32, process::KILL);
        }
        for k in 1..=3 {
            self.cluster.kill(k).await;
        }
        at
    }

    /// The power cut: every node SIGKILLed at once, then everything not
    /// fsynced dropped. Returns the moment of the cut and what it dropped.
    pub async fn cut(&mut self) -> (Instant, CutReport) {
        let at = self.kill_all().await;
        (at, self.fs.cut())
    }

    /// Starts every node again; panics (with its log) if LMDB does not
    /// open, as the node then exits before listening.
    pub async fn restart_all(&mut self) {
        for k in 1..=3 {
            if let Err(e) = self.cluster.node(k).start().await {
                panic!("node-{k} does not come back after the cut: {e}");
            }
        }
    }

    /// Switches the `test_skip_fsync` hook in every node's config; it
    /// takes effect at the next start.
    pub fn set_skip_fsync(&self, on: bool) {
        for k in 1..=3 {
            let path = self.cluster.layout().node_config(k);
            let text = std::fs::read_to_string(&path).expect("node config");
            let mut config: NodeConfig = toml::from_str(&text).expect("node config parses");
            config.storage.test_skip_fsync = on;
            let text = toml::to_string_pretty(&config).expect("node config encodes");
            std::fs::write(&path, text).expect("node config written");
        }
    }

    /// Asks every node, directly, for every acknowledged write.
    pub async fn survey(&self, store: &str, acked: &[Acked]) -> Survey {
        let transport = self.cluster.transport();
        let ids: Vec<(NodeId, String)> = self
            .cluster
            .nodes
            .iter()
            .map(|n| (n.node_id, n.addr()))
            .collect();
        let mut survey = Survey::default();
        // A few dozen requests in flight: quick, and far below the limits.
        for chunk in acked.chunks(32) {
            let mut asks = tokio::task::JoinSet::new();
            for (i, write) in chunk.iter().enumerate() {
                for (id, addr) in &ids {
                    let (t, addr, id) = (transport.clone(), addr.clone(), *id);
                    let get = Request::Get {
                        store: store.into(),
                        key: write.key.clone().into_bytes(),
                        hint: None,
                    };
                    let value = write.value.clone();
                    asks.spawn(async move {
                        let answer = t.call(&addr, &get, Duration::from_secs(5)).await;
                        let held = match answer.map(|a| a.result) {
                            Ok(Ok(Reply::Object(Some(o)))) => {
                                o.values().any(|v| v.data.as_ref() == Some(&value))
                            }
                            Ok(Ok(Reply::Object(None))) => false,
                            other => panic!("node {addr} did not answer a get: {other:?}"),
                        };
                        (i, id, held)
                    });
                }
            }
            let mut holders = vec![Vec::new(); chunk.len()];
            while let Some(done) = asks.join_next().await {
                let (i, id, held) = done.expect("survey task");
                if held {
                    holders[i].push(id);
                }
            }
            for (write, held_by) in chunk.iter().zip(holders) {
                if held_by.is_empty() {
                    survey.lost.push(write.clone());
                }
                if write.on.iter().any(|id| !held_by.contains(id)) {
                    survey.dropped.push(write.clone());
                }
            }
        }
        survey
    }
}
