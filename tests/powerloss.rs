//! Power loss: node data directories on LazyFS (`common::lazyfs`), a
//! filesystem that drops everything not fsynced when the power is cut.
//! SIGKILL alone keeps the page cache, so it proves nothing about fsync;
//! these tests cut the power under every replica at once while writers
//! run, restart the nodes from what survived, and ask each replica for
//! every write that was acknowledged.
//!
//! - a `sync` store loses nothing acknowledged, and LMDB opens cleanly;
//! - a `buffered` store loses at most the writes acknowledged within its
//!   last flush interval (plus a margin), and the test reports them;
//! - with fsync switched off by the nodes' test hook the same cut must
//!   lose acknowledged writes, or the harness has no teeth;
//! - a meta page of LMDB reaching the disk ahead of the pages it names
//!   (the power goes as it is written) loses nothing acknowledged and
//!   leaves LMDB whole.
//!
//! Without FUSE (no `/dev/fuse`, or mounting not permitted) each test
//! prints `SKIPPED: ...` to stderr and returns; `.ci/run` installs
//! Debian's `fuse3` for the `fusermount3` helper. The tests in this file
//! run one at a time: each runs three node processes, and the buffered
//! bound is about timing on a shared 2-core machine.

mod common;

use common::powerloss::{Acked, Load, PowerCluster, Survey};
use quire::shared::{ConflictPolicy, Durability, StoreConfig, StoreLimits};
use quire::{Client, Context};
use quire_node::config::StorageSettings;
use std::future::Future;
use std::time::{Duration, Instant};

/// One test at a time in this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every test stops by itself within this (mounts are cleaned up).
const TEST_BOUND: Duration = Duration::from_secs(120);
/// Concurrent writers, each putting new keys one after the other.
const WRITERS: usize = 8;
/// Most puts per writer: never reached, the cut comes first.
const WRITES_PER_WRITER_MAX: usize = 100_000;
/// Acknowledged writes before the power is cut (the writers keep going).
const ACKED_BEFORE_CUT: usize = 3_000;
/// How long the writers get to reach [`ACKED_BEFORE_CUT`].
const LOAD_TIMEOUT: Duration = Duration::from_secs(40);
/// The buffered store loses only writes acknowledged this long (beyond
/// its flush interval) before the cut: the flusher's fsync itself, and
/// its thread being scheduled late on a loaded machine.
const FLUSH_MARGIN: Duration = Duration::from_millis(200);

/// Runs `test` alone in this binary, within [`TEST_BOUND`], and reports
/// how long it took.
async fn bounded(test: impl Future<Output = ()>) {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .expect("the test did not finish within its bound");
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
}

/// Writes to `store` until [`ACKED_BEFORE_CUT`] are acknowledged, cuts the
/// power under every node mid-stream, restarts them and surveys every
/// acknowledged write. Returns the writes, the moment of the cut and the
/// survey.
async fn write_cut_restart(pc: &mut PowerCluster, store: &str) -> (Vec<Acked>, Instant, Survey) {
    let client = pc.cluster.client().await;
    let fsyncs_before = pc.fs.fsyncs();
    let load = Load::start(&client, store, WRITERS, WRITES_PER_WRITER_MAX);
    load.wait_for(ACKED_BEFORE_CUT, LOAD_TIMEOUT).await;
    let (cut_at, dropped) = pc.cut().await;
    let (acked, failed) = load.stop().await;
    eprintln!(
        "{store}: {} writes acknowledged, {failed} failed; {} fsyncs reached the filesystem; the cut reverted {} files ({} bytes of current contents)",
        acked.len(),
        pc.fs.fsyncs() - fsyncs_before,
        dropped.files_reverted,
        dropped.bytes_dropped
    );
    drop(client);
    pc.restart_all().await;
    let survey = pc.survey(store, &acked).await;
    eprintln!(
        "{store}: after the cut {} acknowledged writes are on no replica, {} are missing from a node that acknowledged them",
        survey.lost.len(),
        survey.dropped.len()
    );
    (acked, cut_at, survey)
}

/// "min / median / max ms" of how long before `cut_at` each of `writes`
/// was acknowledged.
fn ages(writes: &[Acked], cut_at: Instant) -> String {
    let mut ms: Vec<u128> = writes
        .iter()
        .map(|w| cut_at.saturating_duration_since(w.at).as_millis())
        .collect();
    ms.sort_unstable();
    match (ms.first(), ms.get(ms.len() / 2), ms.last()) {
        (Some(min), Some(median), Some(max)) => format!("{min} / {median} / {max} ms"),
        _ => "none".into(),
    }
}

/// Every acknowledged sync write is on some replica, and on every node
/// that acknowledged it.
fn nothing_acknowledged_lost(survey: &Survey) {
    let show = |w: &[Acked]| w.iter().take(5).map(|a| a.key.clone()).collect::<Vec<_>>();
    assert!(
        survey.lost.is_empty(),
        "{} acknowledged sync writes lost, e.g. {:?}",
        survey.lost.len(),
        show(&survey.lost)
    );
    assert!(
        survey.dropped.is_empty(),
        "{} acknowledged sync writes missing from a node that acknowledged them, e.g. {:?}",
        survey.dropped.len(),
        show(&survey.dropped)
    );
}

