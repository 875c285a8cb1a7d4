//! One printer for every command: a result is a `Serialize` struct that
//! also knows its text form, so `--json` and the human output can never
//! disagree about what a command did, and no command formats JSON by hand.

use serde::Serialize;
use std::fmt::Write as _;

/// A command's result, printable as text or as one line of JSON.
pub trait Report: Serialize {
    /// The human form, written line by line into `out`.
    fn text(&self, out: &mut String);
}

/// Prints `report` on stdout: one JSON document with `--json`, else text.
pub fn print(report: &impl Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        let mut out = String::new();
        report.text(&mut out);
        print!("{out}");
        if !out.is_empty() && !out.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

/// `writeln!` into a `String` cannot fail; this keeps callers free of
/// `unwrap`.
pub fn line(out: &mut String, args: std::fmt::Arguments<'_>) {
    let _ = out.write_fmt(args);
    out.push('\n');
}

/// `"; unreachable: a; b"` after a pass's counts, or nothing when every
/// node answered.
pub fn unreachable_suffix(unreachable: &[String]) -> String {
    if unreachable.is_empty() {
        String::new()
    } else {
        format!("; unreachable: {}", unreachable.join("; "))
    }
}
