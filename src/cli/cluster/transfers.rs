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

/// Slowest `--max-rate`, in MB/s: below it a transfer's pages (16 KiB at
/// least) come further apart than a receiver keeps an idle transfer's
/// slot (10 s), and transfers would take each other's slots in turn.
const RATE_MIN_MB: f64 = 0.1;

/// `--max-rate`: megabytes (10^6 bytes) per second, a decimal number of
/// at least [`RATE_MIN_MB`], or `unlimited`.
pub(super) fn parse_rate(text: &str) -> Result<TransferPace, String> {
    if text == "unlimited" {
        return Ok(TransferPace::UNLIMITED);
    }
    match text.parse::<f64>() {
        Ok(mb) if (RATE_MIN_MB..1e12).contains(&mb) => {
            Ok(TransferPace::per_second((mb * 1e6) as u64))
        }
        _ => Err(format!(
            "expected megabytes per second from {RATE_MIN_MB} (such as 4 or 0.5), or `unlimited`"
        )),
    }
}

/// When the operator names no limit, `--wait` gives up after this long
/// without a key moved: a paced move of 100 GB at 4 MB/s takes about 7
/// hours, and must not be cut off for being long, only for being stuck.
const STALL_LIMIT: Duration = Duration::from_secs(3600);

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
        if let Some(why) = flip_waits(r) {
            line(out, format_args!("{why}"));
        } else if !r.flipped && r.is_idle() && r.done > 0 {
            line(
                out,
                format_args!(
                    "every transfer is done; the change flips after its closing exchanges, which `quire cluster transfers --wait` (or the maintenance loop of `quire up`) runs, and `--wait` says what they wait for"
                ),
            );
        }
    }
}

/// Why a change whose transfers are all done has not flipped, and what
/// the operator can do; `None` unless the closing exchanges were tried
/// and could not finish.
fn flip_waits(r: &TransferReport) -> Option<String> {
    if r.flipped || r.flip_waits_for.is_empty() {
        return None;
    }
    Some(format!(
        "every transfer is done, but the flip waits for: {}. Each current and incoming replica of a moving partition must answer its closing exchange (except one that leaves the partition and is down), and the flip follows once they do; if a node is gone for good, `quire cluster abort` abandons the change (nothing acknowledged is lost) and `quire cluster replace` then rebuilds it",
        r.flip_waits_for.join("; ")
    ))
}

/// Prints where the transfers stand; with `wait` (transfers in flight at
/// once, and their pace), drives them until the change flips or `limit`
/// passes (if `None`: until [`STALL_LIMIT`] passes with nothing moved).
pub(super) async fn transfers(
    client: &Client,
    wait: Option<(usize, TransferPace)>,
    limit: Option<Duration>,
    json: bool,
) -> anyhow::Result<()> {
    let report = if let Some((parallel, pace)) = wait {
        let bar = quire::progress::bar("transfers done", 0);
        // The bytes the receivers recorded, to tell a long move from a
        // stuck one: a round cut off by the limit reports no keys copied.
        let mut recorded = 0;
        // Said once per distinct reason, on stderr, while `--wait` goes on.
        let mut told = std::collections::BTreeSet::new();
        let report = loop {
            let report = client
                .drive_transfers((parallel, pace), limit.unwrap_or(STALL_LIMIT), |r| {
                    bar.set_length(r.pending + r.active + r.done);
                    bar.set_position(r.done);
                    if let Some(why) = flip_waits(r) {
                        if told.insert(r.flip_waits_for.clone()) {
                            bar.suspend(|| eprintln!("quire: {why}"));
                        }
                    }
                })
                .await;
            let moving = report.change.is_some() && !report.flipped;
            if !moving || limit.is_some() || report.bytes <= recorded {
                break report;
            }
            recorded = report.bytes;
        };
        bar.finish_and_clear();
        if report.change.is_some() && !report.flipped {
            print(&Transfers(report), json)?;
            match limit {
                Some(limit) => bail!("the change did not finish within {} s", limit.as_secs()),
                None => bail!(
                    "the change stopped moving: nothing moved for {} s",
                    STALL_LIMIT.as_secs()
                ),
            }
        }
        report
    } else {
        client.transfers().await
    };
    print(&Transfers(report), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_why_the_flip_waits_only_when_it_does() {
        let mut r = TransferReport {
            change: Some(4),
            done: 3,
            ..TransferReport::default()
        };
        assert_eq!(flip_waits(&r), None, "no closing exchange ran");
        r.flip_waits_for = vec!["127.0.0.1:7801: cannot connect".into()];
        let why = flip_waits(&r).expect("a reason");
        assert!(
            why.contains("waits for: 127.0.0.1:7801: cannot connect")
                && why.contains("quire cluster abort"),
            "{why}"
        );
        let mut text = String::new();
        Transfers(r.clone()).text(&mut text);
        assert!(text.contains(&why), "{text}");
        r.flipped = true;
        assert_eq!(flip_waits(&r), None, "a flipped change waits for nothing");
        r.flipped = false;
        r.flip_waits_for.clear();
        let mut text = String::new();
        Transfers(r).text(&mut text);
        assert!(
            text.contains("--wait"),
            "the plain report points to --wait: {text}"
        );
    }
}
