//! Hostile but authenticated peers against a real node process: frames
//! announced at 16 MiB and never sent, on every stream a connection may
//! open; slow senders; element counts in the billions; a two-million-member
//! membership document, sent over one connection and over a new one each
//! time; thousands of connections.
//!
//! Each test measures an honest client's latency without the attack and
//! with it, in alternate windows on the same node, and reads the node
//! process's CPU time (`/proc/PID/stat`) and memory (`/proc/PID/status`:
//! `VmRSS` before, `VmHWM`, the peak, after). The bounds asserted are
//! stated beside each test; the measured figures are printed
//! (`--nocapture`) and recorded in the README's limits section.
//!
//! Two bounds are asserted on every attack. What it costs the node: its
//! CPU time per honest get may grow by at most half. And the honest
//! client's tail: every honest request must succeed, and its p99.9 with
//! the attack must stay within 2x the baseline.
//!
//! The node is the optimized binary (`common::optimized`), as users run
//! it: these are bounds on the product, and a debug build spends several
//! times longer on each refused connection attempt (against a debug node
//! the connection burst measured 1.0x to 2.35x; against a release node,
//! 1.22x to 1.64x in fifteen runs with the windows below). The attacker,
//! the honest client and the node share two cores here; a control
//! neighbour that is as busy as an attacker but never talks to the node
//! shows what that sharing alone does (`a_busy_neighbour_that_never_talks_to_the_node_is_the_floor`:
//! 0.86x to 1.43x against a release node, six and twelve windows).

mod common;

use common::TestCluster;
use quinn::{ConnectionError, TransportErrorCode};
use quire::shared::wire::{encode_frame, ErrorCode, Reply, Request, Response};
use quire::shared::{Member, NodeId, Value, VersionVector};
use quire_net::frame::read_frame;
use quire_net::tls::{TlsFiles, NODE_SERVER_NAME};
use quire_node::config::Limits;
use quire_node::STRUCK_CONNECTION_CODE;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);
/// One test at a time: each measures latency, and a second attack running
/// beside it on the same two cores would be measured too.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Windows the honest client measures in, each way (see `under_attack`):
/// twelve give each side about 60 000 gets against an optimized node, so
/// a p99.9 rests on some 60 of them (with six, one run in about twenty of
/// the connection burst came within 1 % of the bound).
const ROUNDS: usize = 12;
/// How long one measuring window lasts.
const WINDOW: Duration = Duration::from_millis(400);
/// The pause before each window, for the attack to start or drain.
const SETTLE: Duration = Duration::from_millis(100);
/// The honest client's p99.9 during an attack may be at most this many
/// times its baseline.
const P999_RATIO_MAX: f64 = 2.0;
/// The node's CPU time per honest get with the attack, at most this many
/// times what it is without: an attack the node refuses cheaply costs it
/// next to nothing (measured: 0.92x to 1.06x), while one it must take in
/// whole does not (a flood of refused documents, 1.2 GiB in 2 s when the
/// node took no strikes, made it 2.8x).
const NODE_CPU_RATIO_MAX: f64 = 1.5;

/// One node process serving the `default` store.
struct Node {
    cluster: TestCluster,
    addr: SocketAddr,
    pid: u32,
    tls: TlsFiles,
}

async fn node_process(limits: Limits) -> Node {
    let builder = common::builder(1)
        .processes(common::optimized::quire())
        .node_limits(limits);
    let mut cluster = TestCluster::from(builder, false).await;
    let addr = cluster.node_addrs[0];
    let pid = cluster.pid(1).expect("the node runs as a process");
    let tls = cluster.layout().client_tls();
    Node {
        cluster,
        addr,
        pid,
        tls,
    }
}

/// A line of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
fn memory_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("node status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .expect("the field is there");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

const MIB: u64 = 1 << 20;

/// CPU time process `pid` has used so far (user and system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("node stat");
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel counts in USER_HZ, 100 a second on Linux.
    Duration::from_millis(ticks * 10)
}

/// Sequential gets of a stored key for `window`, added to `out`.
async fn honest_latencies(node: &Node, window: Duration, out: &mut Vec<Duration>) {
    let t = node.cluster.transport();
    let addr = node.addr.to_string();
    let get = Request::Get {
        store: "default".into(),
        key: b"honest".to_vec(),
        hint: None,
    };
    let put = Request::Put {
        store: "default".into(),
        key: b"honest".to_vec(),
        value: Value::bytes(b"v".to_vec(), 1),
        context: VersionVector::new(),
        hint: None,
    };
    assert!(matches!(
        t.call(&addr, &put, T).await.expect("put").result,
        Ok(Reply::Stored(_))
    ));
    let started = Instant::now();
    while started.elapsed() < window {
        let at = Instant::now();
        let answer = t
            .call(&addr, &get, T)
            .await
            .expect("the honest get is served");
        assert!(
            matches!(answer.result, Ok(Reply::Object(Some(_)))),
            "{answer:?}"
        );
        out.push(at.elapsed());
    }
}

