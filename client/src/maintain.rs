//! Maintenance any client may run: hint delivery (Dynamo §4.6), a
//! partition per interval of Merkle anti-entropy ([`crate::repair`]), and
//! a second's worth of paced pages per interval of a membership change's
//! transfers ([`crate::change`]).
//!
//! Stand-ins keep objects for home replicas that were down. A pass asks
//! every node for the hints it holds for each other node (in pages the
//! stand-in bounds by bytes), replicates them home, and once the home node
//! has stored them tells the stand-in to drop them, naming each by the
//! clock of the copy delivered. A hint written to between delivery and
//! drop stays for the next pass, so nothing acknowledged is lost on the
//! way.

use crate::change::TransferPace;
use crate::client::Client;
use crate::repair::{NoReply, Replicas};
use quire_shared::wire::{DeliveredHint, Reply, Request};
use quire_shared::{Member, Membership};
use std::time::Duration;

/// Hints asked for per page.
const HINTS_PAGE: u32 = 256;

/// The pace of the maintenance loop's transfers: gentle enough that the
/// foreground does not notice them (docs/benchmarks.md, "Pacing
/// transfers by bytes"). An operator who wants the data moved sooner runs
/// `quire cluster transfers --wait` beside it.
pub const BACKGROUND_TRANSFER_PACE: TransferPace = TransferPace::per_second(2_000_000);

/// Pages of a membership change's transfers copied per maintenance step:
/// a second at [`BACKGROUND_TRANSFER_PACE`] (a page is a hundredth of a
/// second of it), so a step does not hold up the loop's other work long.
const TRANSFER_PAGES_PER_STEP: usize = 100;

/// How long a membership epoch stands before the maintenance loop drops
/// old owners' copies: time for clients on the older document to learn
/// the new one (they would otherwise read an old owner that no longer
/// holds anything).
pub const DROP_GRACE: Duration = Duration::from_secs(60);

/// What one maintenance pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceReport {
    /// Hints stored by their home node.
    pub hints_delivered: u64,
    /// Hints the stand-ins dropped after delivery.
    pub hints_dropped: u64,
    /// Hints left where they are (home node unreachable, or changed since
    /// read); the next pass tries again.
    pub hints_pending: u64,
    /// Nodes that could not be asked or delivered to, with why.
    pub unreachable: Vec<String>,
}

/// Why one maintenance request did not get a usable answer.
enum CallError {
    /// The node answered with a refusal: it is up.
    Refused(String),
    /// No (valid) answer: the node is treated as down for this pass.
    Unreachable(String),
}

impl From<NoReply> for CallError {
    fn from(e: NoReply) -> Self {
        match e.code {
            Some(_) => CallError::Refused(e.message),
            None => CallError::Unreachable(e.message),
        }
    }
}

/// One hint-delivery pass over every pair of members of `doc`, pages of
/// `page` hints: what [`Client::maintain_once`] runs, written against the
/// repair seam so the simulation runs it too.
pub(crate) async fn deliver_all(
    replicas: &impl Replicas,
    doc: &Membership,
    page: u32,
) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    for holder in &doc.members {
        for target in &doc.members {
            if target.id != holder.id {
                let pass = Pass {
                    replicas,
                    doc,
                    page,
                };
                pass.deliver(holder, target, &mut report).await;
            }
        }
    }
    report.unreachable.sort();
    report.unreachable.dedup();
    report
}

/// What one pass delivers with.
struct Pass<'a, R> {
    replicas: &'a R,
    doc: &'a Membership,
    page: u32,
}

impl Client {
    /// Runs one hint-delivery pass over every node of the cluster.
    pub async fn maintain_once(&self) -> MaintenanceReport {
        deliver_all(self, &self.membership(), HINTS_PAGE).await
    }

