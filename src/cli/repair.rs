//! `quire repair`: Merkle anti-entropy between the home replicas of every
//! partition, once or on an interval, reaping deleted keys past their
//! store's grace period.

use super::output::{line, print, Report};
use super::{connect, ConfigArg};
use quire_client::RepairReport;
use std::time::Duration;

/// `quire repair`.
#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    /// One pass over every partition, then exit.
    #[arg(long)]
    once: bool,
    /// Only this store's partitions.
    #[arg(long)]
    store: Option<String>,
    /// Pause between passes without --once.
    #[arg(long, default_value_t = 60_000)]
    interval_ms: u64,
}

/// What a repair pass prints.
impl Report for RepairReport {
    fn text(&self, out: &mut String) {
        let r = self;
        let unreachable = super::output::unreachable_suffix(&r.unreachable);
        line(
            out,
            format_args!(
                "partitions checked {}, segments differing {}, keys repaired {}, tombstones reaped {}, {} bytes exchanged{unreachable}",
                r.partitions_checked, r.segments_differing, r.keys_repaired, r.tombstones_reaped, r.bytes
            ),
        );
    }
}

/// A progress bar of partitions repaired, on stderr when it is a
/// terminal (scripts and `--json` consumers get clean output).
fn progress() -> impl FnMut(usize, usize) {
    // Made at the first partition, when the total is known.
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |done, total| {
        let bar =
            bar.get_or_insert_with(|| quire::progress::bar("repair: partitions", total as u64));
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
        }
    }
}

/// `quire repair`.
pub async fn repair(args: RepairArgs, config: ConfigArg, json: bool) -> anyhow::Result<()> {
    let client = connect(config).await?;
    super::reload::on_sighup(client.clone());
    if let Some(store) = &args.store {
        if client.membership().store(store).is_none() {
            anyhow::bail!("store {store:?} does not exist");
        }
    }
    let store = args.store.as_deref();
    if args.once {
        print(&client.repair_once(store, progress()).await, json)?;
    } else {
        let shutdown = quire_node::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            print(&client.repair_once(store, progress()).await, json)?;
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(Duration::from_millis(args.interval_ms)) => {}
            }
        }
    }
    client.close();
    Ok(())
}