/// The kernel's count of UDP datagrams dropped because a socket's receive
/// buffer was full (`RcvbufErrors` in `/proc/net/snmp`), machine-wide:
/// printed beside each attack, since a dropped honest packet waits for
/// QUIC's probe timeout (25 ms and more) before it is resent.
fn udp_receive_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn p999(sorted: &[Duration]) -> Duration {
    sorted[((sorted.len() as f64) * 0.999) as usize].min(*sorted.last().unwrap())
}

/// Whether an attack runs: attacks send while it is open, idle while it
/// is shut, and end when it is stopped.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    stopped: AtomicBool,
}

impl Gate {
    /// Waits while the gate is shut; false once the attack is to end.
    async fn open(&self) -> bool {
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return false;
            }
            if self.open.load(Ordering::Relaxed) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Whether the gate is open now (never waits).
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed) && !self.stopped()
    }
}

/// The honest client's p99.9 without and with `attack`, and the node's
/// memory growth: peak during the attack less resident before it.
///
/// The honest client measures in alternate windows, the attack shut and
/// open ([`ROUNDS`] of each, [`WINDOW`] long), so that both sides see the
/// same neighbours on this shared machine: measured one after the other
/// (2 s quiet, then 2 s attacked), an attack that did nothing at all
/// scattered from 0.47x to 1.91x.
async fn under_attack<F, Fut>(node: &Node, name: &str, attack: F) -> (Duration, Duration, u64)
where
    F: FnOnce(Arc<Gate>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        // Node and honest client on the first core, the attacker alone on
        // the second (see `on_own_core`).
        pin_process(std::process::id(), &[0]);
        pin_process(node.pid, &[0]);
    }
    let rss_before = memory_bytes(node.pid, "VmRSS:");
    let drops_before = udp_receive_buffer_drops();
    let gate = Arc::new(Gate::default());
    let attacker = on_own_core(attack, gate.clone(), (cores >= 2).then_some(1));
    let (mut quiet, mut attacked) = (Vec::new(), Vec::new());
    let (mut cpu_quiet, mut cpu_attacked) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        gate.open.store(false, Ordering::Relaxed);
        // Let what the attack had sent drain before measuring quiet.
        tokio::time::sleep(SETTLE).await;
        let cpu = cpu_time(node.pid);
        honest_latencies(node, WINDOW, &mut quiet).await;
        cpu_quiet += cpu_time(node.pid) - cpu;
        gate.open.store(true, Ordering::Relaxed);
        // Give the attack a moment to build up before measuring.
        tokio::time::sleep(SETTLE).await;
        let cpu = cpu_time(node.pid);
        honest_latencies(node, WINDOW, &mut attacked).await;
        cpu_attacked += cpu_time(node.pid) - cpu;
    }
    gate.stopped.store(true, Ordering::Relaxed);
    let joined = tokio::task::spawn_blocking(move || attacker.join());
    // The connection attack may still be making its 2000 attempts.
    tokio::time::timeout(Duration::from_secs(30), joined)
        .await
        .expect("the attack ends within 30 s of being stopped")
        .expect("the attacker's thread")
        .expect("the attacker does not panic");
    let peak = memory_bytes(node.pid, "VmHWM:");
    let all: Vec<usize> = (0..cores).collect();
    pin_process(std::process::id(), &all);
    pin_process(node.pid, &all);
    let growth = peak.saturating_sub(rss_before);
    quiet.sort();
    attacked.sort();
    let (baseline, during) = (p999(&quiet), p999(&attacked));
    println!(
        "{name}: honest p99.9 {baseline:?} without, {during:?} with the attack ({:.2}x; {} and {} gets); node CPU {cpu_quiet:?} without, {cpu_attacked:?} with; node RSS {} MiB before, peak {} MiB (+{} MiB); datagrams the kernel dropped at full receive buffers meanwhile (any socket): {}",
        during.as_secs_f64() / baseline.as_secs_f64(),
        quiet.len(),
        attacked.len(),
        rss_before / MIB,
        peak / MIB,
        growth / MIB,
        udp_receive_buffer_drops().saturating_sub(drops_before),
    );
    assert!(
        during.as_secs_f64() <= P999_RATIO_MAX * baseline.as_secs_f64(),
        "{name}: honest p99.9 went from {baseline:?} to {during:?}"
    );
    // What the attack costs the node itself: its CPU per honest get.
    let per_get = |cpu: Duration, gets: usize| cpu.as_secs_f64() / gets.max(1) as f64;
    let cost = per_get(cpu_attacked, attacked.len()) / per_get(cpu_quiet, quiet.len());
    assert!(
        cost <= NODE_CPU_RATIO_MAX,
        "{name}: the node spent {cost:.2}x the CPU per honest get under the attack"
    );
    (baseline, during, growth)
}

