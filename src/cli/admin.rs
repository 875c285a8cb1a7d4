//! Looking after a cluster from the command line: `status`, `store create`
//! and `maintain` (hint delivery).

use super::output::{line, print, Report};
use super::{connect, ConfigArg};
use clap::ValueEnum;
use quire::shared::{ConflictPolicy, Durability, StoreConfig, StoreLimits};
use quire_client::MaintenanceReport;
use serde::Serialize;
use std::time::Duration;

/// `quire store ...`.
#[derive(clap::Subcommand, Debug)]
pub enum StoreCommand {
    /// Create a store. N replicas per key; a get waits for R answers, a put
    /// for W stored copies (R + W > N makes reads see the latest
    /// acknowledged write while no node fails).
    Create(CreateStoreArgs),
}

/// `quire store create`.
#[derive(clap::Args, Debug)]
pub struct CreateStoreArgs {
    /// Store name: 1 to 24 bytes of a-z, 0-9, '_' or '-'.
    name: String,
    /// Replicas per key.
    #[arg(long, default_value_t = 3)]
    n: u8,
    /// Answers a get waits for.
    #[arg(long, default_value_t = 2)]
    r: u8,
    /// Stored copies a put waits for.
    #[arg(long, default_value_t = 2)]
    w: u8,
    /// How concurrent writes are resolved.
    #[arg(long, value_enum, default_value_t = PolicyArg::Siblings)]
    policy: PolicyArg,
    /// When a write is acknowledged relative to the disk.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    durability: DurabilityArg,
    /// Siblings past which nodes log a warning for a key.
    #[arg(long, default_value_t = StoreLimits::default().siblings_warn)]
    siblings_warn: u32,
    /// Siblings a write may not grow a key past: such a write is refused
    /// until one is made with a context that merges them.
    #[arg(long, default_value_t = StoreLimits::default().siblings_max)]
    siblings_max: u32,
    /// Bytes a write may not grow a key's whole object (every sibling)
    /// past.
    #[arg(long, default_value_t = StoreLimits::default().object_bytes_max)]
    object_bytes_max: u32,
    /// Milliseconds a delete's tombstone is kept before anti-entropy may
    /// reap it (once every home replica holds it).
    #[arg(long, default_value_t = StoreLimits::default().tombstone_grace_ms)]
    tombstone_grace_ms: u64,
}

/// `--policy`: the closed set of conflict policies.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PolicyArg {
    /// Keep every concurrent value as a sibling for the application.
    Siblings,
    /// Keep the newest timestamp; concurrent older writes are dropped.
    Lww,
}

impl From<PolicyArg> for ConflictPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Siblings => ConflictPolicy::Siblings,
            PolicyArg::Lww => ConflictPolicy::Lww,
        }
    }
}

/// `--durability`: the closed set of durability modes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    /// fsync before a write is acknowledged.
    Sync,
    /// Flushed every 100 ms (node setting `storage.flush_interval_ms`):
    /// faster; an OS crash or power loss may undo the last interval's
    /// acknowledged writes (a node process crash loses nothing).
    Buffered,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Buffered => Durability::Buffered,
        }
    }
}

/// `quire maintain`.
#[derive(clap::Args, Debug)]
pub struct MaintainArgs {
    /// One pass, print a summary, exit.
    #[arg(long)]
    once: bool,
    /// Pause between passes.
    #[arg(long, default_value_t = 2_000, value_name = "MS")]
    interval_ms: u64,
}

/// A store as `status` and `store create` show it.
#[derive(Serialize)]
struct StoreView {
    name: String,
    n: u8,
    r: u8,
    w: u8,
    policy: &'static str,
    durability: &'static str,
    siblings_warn: u32,
    siblings_max: u32,
    object_bytes_max: u32,
    tombstone_grace_ms: u64,
}

impl StoreView {
    fn of(s: &StoreConfig) -> Self {
        Self {
            name: s.name.clone(),
            n: s.n,
            r: s.r,
            w: s.w,
            policy: s.policy.name(),
            durability: s.durability.name(),
            siblings_warn: s.limits.siblings_warn,
            siblings_max: s.limits.siblings_max,
            object_bytes_max: s.limits.object_bytes_max,
            tombstone_grace_ms: s.limits.tombstone_grace_ms,
        }
    }

    fn describe(&self) -> String {
        format!(
            "n={} r={} w={}  policy {}  durability {}",
            self.n, self.r, self.w, self.policy, self.durability
        )
    }
}

/// A node as `status` shows it.
#[derive(Serialize)]
struct NodeView {
    id: String,
    addr: String,
    up: bool,
    /// `member`, `joining`, `leaving` or `idle` (owns nothing).
    state: &'static str,
    /// Partitions it owns now.
    partitions: usize,
    /// Partitions it will own once the pending change flips.
    partitions_after: usize,
    /// For an idle node that answers: the keys it still holds (copies not
    /// yet handed off and dropped). Stop it only once this is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    held_keys: Option<u64>,
    /// The URL its Prometheus metrics are served at (`null` when it is
    /// down or serves none).
    metrics: Option<String>,
    /// How far its clock is ahead of this machine's, in ms (negative:
    /// behind; `null` when down).
    clock_offset_ms: Option<i64>,
}

/// A node clock this far from the machine running `quire status` (ms)
/// is warned about: last-write-wins stores order writes by node clocks.
const CLOCK_SKEW_WARN_MS: i64 = 500;

