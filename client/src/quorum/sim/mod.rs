//! Deterministic simulation of Quire's clients and nodes (TESTING.md,
//! layer 2), in the manner of TigerBeetle's VOPR: seeded worlds that hunt
//! for bugs.
//!
//! A world is a handful of storage nodes, a few clients running gets,
//! puts and deletes at once through the real quorum machines, a
//! maintenance client running the SDK's own hint delivery, anti-entropy
//! exchange and, in two worlds of five, a membership change (a join, a
//! leave or a replacement: transfers, closing exchanges, flip, old copies
//! dropped: [`moves`]), and a nemesis: messages lost,
//! delayed, reordered and duplicated, partitions between clients and
//! nodes, nodes crashing and coming back, some having lost their data.
//! Simulated nodes store with the very rules real nodes apply
//! ([`quire_shared::replica`]), so a world differs from a cluster in its
//! network and its disks, never in what a replica keeps. After the faults
//! stop, repair (hint delivery, then read repair, anti-entropy or both,
//! as the world drew) runs until nothing changes, and the checkers
//! ([`checkers`]) judge: outcomes true when given, replicas converged, no
//! acknowledged write lost.
//!
//! Everything in a world comes from its seed: one random sequence
//! ([`rng`]), virtual time, no threads, no clock, no `HashMap` order. The
//! same seed gives the same trace, which is hashed as it is written and
//! compared across runs by a test. A failing world prints the command
//! that replays it with its whole trace:
//!
//! ```text
//! QUIRE_SIM_SEED=1234 cargo test -p quire-client --lib sim::replay -- --nocapture
//! ```
//!
//! A CI run (`cargo test`) plays 10 000 worlds; `QUIRE_SIM_WORLDS` plays
//! more and `QUIRE_SIM_SEED_BASE` moves to other seeds, for a longer hunt
//! (in release, with the machines' debug assertions kept on):
//!
//! ```text
//! CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true QUIRE_SIM_WORLDS=1000000 \
//!   QUIRE_SIM_SEED_BASE=7000000 cargo test -p quire-client --lib --release sim::worlds -- --nocapture
//! ```
//!
//! Not simulated yet: reweighting, several changes in one world,
//! membership spreading from node to node (every node and client learns
//! a new document at once), tombstone reaping,
//! and the node's own guards that are not shared rules (its check that a
//! context claims no dot it never issued, its byte-bounded pages). Worlds whose store allows only a few siblings are played by
//! a test of their own (`worlds_with_small_sibling_limits_converge`).
//!
//! # Layout
//!
//! - [`rng`]: the seeded random sequence;
//! - [`trace`]: the trace and its hash;
//! - [`config`]: a world's shape drawn from its seed, and the deliberate
//!   bugs ([`config::Knobs`]) that show the checkers have teeth;
//! - [`network`]: virtual time (the agenda), message faults, partitions;
//! - [`node`]: a storage node: data, hints, actors, crashes;
//! - [`world`]: the world, its calls and its event loop;
//! - [`deliver`]: requests arriving at nodes, answers at clients;
//! - [`client`]: a client, and an operation with its machine;
//! - [`workload`]: what clients do, through the quorum machines;
//! - [`hints`]: the hint-delivery pass;
//! - [`tasks`]: the SDK's async maintenance code (exchange, transfer
//!   pages) run over the simulated network;
//! - [`exchange`]: anti-entropy passes;
//! - [`moves`]: a membership change: copies to incoming replicas,
//!   transfers, the flip, old copies dropped;
//! - [`receive`]: a node's transfer progress, pages and drops;
//! - [`digests`]: a node's Merkle roots, segment digests and scans;
//! - [`nemesis`]: crashes, partitions, flushes, and their end;
//! - [`history`]: writes and their dots, for the loss checker;
//! - [`checkers`]: what must hold;
//! - [`runner`]: one world from seed to verdict.

/// Records an event in a world's trace: `trace!(world, "format", args)`.
macro_rules! trace {
    ($w:expr, $($arg:tt)*) => {
        $w.trace.event($w.now_ms, format_args!($($arg)*))
    };
}

mod checkers;
mod client;
mod config;
mod deliver;
mod digests;
mod exchange;
mod hints;
mod history;
mod moves;
mod nemesis;
mod network;
mod node;
mod receive;
mod rng;
mod runner;
mod tasks;
mod trace;
mod workload;
mod world;

