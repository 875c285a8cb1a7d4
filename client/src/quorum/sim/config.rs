//! What a world is made of, drawn from its seed.
//!
//! Every dimension varies from world to world, and most faults are absent
//! from many worlds: a bug that needs drops but no crashes is found faster
//! among worlds that have only drops. Worlds are small on purpose (a few
//! nodes, keys and operations, seconds of virtual time) so that a CI run
//! can afford ten thousand of them in a debug build; small worlds with
//! many keys' worth of contention are where quorum bugs live.

use super::network::Faults;
use super::rng::Rng;
use quire_shared::{ConflictPolicy, Durability, StoreLimits};

/// One world's shape.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// Storage nodes.
    pub nodes: usize,
    /// Home replicas per key (`N`).
    pub n: usize,
    /// Answers a get waits for.
    pub r: usize,
    /// Copies a put waits for.
    pub w: usize,
    /// Siblings or last-write-wins.
    pub policy: ConflictPolicy,
    /// Sync (a crash loses nothing) or buffered (a power cut loses what
    /// was written since the last flush).
    pub durability: Durability,
    /// Application clients (a maintenance client comes on top).
    pub clients: usize,
    /// Distinct keys written and read.
    pub keys: usize,
    /// Operations each client runs.
    pub ops_per_client: u32,
    /// A whole get or put (the SDK's `request_ms`, 3 s by default).
    pub timeout_ms: u64,
    /// A put coordinator's attempt, and every call's budget (the SDK's
    /// `attempt_ms`, 1 s by default); at or above `timeout_ms` in some
    /// worlds, where a slow coordinator is never replaced.
    pub attempt_ms: u64,
    /// Operations a client runs at once, at most.
    pub concurrency: usize,
    /// Longest pause between a client's operations.
    pub op_gap_ms_max: u64,
    /// When faults stop and repair begins.
    pub chaos_ms: u64,
    /// The network's faults while they last.
    pub faults: Faults,
    /// Whether nodes crash and restart.
    pub crashes: bool,
    /// Chance that a crash loses the node's disk (it comes back empty).
    pub wipe_share: f64,
    /// Whether partitions come and go.
    pub partitions: bool,
    /// Longest pause between two fault events.
    pub nemesis_gap_ms_max: u64,
    /// Pause between hint-delivery passes while faults last.
    pub hint_pass_ms: u64,
    /// Bounds on each key's object: the defaults, which small worlds never
    /// reach, unless [`Knobs::small_sibling_limits`] asks for a limit small
    /// enough to be met.
    pub limits: StoreLimits,
    /// Skew of each node's clock, up to this many milliseconds (it orders
    /// last-write-wins).
    pub clock_skew_ms_max: u64,
    /// How reads fan out: `None` asks all `N` at once, `Some(ms)` asks
    /// `R` first and the rest after that many milliseconds (or on a
    /// failure or differing answers).
    pub speculate_after_ms: Option<u64>,
    /// How repair rounds make replicas agree once faults stop.
    pub repair: Repair,
    /// Pause between anti-entropy passes while faults last; `None`: no
    /// exchange runs during the faults.
    pub exchange_pass_ms: Option<u64>,
    /// A membership change committed during the faults, and when: the
    /// maintenance client then moves the data, closes, flips and drops old
    /// copies as the SDK does, while everything else goes on. `None`:
    /// membership never changes.
    pub change: Option<(u64, ChangeKind)>,
}

/// The membership change a world makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A node outside the first membership joins.
    Join,
    /// A member leaves (only where more than `N` nodes remain).
    Leave,
    /// A node outside the first membership takes a member's place.
    Replace,
}

impl ChangeKind {
    /// Whether the change needs a node outside the first membership.
    pub fn brings_a_node(self) -> bool {
        self != ChangeKind::Leave
    }
}

/// What a world's repair rounds run besides hint delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// The auditor reads every key at `R = N` (read repair alone).
    Reads,
    /// An anti-entropy pass over every partition (exchanges alone): a
    /// world that converges this way shows that anti-entropy by itself
    /// brings replicas together.
    Exchanges,
    /// An anti-entropy pass, then the reads (which must then find
    /// nothing to repair).
    Both,
}

impl WorldConfig {
    /// The world of `rng`'s seed.
    pub fn draw(rng: &mut Rng, knobs: Knobs) -> Self {
        let mut cfg = Self::draw_shape(rng, knobs);
        // Drawn after everything else, so every other dimension of a
        // seed's world is what it was before membership could change.
        if rng.chance(0.4) {
            let at = rng.between(0, cfg.chaos_ms);
            let kind = match rng.index(3) {
                1 if cfg.nodes > cfg.n => ChangeKind::Leave,
                2 => ChangeKind::Replace,
                _ => ChangeKind::Join,
            };
            cfg.change = Some((at, kind));
        }
        cfg
    }