/// What `status` prints.
#[derive(Serialize)]
struct Status {
    #[serde(skip)]
    cluster_id: quire::shared::ClusterId,
    epoch: u64,
    #[serde(skip)]
    partitions: u32,
    nodes: Vec<NodeView>,
    stores: Vec<StoreView>,
    /// Certificates that expire within 30 days.
    expiring_certificates: Vec<super::expiry::Expiring>,
}

impl Report for Status {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "cluster {}, epoch {}, {} partitions",
                self.cluster_id, self.epoch, self.partitions
            ),
        );
        for n in &self.nodes {
            let up = if n.up { "up" } else { "DOWN" };
            let mut owns = if n.partitions == n.partitions_after {
                format!("{} partitions", n.partitions)
            } else {
                format!("{} -> {} partitions", n.partitions, n.partitions_after)
            };
            match n.held_keys {
                Some(0) => owns.push_str("; holds nothing: safe to stop"),
                Some(k) => owns.push_str(&format!(
                    "; still holds {k} keys (dropped by maintenance a minute after the change)"
                )),
                None => {}
            }
            if let Some(url) = &n.metrics {
                owns.push_str(&format!("  metrics {url}"));
            }
            line(
                out,
                format_args!(
                    "node {}  {:<21}  {up:<4}  {:<7}  {owns}",
                    n.id, n.addr, n.state
                ),
            );
        }
        for s in &self.stores {
            line(out, format_args!("store {}  {}", s.name, s.describe()));
        }
        for e in &self.expiring_certificates {
            line(out, format_args!("{}", super::expiry::warning(e)));
        }
        for n in &self.nodes {
            if let Some(offset) = n.clock_offset_ms.filter(|o| o.abs() > CLOCK_SKEW_WARN_MS) {
                let by = offset.unsigned_abs();
                let way = if offset > 0 { "ahead of" } else { "behind" };
                line(
                    out,
                    format_args!(
                        "warning: node {}'s clock is {by} ms {way} this machine's: last-write-wins stores order writes by node clocks; keep clocks in sync (NTP)",
                        n.id
                    ),
                );
            }
        }
    }
}

/// `quire status`.
pub async fn status(config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let client = connect(config).await?;
    let doc = client.membership();
    let nodes = client.status().await;
    let mut held = std::collections::BTreeMap::new();
    for n in nodes.iter().filter(|n| n.up) {
        if doc.state_of(n.id) == quire::shared::MemberState::Idle {
            if let Some(m) = doc.member(n.id) {
                if let Ok(stats) = client.node_stats(m).await {
                    held.insert(n.id, stats.stores.iter().map(|s| s.objects).sum::<u64>());
                }
            }
        }
    }
    let status = Status {
        cluster_id: doc.cluster_id,
        epoch: doc.epoch,
        partitions: doc.partitions,
        nodes: nodes
            .iter()
            .map(|n| {
                let (partitions, partitions_after) = doc.partitions_owned(n.id);
                NodeView {
                    id: n.id.to_string(),
                    addr: n.addr.clone(),
                    up: n.up,
                    state: doc.state_of(n.id).name(),
                    partitions,
                    partitions_after,
                    held_keys: held.get(&n.id).copied(),
                    metrics: n.metrics.clone(),
                    clock_offset_ms: n.clock_offset_ms,
                }
            })
            .collect(),
        stores: doc.stores.iter().map(StoreView::of).collect(),
        expiring_certificates: super::expiry::expiring(&client),
    };
    client.close();
    print(&status, json)
}

/// What `store create` prints.
#[derive(Serialize)]
struct Created {
    ok: bool,
    epoch: u64,
    #[serde(skip)]
    store: StoreView,
}

impl Report for Created {
    fn text(&self, out: &mut String) {
        let s = &self.store;
        line(
            out,
            format_args!(
                "created store {} (n={}, r={}, w={}, policy {}, durability {}) at epoch {}",
                s.name, s.n, s.r, s.w, s.policy, s.durability, self.epoch
            ),
        );
    }
}

/// `quire store ...`.
pub async fn store(command: StoreCommand, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let StoreCommand::Create(args) = command;
    let client = connect(config).await?;
    let store = StoreConfig {
        name: args.name,
        n: args.n,
        r: args.r,
        w: args.w,
        policy: args.policy.into(),
        durability: args.durability.into(),
        limits: StoreLimits {
            siblings_warn: args.siblings_warn,
            siblings_max: args.siblings_max,
            object_bytes_max: args.object_bytes_max,
            tombstone_grace_ms: args.tombstone_grace_ms,
        },
    };
    let (doc, missed) = client.create_store(store.clone()).await?;
    for m in &missed {
        eprintln!("quire: warning: {m} (it will learn the store from clients)");
    }
    client.close();
    let created = Created {
        ok: true,
        epoch: doc.epoch,
        store: StoreView::of(&store),
    };
    print(&created, json)
}

/// What a maintenance pass prints.
impl Report for MaintenanceReport {
    fn text(&self, out: &mut String) {
        let r = self;
        let unreachable = super::output::unreachable_suffix(&r.unreachable);
        line(
            out,
            format_args!(
                "hints delivered {}, dropped {}, pending {}{unreachable}",
                r.hints_delivered, r.hints_dropped, r.hints_pending
            ),
        );
    }
}

/// `quire maintain`.
pub async fn maintain(args: MaintainArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let client = connect(config).await?;
    super::reload::on_sighup(client.clone());
    if args.once {
        print(&client.maintain_once().await, json)?;
    } else {
        let shutdown = quire_node::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            let report = client.maintain_once().await;
            if report.hints_delivered > 0 || report.hints_pending > 0 {
                print(&report, json)?;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(Duration::from_millis(args.interval_ms)) => {}
            }
        }
    }
    client.close();
    Ok(())
}
