//! Checkers over the history a Jepsen-style run records: set adds for
//! siblings stores, a last-write-wins register for LWW stores.
//!
//! # Set adds (siblings stores)
//!
//! Each add puts a unique element into a set by read-modify-write with the
//! read's context; siblings are merged with a union. A siblings store
//! keeps every write its context has not seen, so no acknowledged add may
//! be missing from the final read: the checker fails on any. Unacknowledged
//! adds may or may not be there (a write can land and its answer be lost).
//!
//! # Last-write-wins register (LWW stores)
//!
//! Each write puts a unique value, either blind or with the context of a
//! read whose value it records. Nodes stamp values with the coordinating
//! node's clock, raised above every stamp the coordinator already holds for
//! the key, and a write replaces whatever its context covers whatever the
//! stamps. So, for the final value `f` of a key (after healing and
//! anti-entropy), these must hold, and the checker fails otherwise:
//!
//! - `f` is a value some client wrote (no phantom), and a key with an
//!   acknowledged write is found;
//! - `f` was not read by a write that was acknowledged (that write's
//!   context covers `f`, so `f` was replaced), unless the copy of `f` that
//!   won is not the one its put was acknowledged with and node clocks
//!   disagree: a put whose coordinator did not answer in time goes to the
//!   next one, and the first may have stored it all the same, stamped by
//!   its own clock. A later write that read `f` covers the copy it read,
//!   not that one, which then races it as any concurrent write does;
//! - without node clock skew: `f` was not acknowledged more than
//!   [`STAMP_SLACK_MS`] before an acknowledged write began (that later
//!   write was stamped later by the same clock, so it beats `f`).
//!
//! Every other acknowledged write `w` is gone, and is classified, never
//! hidden: *read over* (some write read `w` and replaced it), *superseded*
//! (`w` was acknowledged before `f` began: the later write won, as LWW
//! promises), *concurrent* (`w` and `f` overlapped in time: LWW drops one
//! of two concurrent writes by design), or *lost to an older write* (`f`
//! was acknowledged before `w` began, yet `f` won: only clock skew between
//! nodes may cause it, so this count must be 0 without node skew).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How far a stamp may run ahead of the wall clock without skew: a
/// coordinator raises a stamp one millisecond past the newest it holds,
/// so quick successive writes of one key can run a few ms ahead.
pub const STAMP_SLACK_MS: u64 = 25;

/// The result of the set-add checker for one store.
#[derive(Debug, Default)]
pub struct SetReport {
    /// Adds acknowledged.
    pub acked: usize,
    /// Acknowledged adds missing from the final read (must be empty).
    pub lost: Vec<(String, String)>,
    /// Adds that failed or timed out.
    pub unacked: usize,
    /// Of those, how many are present anyway.
    pub unacked_present: usize,
}

/// Checks set adds: `acked` and `unacked` are (key, element) pairs,
/// `present` the union read at the end for each key.
pub fn check_sets(
    acked: &[(String, String)],
    unacked: &[(String, String)],
    present: &BTreeMap<String, BTreeSet<String>>,
) -> SetReport {
    let has = |(key, e): &(String, String)| present.get(key).is_some_and(|s| s.contains(e));
    SetReport {
        acked: acked.len(),
        lost: acked.iter().filter(|a| !has(a)).cloned().collect(),
        unacked: unacked.len(),
        unacked_present: unacked.iter().filter(|u| has(u)).count(),
    }
}

/// One attempted write of a register.
#[derive(Clone, Debug)]
pub struct RegisterWrite {
    /// The key.
    pub key: String,
    /// The unique value written.
    pub value: String,
    /// The value the writer read and wrote over (its context), if any; a
    /// blind write or a read of nothing has `None`.
    pub read: Option<String>,
    /// When the put was sent, since the run started.
    pub invoked: Duration,
    /// When it was acknowledged; `None` if it failed or timed out.
    pub acked: Option<Duration>,
    /// The nodes that acknowledged it, coordinator first (for reports).
    pub stored_on: String,
    /// The stamp of the copy it was acknowledged with (its coordinator's
    /// clock), when acknowledged.
    pub stamp_ms: Option<u64>,
}

/// A key's value after the run, as a cold client reads it.
#[derive(Clone, Debug)]
pub struct FinalValue {
    /// The value.
    pub value: String,
    /// Its stamp: which coordinator's copy of the write won.
    pub stamp_ms: u64,
}