/// The cluster serves again: a fresh client writes and reads back.
async fn serves_again(pc: &PowerCluster, store: &str) {
    let client = Client::connect(pc.cluster.client_config.clone())
        .await
        .expect("a fresh client connects after the restart");
    client
        .put(store, b"after-the-cut", b"v".to_vec(), &Context::empty())
        .await
        .expect("a write after the restart");
    let read = client.get(store, b"after-the-cut").await.expect("a read");
    assert!(read.values().contains(&b"v".as_slice()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_under_every_replica_loses_no_acknowledged_sync_write() {
    bounded(async {
        let test = "a_power_cut_under_every_replica_loses_no_acknowledged_sync_write";
        let Some(mut pc) = PowerCluster::start(test, Vec::new()).await else {
            return;
        };
        let (acked, _, survey) = write_cut_restart(&mut pc, "default").await;
        assert!(acked.len() >= ACKED_BEFORE_CUT);
        nothing_acknowledged_lost(&survey);
        serves_again(&pc, "default").await;
    })
    .await;
}

/// LMDB's two meta pages: the first two pages of its data file (pages of
/// 4 KiB, as on the machines the tests run on).
const LMDB_META_BYTES: u64 = 2 * 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_page_reaching_the_disk_first_loses_no_acknowledged_write() {
    bounded(async {
        let test = "a_meta_page_reaching_the_disk_first_loses_no_acknowledged_write";
        let Some(mut pc) = PowerCluster::start(test, Vec::new()).await else {
            return;
        };
        let client = pc.cluster.client().await;
        let load = Load::start(&client, "default", WRITERS, WRITES_PER_WRITER_MAX);
        load.wait_for(ACKED_BEFORE_CUT, LOAD_TIMEOUT).await;
        // The power goes as the next meta page of any node's data file is
        // written, and that page reaches the disk ahead of every write not
        // fsynced before it: the commit it names must be whole on disk.
        pc.fs.arm("data.mdb", LMDB_META_BYTES);
        let armed = Instant::now();
        let went_off = loop {
            if let Some(at) = pc.fs.went_off() {
                break at;
            }
            assert!(
                armed.elapsed() < LOAD_TIMEOUT,
                "no meta page was written within {LOAD_TIMEOUT:?} of arming"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        pc.cut().await;
        let (acked, failed) = load.stop().await;
        drop(client);
        // Only what was acknowledged before the power went.
        let acked: Vec<Acked> = acked.into_iter().filter(|a| a.at < went_off).collect();
        eprintln!(
            "default: {} writes acknowledged before the power went, {failed} failed",
            acked.len()
        );
        pc.restart_all().await;
        let survey = pc.survey("default", &acked).await;
        nothing_acknowledged_lost(&survey);
        serves_again(&pc, "default").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_loses_buffered_writes_only_from_the_last_flush_interval() {
    bounded(async {
        let test = "a_power_cut_loses_buffered_writes_only_from_the_last_flush_interval";
        let store = StoreConfig {
            name: "cart".into(),
            n: 3,
            r: 2,
            w: 2,
            durability: Durability::Buffered,
            policy: ConflictPolicy::Siblings,
            limits: StoreLimits::default(),
        };
        let Some(mut pc) = PowerCluster::start(test, vec![store]).await else {
            return;
        };
        let (acked, cut_at, survey) = write_cut_restart(&mut pc, "cart").await;
        let interval = Duration::from_millis(StorageSettings::default().flush_interval_ms.into());
        let bound = interval + FLUSH_MARGIN;
        let age = |w: &Acked| cut_at.saturating_duration_since(w.at);
        let newest = acked.iter().map(age).min().unwrap_or_default();
        eprintln!(
            "cart: {} of {} acknowledged writes lost everywhere, {} dropped by a node that acknowledged them; flush interval {interval:?}, allowed age {bound:?}; ages at the cut of the lost: {}; of the dropped: {}; newest acknowledgment {newest:?} before the cut",
            survey.lost.len(),
            acked.len(),
            survey.dropped.len(),
            ages(&survey.lost, cut_at),
            ages(&survey.dropped, cut_at),
        );
        for w in survey.lost.iter().chain(&survey.dropped) {
            assert!(
                age(w) <= bound,
                "{} was acknowledged {:?} before the cut, longer than the flush interval and margin ({bound:?}), and is gone",
                w.key,
                age(w)
            );
        }
        serves_again(&pc, "cart").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fsync_switched_off_the_same_cut_loses_acknowledged_writes() {
    bounded(async {
        let test = "with_fsync_switched_off_the_same_cut_loses_acknowledged_writes";
        let Some(mut pc) = PowerCluster::start(test, Vec::new()).await else {
            return;
        };
        // Formed with fsync on, so identities and membership are durable;
        // then every node restarts with the hook on.
        pc.kill_all().await;
        pc.set_skip_fsync(true);
        pc.restart_all().await;
        let (acked, _, survey) = write_cut_restart(&mut pc, "default").await;
        assert!(
            !survey.lost.is_empty(),
            "the harness is broken: with fsync off, a power cut under every replica lost none of {} acknowledged writes",
            acked.len()
        );
        eprintln!(
            "teeth: with fsync off the cut lost {} of {} acknowledged writes",
            survey.lost.len(),
            acked.len()
        );
        serves_again(&pc, "default").await;
    })
    .await;
}
