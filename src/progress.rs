//! Progress bars on stderr for commands that take a while (bench loading,
//! repair, transfers), drawn only when stderr is a terminal: scripts,
//! logs and `--json` consumers get clean output, and a hidden bar costs
//! nothing to update.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A bar counting `total` steps of `what`, or a hidden one when stderr is
/// not a terminal.
pub fn bar(what: &str, total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