    /// Everything but the membership change.
    fn draw_shape(rng: &mut Rng, knobs: Knobs) -> Self {
        let nodes = rng.between(3, 6) as usize;
        let n = rng.between(2, 3).min(nodes as u64) as usize;
        let delay_ms_max = [5, 60, 400, 1_200][rng.index(4)];
        let faults = Faults {
            drop: rng.share(0.4, 0.25),
            duplicate: rng.share(0.3, 0.2),
            delay_ms_max,
            slow: rng.share(0.3, 0.2),
            fast_fail: rng.share(0.5, 1.0),
            refuse: rng.share(0.05, 0.2),
            garble: rng.share(0.1, 0.1),
        };
        let timeout_ms = [1_000, 3_000, 5_000][rng.index(3)];
        Self {
            timeout_ms,
            // A short attempt only where the network is quick: where every
            // call times out, every put fails, yet each leaves a sibling on
            // every coordinator it tried, and within a few dozen writes the
            // key meets its sibling limit (see the test of small limits).
            attempt_ms: if delay_ms_max <= 60 {
                [150, 1_000, timeout_ms][rng.index(3)]
            } else {
                [1_000, timeout_ms][rng.index(2)]
            },
            nodes,
            n,
            r: rng.between(1, n as u64) as usize,
            w: rng.between(1, n as u64) as usize,
            policy: if rng.chance(0.75) {
                ConflictPolicy::Siblings
            } else {
                ConflictPolicy::Lww
            },
            durability: if rng.chance(0.5) {
                Durability::Sync
            } else {
                Durability::Buffered
            },
            clients: rng.between(1, 4) as usize,
            keys: rng.between(1, 3) as usize,
            ops_per_client: rng.between(2, 10) as u32,
            concurrency: rng.between(1, 3) as usize,
            op_gap_ms_max: [0, 200, 1_500][rng.index(3)],
            chaos_ms: rng.between(500, 8_000),
            faults,
            crashes: rng.chance(0.6),
            wipe_share: rng.share(0.5, 0.6),
            partitions: rng.chance(0.4),
            nemesis_gap_ms_max: rng.between(200, 2_000),
            hint_pass_ms: rng.between(700, 3_000),
            clock_skew_ms_max: [0, 50, 2_000][rng.index(3)],
            limits: if knobs.small_sibling_limits {
                let max = rng.between(2, 4) as u32;
                StoreLimits {
                    siblings_warn: max,
                    siblings_max: max,
                    ..StoreLimits::default()
                }
            } else {
                StoreLimits::default()
            },
            // Drawn last, so every other dimension of a seed's world is
            // what it was before reads could fan out to `R` first.
            speculate_after_ms: rng.chance(0.5).then(|| [1, 20, 200, 2_000][rng.index(4)]),
            // Drawn after everything else, for the same reason.
            repair: [Repair::Reads, Repair::Exchanges, Repair::Both][rng.index(3)],
            exchange_pass_ms: rng.chance(0.5).then(|| rng.between(500, 3_000)),
            change: None,
        }
    }
}

/// What a test may change about its worlds; everything is off in the CI
/// worlds.
///
/// Most knobs are deliberate bugs: each brings back a mistake the node
/// once made or could make, so a test can show that the checkers catch
/// it. A simulation that finds nothing wrong with a broken node proves
/// nothing about a working one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// A restarted node keeps its actors (Riak's "kv679": counters that
    /// went back in time re-issue dots).
    pub reuse_actor: bool,
    /// A stand-in keeps its stand-in actor after dropping delivered hints.
    pub keep_stand_in_actor: bool,
    /// Hint delivery never runs.
    pub skip_hint_delivery: bool,
    /// Repair neither reads keys nor runs exchanges, so replicas are left
    /// as the faults (and hint delivery) left them.
    pub skip_repair: bool,
    /// A node's Merkle digests hash each key without its object, so two
    /// replicas holding different versions of a key look the same to an
    /// exchange.
    pub digest_ignores_object: bool,
    /// A coordinator replaces every value it holds, whatever the writer
    /// had seen (last-write-wins by mistake in a siblings store).
    pub put_ignores_context: bool,
    /// A node stores a transfer page's objects over what it holds instead
    /// of syncing them in, so a page can undo a newer write that reached
    /// the incoming replica directly.
    pub transfer_page_replaces: bool,
    /// Not a bug but a shape: the store allows only two to four siblings
    /// per key, so the nodes' limit is met (a test of its own plays such
    /// worlds).
    pub small_sibling_limits: bool,
}