    /// Runs [`Client::maintain_once`], one anti-entropy exchange (the
    /// next partition in turn, [`Client::repair_step`]) and a second's
    /// worth of a membership change's transfers at
    /// [`BACKGROUND_TRANSFER_PACE`] ([`Client::transfer_step`]) every
    /// `interval` in the background until the returned handle is aborted
    /// or the runtime stops; once per membership epoch, [`DROP_GRACE`]
    /// after it appeared, old owners' copies are handed off and dropped
    /// ([`Client::hand_off_and_drop`]). One partition per interval is the
    /// rate limit of anti-entropy: an exchange of converged replicas costs
    /// three small requests per replica, so the foreground's latency does
    /// not notice it. An application that links
    /// the SDK runs this in one of its instances (any client may; passes
    /// by several clients are harmless).
    pub fn spawn_maintenance(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let client = self.clone();
        tokio::spawn(async move {
            let mut next_partition = 0usize;
            // The epoch last seen, since when, and whether its old copies
            // were dropped.
            let mut epoch = (0u64, tokio::time::Instant::now(), false);
            // Why the last step's flip waited: said again only when it
            // changes, not at every interval while a node stays down.
            let mut flip_waited = Vec::new();
            loop {
                tokio::time::sleep(interval).await;
                let now = client.membership().epoch;
                if now != epoch.0 {
                    epoch = (now, tokio::time::Instant::now(), false);
                }
                if !epoch.2 && epoch.1.elapsed() >= DROP_GRACE {
                    let dropped = client.hand_off_and_drop().await;
                    epoch.2 = dropped.unreachable.is_empty();
                    if dropped.partitions_dropped > 0 {
                        tracing::info!(
                            partitions = dropped.partitions_dropped,
                            keys = dropped.keys_dropped,
                            handed_off = dropped.keys_handed_off,
                            "dropped old owners' copies"
                        );
                    }
                }
                let repair = client.repair_step(&mut next_partition).await;
                if repair.keys_repaired > 0 {
                    tracing::info!(
                        keys = repair.keys_repaired,
                        segments = repair.segments_differing,
                        bytes = repair.bytes,
                        "anti-entropy exchange repaired keys"
                    );
                }
                if repair.tombstones_reaped > 0 {
                    tracing::info!(
                        keys = repair.tombstones_reaped,
                        "anti-entropy exchange reaped deleted keys"
                    );
                }
                let moved = client
                    .transfer_step(TRANSFER_PAGES_PER_STEP, BACKGROUND_TRANSFER_PACE)
                    .await;
                if moved.keys_copied > 0 || moved.flipped {
                    tracing::info!(
                        keys = moved.keys_copied,
                        done = moved.done,
                        left = moved.pending + moved.active,
                        flipped = moved.flipped,
                        "membership change transfer step"
                    );
                }
                if !moved.flip_waits_for.is_empty() && moved.flip_waits_for != flip_waited {
                    tracing::warn!(
                        waits_for = moved.flip_waits_for.join("; "),
                        "membership change: every transfer is done, but the flip waits for replicas its closing exchanges could not finish with (`quire cluster abort` abandons the change)"
                    );
                }
                flip_waited = moved.flip_waits_for;
                let report = client.maintain_once().await;
                if report.hints_delivered > 0 || report.hints_pending > 0 {
                    tracing::info!(
                        delivered = report.hints_delivered,
                        pending = report.hints_pending,
                        "hint delivery pass"
                    );
                }
            }
        })
    }
}

