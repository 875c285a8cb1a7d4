//! systemd's notify protocol: `READY=1` once the node serves, `STOPPING=1`
//! when it begins to stop, and `WATCHDOG=1` keep-alives when the unit asks
//! for them (`WatchdogSec=`).
//!
//! With `Type=notify` systemd starts dependent units only after `READY=1`
//! (a node that is still opening LMDB is not "up"), and with a watchdog it
//! restarts a node that hangs. Outside systemd (`NOTIFY_SOCKET` unset) every
//! call here does nothing.

use sd_notify::NotifyState;
use std::time::Duration;

/// Tells systemd the node serves.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// Tells systemd the node is stopping (clean shutdown or fail-stop).
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// If the unit has a watchdog, starts a task that pings it at half its
/// interval while `alive()` holds (a node that fail-stopped stops pinging,
/// so systemd restarts it even if the exit hangs).
pub fn spawn_watchdog(alive: impl Fn() -> bool + Send + 'static) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let interval = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        loop {
            if !alive() {
                return;
            }
            notify(&[NotifyState::Watchdog]);
            tokio::time::sleep(interval).await;
        }
    });
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
