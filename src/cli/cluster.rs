//! `quire cluster ...`: staged membership changes (join, leave, replace,
//! reweight), `plan` to see what moves, `commit` to start it, `transfers`
//! to watch (or drive) the data moving.
//!
//! Staged changes live beside the client config
//! (`staged-changes.json`), so each command can be its own process;
//! `plan` records the document it planned on, and `commit` refuses when the
//! cluster changed since (another operator's commit wins; re-plan).

use super::output::{line, print, unreachable_suffix, Report};
use super::{client_config_path, connect, ConfigArg};
use anyhow::{bail, Context as _};
use quire::shared::{Change, ChangeError, Membership, MembershipVersion, NodeId};
use quire_client::{Client, TransferPace};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How long `join` and `replace` wait for the new node to answer.
const HELLO_WAIT: Duration = Duration::from_secs(10);

/// `quire cluster ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Stage adding the node running at ADDR (its id comes from the node).
    Join {
        /// The node's address, host:port.
        addr: String,
        /// Its failure domain: replicas of a key go to distinct zones when
        /// the cluster has enough of them.
        #[arg(long, default_value = "local")]
        zone: String,
        /// Its relative capacity: partitions are claimed in proportion.
        #[arg(long, default_value_t = 1)]
        weight: u32,
    },
    /// Stage removing NODE (its id as `quire status` prints it, or its
    /// address): its partitions move to the others.
    Leave {
        /// Node id or address.
        node: String,
    },
    /// Stage handing exactly OLD's partitions to the node running at
    /// NEW_ADDR (a machine that died or is retired); nothing else moves.
    Replace {
        /// The member replaced (id or address).
        old: String,
        /// The new node's address.
        new_addr: String,
        /// The new node's zone.
        #[arg(long, default_value = "local")]
        zone: String,
        /// The new node's weight.
        #[arg(long, default_value_t = 1)]
        weight: u32,
    },
    /// Stage removing an idle NODE (one that left or was replaced) from
    /// the membership document. Refused while it still holds copies
    /// (`quire status` says when it holds nothing), unless it is down.
    Remove {
        /// Node id or address.
        node: String,
    },
    /// Stage a new weight for NODE.
    Reweight {
        /// Node id or address.
        node: String,
        /// The new weight (0 moves everything off the node).
        weight: u32,
    },
    /// Show what the staged changes would move: partitions from -> to,
    /// each node's partitions before and after, an estimate of the bytes.
    Plan,
    /// Commit the planned changes (compare-and-set on the planned
    /// document; refused if the cluster changed since `plan`).
    Commit,
    /// Forget the staged changes.
    Clear,
    /// Where each transfer of the pending change stands. With --wait,
    /// also moves the data (any client may) until the change flips.
    Transfers {
        /// Drive the transfers and return when nothing is pending or active
        /// and the change has flipped; says so if the flip waits for a
        /// replica that does not answer.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds. Default: give up
        /// only after an hour in which no byte moved.
        #[arg(long, requires = "wait")]
        timeout_s: Option<u64>,
        /// With --wait: transfers in flight at once (1 to 64; default 2).
        /// More moves data faster, up to --max-rate and what the nodes'
        /// disks and this client can carry; the maintenance loop keeps its
        /// own gentle rate whatever this says.
        #[arg(long, requires = "wait", value_parser = transfers::parse_parallel)]
        parallel: Option<usize>,
        /// With --wait: most megabytes (10^6 bytes) per second moved,
        /// summed over the transfers in flight, or `unlimited` (pages as
        /// large as the sources allow, no pause). Default 4: on two cores
        /// it kept the foreground's read p99.9 within 2x of its steady
        /// state; unlimited moved over ten times faster and cost the
        /// foreground about three times its tail.
        #[arg(long, requires = "wait", value_name = "MB/S|unlimited", value_parser = transfers::parse_rate)]
        max_rate: Option<TransferPace>,
    },
    /// Abandon the committed change that is moving data (say, its new node
    /// died): the owners stay as they are, joining nodes become idle, and
    /// the copies they received are handed back and dropped by
    /// maintenance. Nothing acknowledged is lost.
    Abort,
    /// Form a new cluster from nodes already running on their hosts (made
    /// with `cert init` and `cert issue node`): the first membership
    /// document, signed by this admin, with the store `default`.
    Form(form::FormArgs),
}