/// Runs an attack on a thread of its own, with a runtime of its own,
/// pinned to `core` while the node and the honest client keep to another.
/// On one machine the attacker's own work (making and encrypting what it
/// sends) would otherwise take the honest client's CPU and be counted as
/// the node's unfairness; a real attacker runs on a machine of its own.
/// The node still receives and handles every byte this one sends, at full
/// speed.
fn on_own_core<F, Fut>(
    attack: F,
    gate: Arc<Gate>,
    core: Option<usize>,
) -> std::thread::JoinHandle<()>
where
    F: FnOnce(Arc<Gate>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        if let Some(core) = core {
            pin_thread(rustix::thread::gettid(), &[core]);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the attacker's runtime");
        runtime.block_on(attack(gate));
    })
}

/// Lets thread `tid` run only on `cores`.
fn pin_thread(tid: rustix::process::Pid, cores: &[usize]) {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cores {
        set.set(c);
    }
    // A thread that ended meanwhile has nothing left to pin.
    let _ = rustix::thread::sched_setaffinity(Some(tid), &set);
}

/// Lets every thread of process `pid` run only on `cores` (threads it
/// starts later inherit that).
fn pin_process(pid: u32, cores: &[usize]) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().parse::<i32>().ok();
        if let Some(tid) = tid.and_then(rustix::process::Pid::from_raw) {
            pin_thread(tid, cores);
        }
    }
}

/// A client endpoint with the cluster's client certificate, sending from
/// `ip` (any 127.0.0.0/8 address is this machine's, so several peers can
/// be told apart by the node).
fn endpoint(tls: &TlsFiles, ip: &str) -> quinn::Endpoint {
    let quic = quire_net::tls::client_config(tls).expect("client tls");
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(30).try_into().unwrap()));
    config.transport_config(Arc::new(transport));
    let mut ep = quinn::Endpoint::client(format!("{ip}:0").parse().unwrap()).expect("bind");
    ep.set_default_client_config(config);
    ep
}

async fn connect(
    ep: &quinn::Endpoint,
    addr: SocketAddr,
) -> Result<quinn::Connection, ConnectionError> {
    ep.connect(addr, NODE_SERVER_NAME).expect("connect").await
}