impl<R: Replicas> Pass<'_, R> {
    /// One request; what maintenance learns about a node's health,
    /// requests use (the SDK's [`Replicas`] feeds its failure detector),
    /// and a stand-in's hints are validated before they are sent home.
    async fn call(&self, node: &Member, request: &Request) -> Result<Reply, CallError> {
        Ok(self.replicas.ask(node, request).await?)
    }

    async fn deliver(&self, holder: &Member, target: &Member, report: &mut MaintenanceReport) {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = Request::Hints {
                target: target.id,
                after: after.clone(),
                limit: self.page,
            };
            let (hints, next) = match self.call(holder, &page).await {
                Ok(Reply::Hints { hints, next }) => (hints, next),
                Ok(_) => {
                    report.unreachable.push(format!(
                        "{}: answered a hints page with an unexpected reply",
                        holder.addr
                    ));
                    return;
                }
                Err(CallError::Refused(e) | CallError::Unreachable(e)) => {
                    report.unreachable.push(format!("{}: {e}", holder.addr));
                    return;
                }
            };
            if hints.is_empty() {
                return;
            }
            let mut delivered: Vec<DeliveredHint> = Vec::new();
            let mut target_down = false;
            for hint in hints {
                if target_down {
                    report.hints_pending += 1;
                    continue;
                }
                // The stand-in drops by clock: the object itself goes home
                // once, not back to the stand-in too.
                let clock = hint.object.join();
                let replicate = Request::Replicate {
                    store: hint.store.clone(),
                    key: hint.key.clone(),
                    object: hint.object,
                    hint: None,
                };
                // A hint for a node that no longer holds the key (it left,
                // or was replaced) goes to the key's home replicas now.
                if let Some(homes) = self.new_homes(target, &hint.store, &hint.key) {
                    if self.deliver_to_homes(&homes, &replicate, report).await {
                        delivered.push(DeliveredHint {
                            store: hint.store,
                            key: hint.key,
                            clock,
                        });
                    } else {
                        report.hints_pending += 1;
                    }
                    continue;
                }
                match self.call(target, &replicate).await {
                    Ok(Reply::Stored(_)) => delivered.push(DeliveredHint {
                        store: hint.store,
                        key: hint.key,
                        clock,
                    }),
                    Ok(other) => {
                        report.hints_pending += 1;
                        tracing::warn!(target = %target.addr, answer = ?other, "hint not stored");
                    }
                    // The home node refuses this one hint (say, it would
                    // exceed the key's limits until someone merges it): it
                    // stays pending, and the hints after it still go home.
                    Err(CallError::Refused(why)) => {
                        report.hints_pending += 1;
                        tracing::warn!(target = %target.addr, %why, "hint refused by its home node");
                    }
                    Err(CallError::Unreachable(e)) => {
                        report.hints_pending += 1;
                        report.unreachable.push(format!("{}: {e}", target.addr));
                        target_down = true;
                    }
                }
            }
            let sent = delivered.len() as u64;
            report.hints_delivered += sent;
            if !delivered.is_empty() {
                let drop = Request::DropHints {
                    target: target.id,
                    hints: delivered,
                };
                match self.call(holder, &drop).await {
                    Ok(Reply::Dropped(n)) => {
                        report.hints_dropped += u64::from(n);
                        report.hints_pending += sent - u64::from(n).min(sent);
                    }
                    _ => report.hints_pending += sent,
                }
            }
            match next {
                Some(cursor) if !target_down => after = Some(cursor),
                _ => return,
            }
        }
    }

    /// The home replicas a hint for `target` must go to instead of it,
    /// when `target` is no longer a home (or incoming) replica of the key:
    /// it left the cluster or was replaced since the hint was written.
    /// `None` when `target` is still where the key belongs.
    fn new_homes(&self, target: &Member, store: &str, key: &[u8]) -> Option<Vec<Member>> {
        let doc = self.doc;
        let n = usize::from(doc.store(store)?.n);
        let partition = doc.partition_of(store, key);
        if doc.is_home_or_incoming(target.id, partition, n) {
            return None;
        }
        let homes = doc.preference_list(store, key, n);
        Some(
            homes
                .home()
                .iter()
                .filter_map(|id| doc.member(*id).cloned())
                .collect(),
        )
    }

    /// Replicates a hint to every one of `homes`; true when all stored it
    /// (only then may the stand-in forget it).
    async fn deliver_to_homes(
        &self,
        homes: &[Member],
        replicate: &Request,
        report: &mut MaintenanceReport,
    ) -> bool {
        let mut all = !homes.is_empty();
        for home in homes {
            match self.call(home, replicate).await {
                Ok(Reply::Stored(_)) => {}
                Ok(_) | Err(CallError::Refused(_)) => all = false,
                Err(CallError::Unreachable(e)) => {
                    report.unreachable.push(format!("{}: {e}", home.addr));
                    all = false;
                }
            }
        }
        all
    }
}