use config::Knobs;
use runner::{run, Stats};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

/// The one store of every world.
const STORE: &str = "s";
/// Worlds a CI run plays unless `QUIRE_SIM_WORLDS` says otherwise.
const WORLDS: u64 = 10_000;
/// Events of a failed world shown with its failure.
const TAIL_LINES: usize = 40;

/// A number from the environment, if set.
fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
    )
}

/// The command that replays world `seed`.
fn replay_command(seed: u64) -> String {
    format!("QUIRE_SIM_SEED={seed} cargo test -p quire-client --lib sim::replay -- --nocapture")
}

/// Plays world `seed`; a panic (a machine's assertion) is a violation too.
fn play(seed: u64, knobs: Knobs) -> Result<Stats, String> {
    match catch_unwind(AssertUnwindSafe(|| run(seed, knobs, false))) {
        Ok(report) => match report.violation {
            None => Ok(report.stats),
            Some(v) => Err(v),
        },
        Err(panic) => Err(panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .map_or_else(|| "panicked".into(), |m| format!("panicked: {m}"))),
    }
}

/// Plays `count` worlds from seed `first` on a few threads; returns the
/// summed counts and the failure with the lowest seed found (each thread
/// stops at its first).
fn play_many(first: u64, count: u64, knobs: Knobs) -> (Stats, Option<(u64, String)>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as u64;
    let lanes: Vec<(Stats, Option<(u64, String)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|lane| {
                s.spawn(move || {
                    let mut stats = Stats::default();
                    let mut seed = first + lane;
                    while seed < first + count {
                        match play(seed, knobs) {
                            Ok(s) => stats.add(&s),
                            Err(why) => return (stats, Some((seed, why))),
                        }
                        seed += threads;
                    }
                    (stats, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a lane"))
            .collect()
    });
    let mut stats = Stats::default();
    let mut failure: Option<(u64, String)> = None;
    for (s, f) in lanes {
        stats.add(&s);
        if let Some((seed, why)) = f {
            if failure.as_ref().is_none_or(|(first, _)| seed < *first) {
                failure = Some((seed, why));
            }
        }
    }
    (stats, failure)
}

#[test]
fn worlds() {
    let count = env_u64("QUIRE_SIM_WORLDS").unwrap_or(WORLDS);
    let first = env_u64("QUIRE_SIM_SEED_BASE").unwrap_or(0);
    let started = Instant::now();
    let (stats, failure) = play_many(first, count, Knobs::default());
    println!("{count} worlds in {:.1?}: {stats:#?}", started.elapsed());
    if let Some((seed, why)) = failure {
        // The world again, with its trace kept: its last events say most.
        let lines = run(seed, Knobs::default(), true).lines;
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        panic!(
            "world {seed} failed: {why}\nits last events:\n{tail}\nreplay it with:\n  {}",
            replay_command(seed)
        );
    }
    if count >= 1_000 {
        // The faults happened and the checks had something to check: a
        // simulation that quietly stopped exercising a path would pass
        // forever.
        let s = &stats;
        for (what, n) in [
            ("successful puts", s.puts_ok),
            ("successful gets", s.gets_ok),
            ("gets answered through a spare", s.gets_through_spares),
            ("failed operations", s.failed),
            ("refused requests", s.rejected),
            ("read repairs", s.read_repairs),
            (
                "requests applied after their call timed out",
                s.late_requests,
            ),
            ("hints delivered", s.hints_delivered),
            ("hints dropped", s.hints_dropped),
            ("keys repaired by anti-entropy", s.exchange_repairs),
            ("membership changes flipped", s.flips),
            ("keys moved by transfers", s.keys_transferred),
            ("old owners' partitions dropped", s.partitions_dropped),
            ("crashes that lost data", s.data_losses),
            ("partitions", s.partitions),
            ("messages lost", s.dropped),
            ("messages duplicated", s.duplicated),
            ("acknowledged writes present at the end", s.present),
            ("acknowledged writes superseded", s.superseded),
            ("acknowledged writes lost to data loss", s.lost_to_faults),
            (
                "acknowledged writes dropped by last-write-wins",
                s.lww_discarded,
            ),
        ] {
            assert!(n > 0, "no {what} in {count} worlds");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let mut hashes = BTreeSet::new();
    for seed in 0..150 {
        let kept = run(seed, Knobs::default(), true);
        let hashed = run(seed, Knobs::default(), false);
        assert_eq!(kept.hash, hashed.hash, "world {seed} ran differently twice");
        assert_eq!(kept.stats, hashed.stats, "world {seed}");
        assert_eq!(kept.lines.len() as u64, kept.stats.events, "world {seed}");
        hashes.insert(kept.hash);
    }
    assert_eq!(hashes.len(), 150, "different seeds gave the same world");
}

/// Replays the world `QUIRE_SIM_SEED` (world 0 if unset) and prints its
/// trace; with `QUIRE_SIM_SMALL_LIMITS=1`, the world of that seed with
/// small sibling limits.
#[test]
fn replay() {
    let seed = env_u64("QUIRE_SIM_SEED").unwrap_or(0);
    let knobs = Knobs {
        small_sibling_limits: env_u64("QUIRE_SIM_SMALL_LIMITS") == Some(1),
        ..Knobs::default()
    };
    let report = run(seed, knobs, true);
    for line in &report.lines {
        println!("{line}");
    }
    println!("world {seed}: trace hash {:016x}", report.hash);
    if let Some(v) = report.violation {
        panic!("world {seed}: {v}");
    }
}

/// Plays worlds with `knobs` until one fails; returns its violation.
fn first_failure(knobs: Knobs, worlds: u64) -> String {
    match play_many(0, worlds, knobs) {
        (_, Some((_, why))) => why,
        (_, None) => panic!("{worlds} worlds with {knobs:?} found nothing wrong"),
    }
}

#[test]
fn a_node_that_keeps_its_actor_across_restarts_is_caught() {
    let knobs = Knobs {
        reuse_actor: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(
        why.contains("issued twice") || why.contains("is lost"),
        "{why}"
    );
}

#[test]
fn a_stand_in_that_keeps_its_actor_after_dropping_hints_is_caught() {
    let knobs = Knobs {
        keep_stand_in_actor: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(why.contains("issued twice"), "{why}");
}

#[test]
fn without_hint_delivery_repair_leaves_hints_behind() {
    let knobs = Knobs {
        skip_hint_delivery: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(why.contains("still holds a hint"), "{why}");
}

#[test]
fn a_coordinator_that_ignores_contexts_is_caught() {
    let knobs = Knobs {
        put_ignores_context: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(why.contains("is lost"), "{why}");
}

#[test]
fn without_repair_replicas_stay_apart() {
    let knobs = Knobs {
        skip_repair: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(why.contains("differ after repair"), "{why}");
}

/// Worlds that repair by anti-entropy alone converge only because the
/// exchange finds and mends what differs: with digests blind to the
/// object, two versions of a key look equal and stay apart.
#[test]
fn a_digest_that_ignores_the_object_is_caught() {
    let knobs = Knobs {
        digest_ignores_object: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(why.contains("differ after repair"), "{why}");
}

/// A transfer page that overwrites what the incoming replica holds (a
/// write copied to it directly, newer than the page) is caught: the
/// replica's copy goes back in time.
#[test]
fn a_transfer_page_that_replaces_instead_of_syncing_is_caught() {
    let knobs = Knobs {
        transfer_page_replaces: true,
        ..Knobs::default()
    };
    let why = first_failure(knobs, 3_000);
    assert!(
        why.contains("went back in time") || why.contains("is lost"),
        "{why}"
    );
}

/// Small sibling limits do not stop convergence: a replica takes a merge
/// past the sibling limit (only coordinated writes are held to it), so
/// after concurrent writes on both sides of a partition, repair and hint
/// delivery still bring every replica to the same object. (Before, nodes
/// refused such merges and replicas stayed apart until an application
/// wrote a merge; world 92 was the shortest example.)
#[test]
fn worlds_with_small_sibling_limits_converge() {
    let knobs = Knobs {
        small_sibling_limits: true,
        ..Knobs::default()
    };
    if let (_, Some((seed, why))) = play_many(0, 2_000, knobs) {
        panic!(
            "world {seed} with small sibling limits failed: {why}\nreplay it with:\n  QUIRE_SIM_SMALL_LIMITS=1 {}",
            replay_command(seed)
        );
    }
}