/// Frames announced at 16 MiB with 1 KiB sent, on every stream of 16
/// connections (1024 streams: 16 GiB announced), opened again as the read
/// deadline cuts them off. Bound: the node grows by less than 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_announced_and_never_sent_cost_the_node_nothing_and_are_cut_off() {
    let _serial = SERIAL.lock().await;
    let streams_max = 64u32;
    let limits = Limits {
        streams_per_connection_max: streams_max,
        request_read_timeout_ms: 1_000,
        ..Limits::default()
    };
    let node = node_process(limits).await;
    let ep = endpoint(&node.tls, "127.0.0.2");

    // One connection at its stream cap: the next stream is not granted.
    let probe = &connect(&ep, node.addr).await.expect("connects");
    let mut held = Vec::new();
    for _ in 0..streams_max {
        let (mut send, recv) = probe.open_bi().await.unwrap();
        send.write_all(&(16u32 << 20).to_be_bytes()).await.unwrap();
        held.push((send, recv));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), probe.open_bi())
            .await
            .is_err(),
        "a stream past streams_per_connection_max was granted"
    );
    // The deadline cuts each one off with a typed answer, and stops the
    // sender; the stream slots come back.
    let (send, mut recv) = held.pop().unwrap();
    let answer: Response = read_frame(&mut recv, 1 << 20).await.expect("an answer");
    assert_eq!(answer.result.unwrap_err().code, ErrorCode::Unavailable);
    assert_eq!(send.stopped().await.ok().flatten(), Some(1u32.into()));
    drop(held);
    tokio::time::timeout(T, probe.open_bi())
        .await
        .expect("slots come back after the deadline")
        .unwrap();

    let cut_off = Arc::new(AtomicU64::new(0));
    let counted = cut_off.clone();
    let (tls, addr) = (node.tls.clone(), node.addr);
    let (_baseline, _during, growth) = under_attack(&node, "unsent frames", move |gate| {
        async move {
            let ep = endpoint(&tls, "127.0.0.2");
            let mut conns = Vec::new();
            for _ in 0..16 {
                conns.push(connect(&ep, addr).await.expect("connects"));
            }
            let mut tasks = tokio::task::JoinSet::new();
            for conn in conns {
                for _ in 0..streams_max {
                    let (conn, gate, counted) = (conn.clone(), gate.clone(), counted.clone());
                    tasks.spawn(async move {
                        while gate.open().await {
                            let Ok(Ok((mut send, mut recv))) =
                                tokio::time::timeout(Duration::from_millis(500), conn.open_bi())
                                    .await
                            else {
                                continue;
                            };
                            let _ = send.write_all(&(16u32 << 20).to_be_bytes()).await;
                            let _ = send.write_all(&[7u8; 1024]).await;
                            if let Ok(Ok(answer)) = tokio::time::timeout(
                                Duration::from_secs(3),
                                read_frame::<Response>(&mut recv, 1 << 20),
                            )
                            .await
                            {
                                if matches!(answer.result, Err(e) if e.code == ErrorCode::Unavailable) {
                                    counted.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    });
                }
            }
            while tasks.join_next().await.is_some() {}
        }
    })
    .await;
    let cut_off = cut_off.load(Ordering::Relaxed);
    println!("unsent frames: {cut_off} streams cut off by the read deadline");
    assert!(cut_off >= 1024, "only {cut_off} streams were cut off");
    assert!(
        growth < 64 * MIB,
        "16 GiB announced made the node grow by {} MiB",
        growth / MIB
    );
}

/// Element counts in the billions (a context, an object's entries, a
/// segment list) and a membership document of two million members, sent
/// over and over on 8 streams: the counts are refused with `Malformed` as
/// they decode, the 11 MiB document with `FrameTooLarge` from its first
/// chunk (past the 4 MiB document cap). The node's byte budget for large frames is 32 MiB here, and
/// so is the connection's QUIC window. Bound: the node grows by less than
/// 160 MiB: that budget and what QUIC holds unread for the one connection
/// (64 MiB together), times 2.5 for buffers that double as they grow and
/// memory the allocator keeps (measured: 63 to 96 MiB). Without the count caps the document alone would
/// decode into 128 MiB of members per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_element_counts_and_a_two_million_member_document_are_refused_cheaply() {
    let _serial = SERIAL.lock().await;
    let node = node_process(Limits {
        request_bytes_in_flight_max: 32 * MIB,
        connection_window_bytes: 32 << 20,
        ..Limits::default()
    })
    .await;
    let mut doc = node.cluster.membership.clone();
    doc.epoch += 1;
    doc.members = (0..2_000_000u64)
        .map(|id| Member {
            id: NodeId(id),
            addr: String::new(),
            zone: String::new(),
            weight: 1,
        })
        .collect();
    let big = Arc::new(encode_frame(&Request::PutMembership {
        membership: Box::new(doc),
        base: None,
    }));
    println!(
        "two-million-member document: {} MiB",
        big.len() as u64 / MIB
    );
    // Hand-made payloads: tag, store "default", key "k", then a length of
    // 2^32 - 1 where the elements would start.
    let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut prefix = vec![7u8];
    prefix.extend_from_slice(b"default");
    prefix.extend_from_slice(&[1, b'k']);
    let framed = |tag: u8, body: &[u8]| {
        let mut payload = vec![tag];
        payload.extend_from_slice(body);
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        frame
    };
    // Put: value (timestamp 1, some bytes), then the context's entries.
    let mut put = prefix.clone();
    put.extend_from_slice(&[1, 1, 1, 9]);
    put.extend_from_slice(&huge);
    // Replicate: the object's entries.
    let mut replicate = prefix.clone();
    replicate.extend_from_slice(&huge);
    // ScanSegment: partition 0, then the segment list.
    let mut scan = vec![7u8];
    scan.extend_from_slice(b"default");
    scan.push(0);
    scan.extend_from_slice(&huge);
    let small: Arc<Vec<Vec<u8>>> = Arc::new(vec![
        framed(2, &put),
        framed(3, &replicate),
        framed(9, &scan),
    ]);

    let ep = endpoint(&node.tls, "127.0.0.2");
    let conn = connect(&ep, node.addr).await.expect("connects");
    // Each refusal is typed and the connection keeps serving: the counts
    // are refused as they decode, the document from its first byte (a
    // membership request past the document cap is not read at all).
    for (frame, code) in small
        .iter()
        .map(|f| (f, ErrorCode::Malformed))
        .chain([(&*big, ErrorCode::FrameTooLarge)])
    {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        // The node may stop the stream before all of it is sent.
        let _ = quire_net::frame::write_encoded(&mut send, frame).await;
        let answer: Response = read_frame(&mut recv, 1 << 20).await.expect("an answer");
        let e = answer.result.unwrap_err();
        assert_eq!(e.code, code, "{e:?}");
    }

    // Then the flood, first on one connection, then on a new connection
    // for every frame (which must buy the attacker nothing).
    for reconnect in [false, true] {
        let flood = Flood {
            tls: node.tls.clone(),
            addr: node.addr,
            big: big.clone(),
            small: small.clone(),
            refused: Arc::new(AtomicU64::new(0)),
            sent: Arc::new(AtomicU64::new(0)),
            struck_off: Arc::new(AtomicU64::new(0)),
            reconnect,
        };
        let (refused, sent) = (flood.refused.clone(), flood.sent.clone());
        let struck_off = flood.struck_off.clone();
        let name = if reconnect {
            "element counts, reconnecting"
        } else {
            "element counts"
        };
        let (_, _, growth) = under_attack(&node, name, move |gate| flood.run(gate)).await;
        let (refused, sent) = (
            refused.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed),
        );
        let struck_off = struck_off.load(Ordering::Relaxed);
        println!(
            "{name}: {refused} frames refused (Malformed, FrameTooLarge); {struck_off} connections closed for it; the attacker sent {} KiB",
            sent >> 10
        );
        // One connection, flooding on: closed for its strikes (and its
        // successors get small windows). Reconnecting, the attacker
        // closes each connection itself after one frame.
        if !reconnect {
            assert!(
                struck_off >= 1,
                "{name}: no connection was closed for its strikes"
            );
        }
        assert!(refused >= 8, "only {refused} frames were answered");
        assert!(growth < 160 * MIB, "the node grew by {} MiB", growth / MIB);
        // Each refusal pauses the peer's connection; four in a row close
        // it, and its successors get small windows (measured: 4 to 7 MiB
        // sent in all; 1.2 GiB in 2 s when the node took no strikes).
        assert!(
            sent < FLOOD_BYTES_MAX,
            "{name}: the attacker got {} MiB through",
            sent / MIB
        );
    }
}