/// What is staged, on disk between commands.
#[derive(Default, Serialize, Deserialize)]
struct Staged {
    /// The changes, in the order staged.
    changes: Vec<Change>,
    /// The document `plan` showed them against; a commit needs it.
    planned_on: Option<MembershipVersion>,
}

impl Staged {
    fn path(config: &ConfigArg) -> PathBuf {
        client_config_path(config.clone()).with_file_name("staged-changes.json")
    }

    fn load(config: &ConfigArg) -> anyhow::Result<Self> {
        let path = Self::path(config);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("staged changes in {} are unreadable", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, config: &ConfigArg) -> anyhow::Result<()> {
        let path = Self::path(config);
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// A member named by id or address.
fn resolve(doc: &Membership, node: &str) -> anyhow::Result<NodeId> {
    if let Some(m) = doc.members.iter().find(|m| m.addr == node) {
        return Ok(m.id);
    }
    match node.parse::<NodeId>() {
        Ok(id) if doc.member(id).is_some() => Ok(id),
        _ => bail!("{node} is neither the id nor the address of a member (see `quire status`)"),
    }
}

/// What staging a change prints.
#[derive(Serialize)]
struct StagedReport {
    staged: Vec<Change>,
}

impl Report for StagedReport {
    fn text(&self, out: &mut String) {
        for c in &self.staged {
            line(out, format_args!("staged: {}", describe(c)));
        }
        line(
            out,
            format_args!("next: `quire cluster plan`, then `quire cluster commit`"),
        );
    }
}

fn describe(c: &Change) -> String {
    match c {
        Change::Join(m) => format!(
            "join {} at {} (zone {}, weight {})",
            m.id, m.addr, m.zone, m.weight
        ),
        Change::Leave(id) => format!("leave {id}"),
        Change::Replace { old, new } => format!("replace {old} with {} at {}", new.id, new.addr),
        Change::Remove(id) => format!("remove idle {id}"),
        Change::Reweight { node, weight } => format!("reweight {node} to {weight}"),
    }
}

/// Runs one `quire cluster` command.
pub async fn cluster(command: ClusterCommand, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    // Forming comes before there is a membership to connect with.
    if let ClusterCommand::Form(args) = command {
        return form::form(args, client_config_path(config), json).await;
    }
    let client = connect(config.clone()).await?;
    let result = run(&client, command, &config, json).await;
    client.settle(Duration::from_secs(5)).await;
    client.close();
    result
}

async fn run(
    client: &Client,
    command: ClusterCommand,
    config: &ConfigArg,
    json: bool,
) -> anyhow::Result<()> {
    let doc = client.membership();
    let stage = |change: Change| -> anyhow::Result<()> {
        let mut staged = Staged::load(config)?;
        staged.changes.push(change);
        // Refuse a change that cannot apply with the others now, so a
        // mistake does not sit in the staged list until `plan`; while an
        // earlier change still moves data, staging waits for it.
        match doc.plan(&staged.changes) {
            Ok(_) | Err(ChangeError::ChangeInProgress(_)) => {}
            Err(e) => bail!("not staged: {e}"),
        }
        staged.planned_on = None;
        staged.save(config)?;
        print(
            &StagedReport {
                staged: staged.changes,
            },
            json,
        )
    };
    match command {
        ClusterCommand::Join { addr, zone, weight } => stage(Change::Join(
            client.member_at(&addr, &zone, weight, HELLO_WAIT).await?,
        )),
        ClusterCommand::Leave { node } => stage(Change::Leave(resolve(&doc, &node)?)),
        ClusterCommand::Replace {
            old,
            new_addr,
            zone,
            weight,
        } => {
            let old = resolve(&doc, &old)?;
            let new = client
                .member_at(&new_addr, &zone, weight, HELLO_WAIT)
                .await?;
            stage(Change::Replace { old, new })
        }
        ClusterCommand::Remove { node } => {
            let id = resolve(&doc, &node)?;
            let member = doc.member(id).expect("resolved to a member");
            // A node that answers must hold nothing any more: its copies
            // are handed off and dropped a minute after the change.
            if let Ok(stats) = client.node_stats(member).await {
                let held: u64 = stats.stores.iter().map(|s| s.objects).sum();
                if held > 0 {
                    bail!("not staged: {node} still holds {held} keys; they are handed off and dropped by maintenance a minute after the change (see `quire status`)");
                }
            }
            stage(Change::Remove(id))
        }
        ClusterCommand::Reweight { node, weight } => stage(Change::Reweight {
            node: resolve(&doc, &node)?,
            weight,
        }),
        ClusterCommand::Plan => plan(client, &doc, config, json).await,
        ClusterCommand::Commit => commit(client, config, json).await,
        ClusterCommand::Clear => {
            Staged::default().save(config)?;
            print(&StagedReport { staged: vec![] }, json)
        }
        ClusterCommand::Transfers {
            wait,
            timeout_s,
            parallel,
            max_rate,
        } => {
            let wait = wait.then(|| {
                (
                    parallel.unwrap_or(quire_client::DEFAULT_PARALLEL_TRANSFERS),
                    max_rate.unwrap_or(quire_client::DEFAULT_TRANSFER_PACE),
                )
            });
            transfers::transfers(client, wait, timeout_s.map(Duration::from_secs), json).await
        }
        ClusterCommand::Form(_) => unreachable!("formed before connecting"),
        ClusterCommand::Abort => {
            let Some(pending) = doc.pending.clone() else {
                bail!(
                    "no change is pending at epoch {}: nothing to abort",
                    doc.epoch
                );
            };
            if !client.abort_change(&pending).await? {
                bail!(
                    "the change of epoch {} flipped or changed before it could be aborted",
                    pending.since
                );
            }
            let now = client.membership();
            print(
                &Aborted {
                    ok: true,
                    change: pending.since,
                    epoch: now.epoch,
                },
                json,
            )
        }
    }
}

mod form;

/// What `cluster abort` prints.
#[derive(Serialize)]
struct Aborted {
    ok: bool,
    /// The change abandoned (the epoch it was committed in).
    change: u64,
    /// The epoch of the document that abandons it.
    epoch: u64,
}

impl Report for Aborted {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "aborted the change of epoch {} at epoch {}: owners unchanged; joining nodes are idle, and maintenance hands back and drops what they received",
                self.change, self.epoch
            ),
        );
    }
}

mod plan;
use plan::plan;

mod transfers;

/// What `commit` prints.
#[derive(Serialize)]
struct Committed {
    epoch: u64,
    transfers: usize,
    missed: Vec<String>,
}

impl Report for Committed {
    fn text(&self, out: &mut String) {
        line(
            out,
            format_args!(
                "committed at epoch {}: {} transfers to run (`quire cluster transfers --wait`, or the maintenance loop of `quire up`){}",
                self.epoch,
                self.transfers,
                unreachable_suffix(&self.missed)
            ),
        );
    }
}

async fn commit(client: &Client, config: &ConfigArg, json: bool) -> anyhow::Result<()> {
    let staged = Staged::load(config)?;
    if staged.changes.is_empty() {
        bail!("nothing is staged: stage changes with `quire cluster join|leave|replace|reweight`");
    }
    let Some(planned_on) = staged.planned_on else {
        bail!("the staged changes were not planned: run `quire cluster plan` and check what moves");
    };
    let (doc, missed) = client.commit_change(&staged.changes, planned_on).await?;
    Staged::default().save(config)?;
    print(
        &Committed {
            epoch: doc.epoch,
            transfers: doc.transfers().len(),
            missed,
        },
        json,
    )
}
