//! `quire cluster transfers [--wait [--parallel N] [--max-rate MB/S]]`:
//! where each transfer of the pending change stands, or, with `--wait`,
//! moving the data now (several transfers at once, at a byte rate) until
//! the change flips.

use crate::cli::output::{line, print, unreachable_suffix, Report};
use anyhow::bail;
use quire_client::{Client, TransferPace, TransferReport, MAX_PARALLEL_TRANSFERS};
use serde::Serialize;
use std::time::Duration;

/// `--parallel`: a number of transfers from 1 to
/// [`MAX_PARALLEL_TRANSFERS`], checked before anything is asked of the
/// cluster, so a typo is not clamped silently into a different rate.
pub(super) fn parse_parallel(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_PARALLEL_TRANSFERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of transfers from 1 to {MAX_PARALLEL_TRANSFERS}"
        )),
    }
}

/// `--max-rate`: megabytes (10^6 bytes) per second, a positive decimal
/// number, or `unlimited`.
pub(super) fn parse_rate(text: &str) -> Result<TransferPace, String> {
    if text == "unlimited" {
        return Ok(TransferPace::UNLIMITED);
    }
    match text.parse::<f64>() {
        Ok(mb) if mb.is_finite() && mb > 0.0 && mb * 1e6 >= 1.0 && mb * 1e6 < u64::MAX as f64 => {
            Ok(TransferPace::per_second((mb * 1e6) as u64))
        }
        _ => Err("expected megabytes per second above 0 (such as 8 or 0.5), or `unlimited`".into()),
    }
}

/// What `transfers` prints.
#[derive(Serialize)]
struct Transfers(TransferReport);

impl Report for Transfers {
    fn text(&self, out: &mut String) {
        let r = &self.0;
        let Some(change) = r.change else {
            line(out, format_args!("no membership change is moving data"));
            return;
        };
        if r.flipped && r.transfers.is_empty() {
            line(
                out,
                format_args!(
                    "the change of epoch {change} has flipped (another client, such as the maintenance loop of `quire up`, finished its transfers)"
                ),
            );
            return;
        }
        for t in &r.transfers {
            line(
                out,
                format_args!(
                    "{} partition {:>5} -> {}  {:<7}  {} keys, {} bytes{}",
                    t.store,
                    t.partition,
                    t.to,
                    t.state,
                    t.keys,
                    t.bytes,
                    match t.eta_s {
                        Some(eta) => format!(", {} B/s, about {eta} s left", t.rate_bytes_per_s),
                        None => String::new(),
                    }
                ),
            );
        }
        line(
            out,
            format_args!(
                "change of epoch {change}: {} pending, {} active, {} done, {} bytes moved{}{}{}",
                r.pending,
                r.active,
                r.done,
                r.bytes,
                if r.waiting > 0 {
                    format!("; {} waited for a slot on their receiver", r.waiting)
                } else {
                    String::new()
                },
                if r.flipped { "; flipped" } else { "" },
                unreachable_suffix(&r.unreachable)
            ),
        );
    }
}

/// Prints where the transfers stand; with `wait` (transfers in flight at
/// once, and their pace), drives them until the change flips or `limit`
/// passes.
pub(super) async fn transfers(
    client: &Client,
    wait: Option<(usize, TransferPace)>,
    limit: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let report = if let Some(parallel) = wait {
        let bar = quire::progress::bar("transfers done", 0);
        let report = client
            .drive_transfers(parallel, limit, |r| {
                bar.set_length(r.pending + r.active + r.done);
                bar.set_position(r.done);
            })
            .await;
        bar.finish_and_clear();
        if report.change.is_some() && !report.flipped {
            print(&Transfers(report), json)?;
            bail!("the change did not finish within {} s", limit.as_secs());
        }
        report
    } else {
        client.transfers().await
    };
    print(&Transfers(report), json)
}