/// Bytes a flood of refused frames may get through to the node in one
/// measurement: what the first connections' 1 MiB stream windows let
/// through before they are closed for their strikes (8 streams, 4 strikes),
/// then one small window per pause of each later connection.
const FLOOD_BYTES_MAX: u64 = 64 * MIB;

/// A peer sending frames the node refuses (huge counts, a document past
/// its cap) on 8 streams at once, over and over.
struct Flood {
    tls: TlsFiles,
    addr: SocketAddr,
    /// The two-million-member document (half the streams send it).
    big: Arc<Vec<u8>>,
    /// Small frames with huge element counts.
    small: Arc<Vec<Vec<u8>>>,
    /// Frames answered with their typed refusal.
    refused: Arc<AtomicU64>,
    /// UDP bytes the attacker sent, over all its connections.
    sent: Arc<AtomicU64>,
    /// Connections the node closed for their strikes.
    struck_off: Arc<AtomicU64>,
    /// A new connection for every frame.
    reconnect: bool,
}

impl Flood {
    async fn run(self, gate: Arc<Gate>) {
        let flood = Arc::new(self);
        // Each flood from an address of its own: no strike carries over.
        let ip = if flood.reconnect {
            "127.0.0.5"
        } else {
            "127.0.0.4"
        };
        let ep = endpoint(&flood.tls, ip);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let (ep, gate, flood) = (ep.clone(), gate.clone(), flood.clone());
            tasks.spawn(async move {
                let mut n = 0usize;
                let mut conn: Option<quinn::Connection> = None;
                while gate.open().await {
                    n += 1;
                    // A new connection for every frame, or when the node
                    // closed the one it had.
                    if let Some(old) =
                        conn.take_if(|c| flood.reconnect || c.close_reason().is_some())
                    {
                        flood.left(&old);
                    }
                    let c = match &conn {
                        Some(c) => c.clone(),
                        None => match connect(&ep, flood.addr).await {
                            Ok(c) => conn.insert(c).clone(),
                            Err(_) => continue,
                        },
                    };
                    let frame: &[u8] = if i % 2 == 0 {
                        &flood.big
                    } else {
                        &flood.small[n % 3]
                    };
                    flood.send(&c, frame).await;
                }
                if let Some(c) = conn {
                    flood.left(&c);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Counts what the attacker sent on a connection it leaves, and
    /// whether the node closed it for its strikes.
    fn left(&self, conn: &quinn::Connection) {
        if let Some(ConnectionError::ApplicationClosed(close)) = conn.close_reason() {
            if close.error_code == STRUCK_CONNECTION_CODE.into() {
                self.struck_off.fetch_add(1, Ordering::Relaxed);
            }
        }
        conn.close(0u32.into(), b"");
        self.sent
            .fetch_add(conn.stats().udp_tx.bytes, Ordering::Relaxed);
    }

    /// Sends `frame` on a new stream and counts its typed refusal.
    async fn send(&self, conn: &quinn::Connection, frame: &[u8]) {
        let Ok((mut send, mut recv)) = conn.open_bi().await else {
            return;
        };
        if quire_net::frame::write_encoded(&mut send, frame)
            .await
            .is_err()
        {
            return;
        }
        if let Ok(answer) = read_frame::<Response>(&mut recv, 1 << 20).await {
            let typed = [ErrorCode::Malformed, ErrorCode::FrameTooLarge];
            if matches!(answer.result, Err(e) if typed.contains(&e.code)) {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What a connection attempt came to.
enum Attempt {
    /// Connected, with a request stream held open (a header announcing
    /// 1 KiB and nothing more), so the node sees it busy.
    Held(quinn::Connection, quinn::SendStream),
    /// Refused with CONNECTION_REFUSED before any handshake.
    Refused,
    /// Anything else (printed when the counts do not add up).
    Other(String),
}

async fn attempt(ep: quinn::Endpoint, addr: SocketAddr) -> Attempt {
    match connect(&ep, addr).await {
        Ok(conn) => match conn.open_bi().await {
            Ok((mut send, _recv)) => {
                let _ = send.write_all(&1024u32.to_be_bytes()).await;
                Attempt::Held(conn, send)
            }
            Err(e) => Attempt::Other(e.to_string()),
        },
        Err(ConnectionError::ConnectionClosed(c))
            if c.error_code == TransportErrorCode::CONNECTION_REFUSED =>
        {
            Attempt::Refused
        }
        Err(e) => Attempt::Other(e.to_string()),
    }
}

/// Two peers (127.0.0.2 and 127.0.0.3) try 1000 connections each, 32 at a
/// time, at every opening of the attack's window (closing them all when it
/// shuts), and keep each one busy with a request they never finish: each
/// ends with `connections_per_peer_max` connections, the rest are refused
/// with CONNECTION_REFUSED before any handshake (or, left idle for a
/// second before their request arrived on a loaded machine, were recycled
/// for the peer's newer ones), an honest client (127.0.0.1) keeps
/// its latency and connects afresh for every measurement, and the slots
/// come back when the attackers leave. Bound: the node grows by less than
/// 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_are_capped_per_peer_and_in_all() {
    let _serial = SERIAL.lock().await;
    let per_peer = 16usize;
    let limits = Limits {
        connections_max: 40,
        connections_per_peer_max: per_peer as u32,
        // The attackers' requests stay unfinished for the whole test.
        request_read_timeout_ms: 60_000,
        ..Limits::default()
    };
    let node = node_process(limits).await;
    let tally = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = tally.clone();
    let (tls, addr) = (node.tls.clone(), node.addr);
    let (_, _, growth) = under_attack(&node, "connections", move |gate| {
        async move {
            // At every opening of the gate the peers make their 2000
            // attempts and hold what they get; when it shuts they close
            // everything, so every window with the attack holds a burst.
            let mut first = true;
            while gate.open().await {
                let mut peers = Vec::new();
                for ip in ["127.0.0.2", "127.0.0.3"] {
                    let ep = endpoint(&tls, ip);
                    let mut tries = tokio::task::JoinSet::new();
                    let mut done = Vec::new();
                    for i in 0..1000 {
                        // Past the first burst (whose counts are checked),
                        // a burst ends with its window: it must not spill
                        // into the quiet one after it.
                        if !first && !gate.is_open() {
                            break;
                        }
                        tries.spawn(attempt(ep.clone(), addr));
                        if i >= 32 {
                            done.push(tries.join_next().await.unwrap().unwrap());
                        }
                    }
                    while let Some(one) = tries.join_next().await {
                        done.push(one.unwrap());
                    }
                    let refused = done
                        .iter()
                        .filter(|a| matches!(a, Attempt::Refused))
                        .count();
                    let other: Vec<String> = done
                        .iter()
                        .filter_map(|a| match a {
                            Attempt::Other(e) => Some(e.clone()),
                            _ => None,
                        })
                        .collect();
                    let held: Vec<_> = done
                        .into_iter()
                        .filter_map(|a| match a {
                            Attempt::Held(c, s) => Some((c, s)),
                            _ => None,
                        })
                        .collect();
                    if first {
                        // Connections recycled for newer ones learn it from
                        // the node's close; give them a moment.
                        let deadline = Instant::now() + Duration::from_secs(2);
                        let alive = loop {
                            let alive = held
                                .iter()
                                .filter(|(c, _)| c.close_reason().is_none())
                                .count();
                            if alive <= per_peer || Instant::now() > deadline {
                                break alive;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        };
                        kept.lock()
                            .unwrap()
                            .push((ip, alive, held.len() - alive, refused, other));
                    }
                    peers.push((ep, held));
                }
                first = false;
                while gate.is_open() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                for (ep, held) in peers {
                    for (c, _) in held {
                        c.close(0u32.into(), b"done");
                    }
                    ep.wait_idle().await;
                }
            }
        }
    })
    .await;
    let tally = tally.lock().unwrap().clone();
    println!("connections: (peer, alive, recycled while idle, refused, other errors) {tally:?}");
    for (ip, alive, recycled, refused, other) in &tally {
        assert_eq!(*alive, per_peer, "{ip} kept {alive} connections");
        assert_eq!(alive + recycled + refused, 1000, "{ip}: {other:?}");
    }
    assert!(growth < 64 * MIB, "the node grew by {} MiB", growth / MIB);
    // The attackers left: a peer from one of their addresses is served
    // again (polled: the node frees a slot when it sees the close).
    let ep = endpoint(&node.tls, "127.0.0.2");
    let deadline = Instant::now() + T;
    loop {
        match connect(&ep, node.addr).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("slots did not come back: {e}"),
        }
    }
}

/// A peer at its cap whose connections are idle (a client that went away
/// without a goodbye, such as a `quire` command that exited) is not
/// refused: once a connection has been idle for a second, a newer one
/// from the peer takes its slot and it is closed (application code 2). A
/// connection younger than that is not recycled: the newer one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_at_its_cap_recycles_its_idle_connections() {
    let _serial = SERIAL.lock().await;
    let node = node_process(Limits {
        connections_max: 8,
        connections_per_peer_max: 4,
        ..Limits::default()
    })
    .await;
    let ep = endpoint(&node.tls, "127.0.0.4");
    let mut old = Vec::new();
    for _ in 0..4 {
        old.push(connect(&ep, node.addr).await.expect("within the cap"));
    }
    let refused = |r: Result<quinn::Connection, ConnectionError>| {
        matches!(r, Err(ConnectionError::ConnectionClosed(c))
            if c.error_code == TransportErrorCode::CONNECTION_REFUSED)
    };
    assert!(
        refused(connect(&ep, node.addr).await),
        "connections just made are not recycled"
    );
    // Idle for longer than the grace: four newer ones take their slots.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut new = Vec::new();
    for _ in 0..4 {
        new.push(
            connect(&ep, node.addr)
                .await
                .expect("an idle one makes room"),
        );
    }
    let recycled = |c: &quinn::Connection| {
        matches!(
            c.close_reason(),
            Some(ConnectionError::ApplicationClosed(a)) if a.error_code == 2u32.into()
        )
    };
    let deadline = Instant::now() + T;
    while !old.iter().all(recycled) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(old.iter().all(recycled), "the four idle ones were recycled");
    assert!(new.iter().all(|c| c.close_reason().is_none()));
    assert!(
        refused(connect(&ep, node.addr).await),
        "the cap still holds"
    );
    // The newest ones serve.
    let (mut send, mut recv) = new[3].open_bi().await.unwrap();
    quire_net::frame::write_frame(&mut send, &Request::GetMembership)
        .await
        .unwrap();
    let answer: Response = read_frame(&mut recv, 1 << 20).await.unwrap();
    assert!(matches!(answer.result, Ok(Reply::Membership(Some(_)))));
}

/// A new connection's first packet is answered with a QUIC Retry, not the
/// start of a handshake: a peer must show it receives at its address
/// before the node spends a TLS handshake (or a connection slot) on it,
/// so a flood from spoofed addresses costs one stateless packet each. And
/// the node offers no datagrams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_peers_must_prove_their_address_and_datagrams_are_off() {
    let _serial = SERIAL.lock().await;
    let node = node_process(Limits::default()).await;
    // A client made of quinn's state machine, so its first datagram and
    // the node's answer can be looked at byte for byte.
    let quic = quire_net::tls::client_config(&node.tls).expect("client tls");
    let mut client = quinn_proto::Endpoint::new(Default::default(), None, false, None);
    let now = Instant::now();
    let (_, mut conn) = client
        .connect(
            now,
            quinn::ClientConfig::new(Arc::new(quic)),
            node.addr,
            NODE_SERVER_NAME,
        )
        .expect("connect");
    let mut initial = Vec::new();
    let transmit = conn
        .poll_transmit(now, 1, &mut initial)
        .expect("an Initial");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&initial[..transmit.size], node.addr)
        .await
        .unwrap();
    let mut answer = [0u8; 2048];
    let (len, _) = tokio::time::timeout(T, socket.recv_from(&mut answer))
        .await
        .expect("the node answers")
        .unwrap();
    // QUIC v1 long header: the top bit set, packet type in bits 4-5, 3 for
    // Retry (RFC 9000, 17.2).
    let first = answer[0];
    assert!(
        first & 0x80 != 0 && (first >> 4) & 0x03 == 3,
        "first byte {first:#04x} of a {len}-byte answer is not a Retry"
    );

    // A client that follows the Retry connects, and is offered no
    // datagrams.
    let ep = endpoint(&node.tls, "127.0.0.1");
    let connection = connect(&ep, node.addr)
        .await
        .expect("connects after a Retry");
    assert_eq!(connection.max_datagram_size(), None);
}

/// The control: a neighbour as busy as an attacker, on the attacker's
/// core, that never sends the node a byte (it allocates, and sends UDP
/// datagrams to a socket of its own and reads them). What it does to the
/// honest client's p99.9 is this machine's floor for every figure above:
/// two cores (perhaps two threads of one physical core) shared by the
/// node, the honest client and the attacker. Measured in alternate
/// windows: 0.45x to 2.00x with the node on two runtime threads, 0.61x to
/// 1.29x on one; measured one window after the other, 0.67x to 2.55x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_neighbour_that_never_talks_to_the_node_is_the_floor() {
    let _serial = SERIAL.lock().await;
    let node = node_process(Limits::default()).await;
    under_attack(&node, "busy neighbour (control)", move |gate| async move {
        let sink = std::net::UdpSocket::bind("127.0.0.9:0").expect("a sink");
        sink.set_nonblocking(true).expect("a non-blocking sink");
        let to = sink.local_addr().expect("its address");
        let source = std::net::UdpSocket::bind("127.0.0.8:0").expect("a source");
        let mut seen = 0u64;
        let mut received = [0u8; 1500];
        while gate.open().await {
            for _ in 0..200 {
                let buffer = vec![seen as u8; 1 << 20];
                seen = seen.wrapping_add(u64::from(buffer[5]) + 1);
                let _ = source.send_to(&buffer[..1200], to);
                // Read what it sent, so the kernel drops nothing for it.
                while sink.recv(&mut received).is_ok() {}
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// The node-wide cap on a real node: with room for 4 connections in all
/// and 3 per peer, a peer holding its 3 busy ones leaves one for everyone
/// else. Another address gets that one, and its second is refused before
/// its handshake though it holds only one of its own 3: the node is full.
/// A slot comes back when a connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_wide_connection_cap_holds_for_every_peer() {
    let _serial = SERIAL.lock().await;
    let limits = Limits {
        connections_max: 4,
        connections_per_peer_max: 3,
        request_read_timeout_ms: 60_000,
        ..Limits::default()
    };
    let node = node_process(limits).await;
    let hold = |ep: quinn::Endpoint| async move {
        match attempt(ep, node.addr).await {
            Attempt::Held(conn, send) => (conn, send),
            Attempt::Refused => panic!("refused below the caps"),
            Attempt::Other(e) => panic!("{e}"),
        }
    };
    let first = endpoint(&node.tls, "127.0.0.2");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(hold(first.clone()).await);
    }
    let second = endpoint(&node.tls, "127.0.0.3");
    let _last = hold(second.clone()).await;
    assert!(matches!(
        attempt(second.clone(), node.addr).await,
        Attempt::Refused
    ));
    let (conn, _) = held.pop().expect("three held");
    conn.close(0u32.into(), b"done");
    // The node frees the slot when it sees the close.
    let deadline = Instant::now() + T;
    loop {
        match attempt(second.clone(), node.addr).await {
            Attempt::Held(..) => break,
            Attempt::Refused if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Attempt::Refused => panic!("no slot came back"),
            Attempt::Other(e) => panic!("{e}"),
        }
    }
}
