//! Fuzzing of everything a node or client decodes from a peer, on the
//! stable toolchain: a seeded in-process loop, no `cargo fuzz`.
//!
//! Each case draws its input from its own seed: a well-formed message (a
//! request, a response, a context token, an object, a membership document)
//! sent as it is or mutated (bit flips, truncation, splicing, length
//! fields bumped, huge counts), or raw random bytes. The targets then check
//! properties, not only the absence of a panic: a decode either fails with
//! a typed error or yields a value that re-encodes to itself; it never
//! allocates far beyond its input; the DVVSet laws hold on well-formed
//! sets and ill-formed ones are refused by validation; membership
//! validation accepts exactly the documents an independent oracle does.
//!
//! # Running
//!
//! `cargo test -p quire-shared --test fuzz` runs the short run of the
//! suite ([`SHORT_CASES_PER_TARGET`] cases per target, fixed seed). The
//! environment changes it:
//!
//! - `QUIRE_FUZZ_CASES=N`: cases per target (the long run uses 10 000 000,
//!   in release; see `docs/reliability.md`);
//! - `QUIRE_FUZZ_SEED=S` (decimal or `0x` hex): the first case's seed; case
//!   `i` uses `S + i`, so a failing case is replayed alone with its own
//!   seed and `QUIRE_FUZZ_CASES=1`, the command it prints;
//! - `QUIRE_FUZZ_TARGET=a,b`: only these targets;
//! - `QUIRE_FUZZ_TRACE=1`: print each case's seed before it runs, for a
//!   failure that aborts the process (an allocation failure) before the
//!   harness can print it.
//!
//! # Layout
//!
//! - [`rng`]: the seeded generator and the byte mutations.
//! - [`gen`]: well-formed values of every wire type.
//! - [`wire`]: request and response frames, and the context token.
//! - [`causal`]: DVVSet `sync`/`update` laws and ill-formed sets.
//! - [`members`]: membership validation against an oracle.

mod causal;
mod gen;
mod members;
mod rng;
mod wire;

use rng::Rng;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::panic::{catch_unwind, resume_unwind};
use std::sync::Mutex;
use std::time::Instant;

/// Counts every allocation of this test binary, so a target can bound what
/// one decode allocates.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counts are process-wide: two fuzz runs at once would see each
/// other's allocations, so runs take turns.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Cases per target in the suite's run: six targets make 120 000 cases.
const SHORT_CASES_PER_TARGET: u64 = 20_000;

/// The suite's seed when none is given (any fixed value: the suite is
/// deterministic; other seeds explore other cases).
const DEFAULT_SEED: u64 = 0x5155_4952_4500_0001;

/// Bytes a decode may allocate per byte of input. The largest wire
/// element is 72 bytes in memory (a delivered hint) for as little as 3
/// encoded bytes, and a sequence may reserve one element per byte left in
/// the input before its elements are read; nested sequences reserve again.
/// The most seen is about 56 (a response of 99 bytes); what this bound
/// catches is growth with the counts a peer announces, not with its bytes.
pub const ALLOC_BYTES_PER_INPUT_BYTE: usize = 256;

/// Bytes any decode may allocate whatever its input: error messages and
/// the first small buffers.
pub const ALLOC_SLACK_BYTES: usize = 4096;

/// Runs `f` and returns what it allocated in bytes (allocations and the
/// growth of reallocations; freeing is not subtracted, so this bounds the
/// peak).
pub fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let out = f();
    let change = region.change();
    let grown = usize::try_from(change.bytes_reallocated).unwrap_or(0);
    (out, change.bytes_allocated + grown)
}

/// Panics when a decode of `input_bytes` allocated more than the bound.
pub fn assert_alloc_bounded(what: &str, input_bytes: usize, allocated_bytes: usize) {
    let bound = ALLOC_BYTES_PER_INPUT_BYTE * input_bytes + ALLOC_SLACK_BYTES;
    assert!(
        allocated_bytes <= bound,
        "{what}: decoding {input_bytes} bytes allocated {allocated_bytes} bytes (bound {bound})"
    );
}

/// One fuzz target: a name for `QUIRE_FUZZ_TARGET` and a case runner that
/// draws its input from the generator and panics on a broken property.
struct Target {
    name: &'static str,
    case: fn(&mut Rng),
}

const TARGETS: &[Target] = &[
    Target {
        name: "request",
        case: wire::request_case,
    },
    Target {
        name: "response",
        case: wire::response_case,
    },
    Target {
        name: "context",
        case: wire::context_case,
    },
    Target {
        name: "dvvset",
        case: causal::dvvset_case,
    },
    Target {
        name: "dvvset-ill-formed",
        case: causal::ill_formed_case,
    },
    Target {
        name: "membership",
        case: members::membership_case,
    },
];

/// A number from the environment, decimal or `0x` hex.
fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim().replace('_', "");
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}")))
}

/// Runs `cases` cases of every selected target from `seed`, printing each
/// target's count and time; on a failure prints the command that replays
/// the failing case, then fails.
fn run(cases: u64, seed: u64, only: Option<Vec<String>>) {
    let _turn = ONE_RUN_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(names) = &only {
        for name in names {
            assert!(
                TARGETS.iter().any(|t| t.name == name),
                "unknown fuzz target {name:?}"
            );
        }
    }
    let trace = std::env::var_os("QUIRE_FUZZ_TRACE").is_some();
    let total = Instant::now();
    let mut ran = 0u64;
    for target in TARGETS {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == target.name))
        {
            continue;
        }
        let start = Instant::now();
        for i in 0..cases {
            let case_seed = seed.wrapping_add(i);
            let case = target.case;
            if trace {
                eprintln!("fuzz {}: case {i}, seed {case_seed:#x}", target.name);
            }
            if let Err(panic) = catch_unwind(move || case(&mut Rng::new(case_seed))) {
                eprintln!(
                    "fuzz target {} failed on case {i} (seed {case_seed:#x}); replay it with:\n  \
                     QUIRE_FUZZ_TARGET={} QUIRE_FUZZ_SEED={case_seed:#x} QUIRE_FUZZ_CASES=1 \
                     cargo test -p quire-shared --test fuzz -- --nocapture",
                    target.name, target.name
                );
                resume_unwind(panic);
            }
        }
        ran += cases;
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "fuzz {:<18} {cases:>10} cases in {secs:>8.2} s ({:.0} cases/s), 0 failures",
            target.name,
            cases as f64 / secs.max(1e-9)
        );
    }
    eprintln!(
        "fuzz: {ran} cases from seed {seed:#x} in {:.2} s",
        total.elapsed().as_secs_f64()
    );
}

/// The suite's short run, or whatever the environment asks for (see the
/// module doc): every target, every property, a seed to replay failures.
#[test]
fn fuzz() {
    // The harness's own teeth: a counted allocation, and varints as
    // postcard writes them.
    let (_, counted) = allocated_by(|| Vec::<u8>::with_capacity(1 << 20));
    assert!(counted >= 1 << 20, "the allocator counted {counted} bytes");
    for n in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
        assert_eq!(rng::varint(n), postcard::to_allocvec(&n).unwrap());
    }
    let cases = env_u64("QUIRE_FUZZ_CASES").unwrap_or(SHORT_CASES_PER_TARGET);
    let seed = env_u64("QUIRE_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let only = std::env::var("QUIRE_FUZZ_TARGET")
        .ok()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect());
    run(cases, seed, only);
}
