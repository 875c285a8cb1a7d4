//! The writer queue is bounded in bytes: on a real node process whose
//! queue may hold 3 MiB, 12 clients putting 1 MiB values as fast as the
//! node takes them fill the queue to its bound and never past it (the
//! node's own gauge, scraped over HTTP all along), and every put is
//! acknowledged: a write that does not fit waits, it is not refused.
//! (The client's timeouts are raised: a put waiting behind a full queue
//! takes longer than the 1 s a client gives a node by default.)

mod common;

use common::{builder, TestCluster, QUIRE};
use quire::config::Timeouts;
use quire::Context;
use quire_node::config::Limits;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The queue's bound: room for three of the values below.
const QUEUE_BYTES: u64 = 3 * MIB;

/// The node's metrics address, as `quire status --json` reports it.
fn metrics_addr(cluster: &TestCluster) -> String {
    let out = std::process::Command::new(QUIRE)
        .arg("--config")
        .arg(cluster.layout().client_config())
        .args(["status", "--json"])
        .output()
        .expect("run quire status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = status["nodes"][0]["metrics"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics URL in {status}"));
    url.strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("an http URL")
        .to_string()
}

/// `quire_node_writer_queue_bytes` from the node's metrics endpoint.
fn queue_bytes(addr: &str) -> Option<f64> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix("quire_node_writer_queue_bytes "))
        .and_then(|v| v.trim().parse().ok())
}

/// Sets its flag when dropped, panics included.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_queue_fills_to_its_byte_bound_and_never_past_it() {
    let limits = Limits {
        // One 1 MiB value and its envelope per frame; the queue must hold
        // one frame.
        frame_bytes_max: 2 * MIB as u32,
        ..Limits::default()
    };
    let cluster = TestCluster::from(
        builder(1)
            .processes(QUIRE)
            .node_limits(limits)
            .writer_queue_bytes_max(QUEUE_BYTES)
            // Room for every put below (virtual until used).
            .map_size_bytes(1 << 30)
            .client_timeouts(Timeouts {
                request_ms: 30_000,
                attempt_ms: 30_000,
                ..Timeouts::default()
            }),
        false,
    )
    .await;
    let addr = metrics_addr(&cluster);
    assert!(queue_bytes(&addr).is_some(), "the node serves the gauge");
    let client = cluster.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    // Whatever happens below, the watcher stops with the test.
    let _stop_watching = StopOnDrop(stop.clone());
    let watcher = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let mut highest = 0.0f64;
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Some(v) = queue_bytes(&addr) {
                    highest = highest.max(v);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (highest, samples)
        })
    };
    let mut writers = tokio::task::JoinSet::new();
    let until = Instant::now() + Duration::from_secs(4);
    for w in 0..12 {
        let client = client.clone();
        writers.spawn(async move {
            let mut acked = 0u64;
            let mut i = 0u64;
            // At most 20 each: 240 MiB in all, well within the map.
            while Instant::now() < until && i < 20 {
                let key = format!("w{w}-{i}").into_bytes();
                let value = vec![w as u8; MIB as usize];
                client
                    .put("default", &key, value, &Context::empty())
                    .await
                    .unwrap_or_else(|e| panic!("put {w}-{i} refused: {e}"));
                acked += 1;
                i += 1;
            }
            acked
        });
    }
    let mut acked = 0;
    while let Some(n) = writers.join_next().await {
        acked += n.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (highest, samples) = watcher.await.unwrap();
    eprintln!(
        "{acked} puts of 1 MiB acknowledged; writer queue at most {:.2} MiB over {samples} samples (bound {} MiB)",
        highest / MIB as f64,
        QUEUE_BYTES / MIB
    );
    assert!(acked >= 12, "only {acked} puts");
    assert!(samples >= 20, "only {samples} scrapes");
    assert!(
        highest <= QUEUE_BYTES as f64,
        "the queue held {highest} bytes, past its bound of {QUEUE_BYTES}"
    );
    assert!(
        highest >= 2.0 * MIB as f64,
        "the queue never filled ({highest} bytes): the test did not reach the bound"
    );
}