/// The result of the last-write-wins checker.
#[derive(Debug, Default)]
pub struct LwwReport {
    /// Keys checked.
    pub keys: usize,
    /// Writes acknowledged.
    pub acked: usize,
    /// Acknowledged writes that are the final value of their key.
    pub survived: usize,
    /// Acknowledged writes a later write read and replaced.
    pub read_over: usize,
    /// Acknowledged writes superseded by a write that began after them.
    pub superseded: usize,
    /// Acknowledged writes dropped for a concurrent write (by design).
    pub concurrent: usize,
    /// Acknowledged writes dropped for a write acknowledged before they
    /// began (clock skew between nodes; must be 0 without it).
    pub lost_to_older: Vec<String>,
    /// Final values that a later acknowledged write had read and replaced,
    /// back through a second copy of their put: a coordinator the client
    /// gave up on stored it too, stamped by its own clock (the final stamp
    /// is not the acknowledged copy's). Allowed only under node clock skew.
    pub replayed: Vec<String>,
    /// Broken promises: each says which key and why (must be empty).
    pub violations: Vec<String>,
}

/// Checks registers: `writes` every attempted write, `finals` each key's
/// final value (`None`: not found). `node_skew` relaxes the real-time rule.
pub fn check_lww(
    writes: &[RegisterWrite],
    finals: &BTreeMap<String, Option<FinalValue>>,
    node_skew: bool,
) -> LwwReport {
    let slack = Duration::from_millis(STAMP_SLACK_MS);
    let by_value: BTreeMap<&str, &RegisterWrite> =
        writes.iter().map(|w| (w.value.as_str(), w)).collect();
    // Values some write read (and so wrote over), with whether that write
    // was acknowledged.
    let mut read_by: BTreeMap<&str, bool> = BTreeMap::new();
    for w in writes {
        if let Some(r) = &w.read {
            *read_by.entry(r.as_str()).or_default() |= w.acked.is_some();
        }
    }
    let mut report = LwwReport {
        keys: finals.len(),
        ..LwwReport::default()
    };
    for (key, final_value) in finals {
        let mine: Vec<&RegisterWrite> = writes.iter().filter(|w| &w.key == key).collect();
        let acked_here = mine.iter().filter(|w| w.acked.is_some()).count();
        report.acked += acked_here;
        let Some(FinalValue {
            value: f_value,
            stamp_ms: f_stamp,
        }) = final_value
        else {
            if acked_here > 0 {
                report.violations.push(format!(
                    "{key}: not found after {acked_here} acknowledged writes"
                ));
            }
            continue;
        };
        let Some(f) = by_value.get(f_value.as_str()).filter(|f| &f.key == key) else {
            report
                .violations
                .push(format!("{key}: final value {f_value} was never written"));
            continue;
        };
        if read_by.get(f_value.as_str()) == Some(&true) {
            let over: Vec<String> = mine
                .iter()
                .filter(|w| w.acked.is_some() && w.read.as_deref() == Some(f_value.as_str()))
                .map(|w| {
                    format!(
                        "{} (sent at {:?}, stored on {})",
                        w.value, w.invoked, w.stored_on
                    )
                })
                .collect();
            let what = format!(
                "{key}: final value {f_value} (stored on {}, stamped {:?}, final stamp {f_stamp}) \
                 was read and replaced by the acknowledged {over:?}",
                f.stored_on, f.stamp_ms
            );
            // A second copy of `f`'s put, stamped by another coordinator's
            // clock, is a write nobody read: with node clocks apart it may
            // win as any concurrent write stamped ahead may.
            let second_copy = f.stamp_ms.is_some_and(|s| s != *f_stamp);
            if second_copy && node_skew {
                report.replayed.push(what);
            } else {
                report.violations.push(what);
            }
        }
        for w in &mine {
            let Some(w_acked) = w.acked else { continue };
            if w.value == f.value {
                report.survived += 1;
            } else if read_by.contains_key(w.value.as_str()) {
                report.read_over += 1;
            } else if w_acked < f.invoked {
                report.superseded += 1;
            } else if f.acked.is_some_and(|f_acked| f_acked + slack < w.invoked) {
                let what = format!(
                    "{key}: {} (sent at {:?}, stored on {}) lost to {} (acknowledged at {:?})",
                    w.value,
                    w.invoked,
                    w.stored_on,
                    f.value,
                    f.acked.unwrap_or_default()
                );
                if !node_skew {
                    report.violations.push(what.clone());
                }
                report.lost_to_older.push(what);
            } else {
                report.concurrent += 1;
            }
        }
    }
    report
}

impl std::fmt::Display for LwwReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} keys, {} acknowledged writes: {} survived, {} read over, {} superseded, \
             {} dropped as concurrent, {} lost to an older write, {} back through a second \
             copy, {} violations",
            self.keys,
            self.acked,
            self.survived,
            self.read_over,
            self.superseded,
            self.concurrent,
            self.lost_to_older.len(),
            self.replayed.len(),
            self.violations.len()
        )
    }
}
