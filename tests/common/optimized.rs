//! An optimized build of the `quire` binary, for the tests whose bounds
//! are about the speed of the product rather than of a debug build: the
//! hostile-peer tests compare an honest client's tail latency with and
//! without an attack, and an unoptimized node takes several times longer
//! over each refused connection attempt than the binary users run (the
//! connection burst's ratio measured 1.0x to 2.35x against a debug node,
//! 1.2x to 1.6x against a release one).
//!
//! Built once per test process with `cargo build --release --bin quire`
//! into a target directory of its own (`<target>/optimized-node`), so
//! that it never competes with a developer's own release builds for
//! cargo's fingerprints, and cargo's own freshness check means it is
//! never stale. The first build on a clean checkout takes a few minutes
//! (about 150 s on two cores); later ones are no-ops.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The path of the optimized `quire` binary, built if needed. Panics with
/// cargo's output if the build fails.
pub fn quire() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // `<target>/debug/quire`: the target directory is two up.
            let target = PathBuf::from(super::QUIRE)
                .ancestors()
                .nth(2)
                .expect("the debug binary lives in <target>/debug")
                .join("optimized-node");
            let started = std::time::Instant::now();
            let out = std::process::Command::new(env!("CARGO"))
                // `--locked`: a test never rewrites Cargo.lock.
                .args(["build", "--release", "--locked", "--bin", "quire"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo runs");
            super::assert_ran(&out, "building the optimized quire binary failed");
            eprintln!(
                "optimized quire binary ready in {:.1} s ({})",
                started.elapsed().as_secs_f64(),
                target.display()
            );
            target.join("release").join("quire")
        })
        .clone()
}
