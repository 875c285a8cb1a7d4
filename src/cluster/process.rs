//! Node processes of a local cluster: spawn, find by pid file, signal.
//!
//! Each node is its own OS process (`quire node --config ...`), in its own
//! process group so a Ctrl-C in the terminal reaches `quire up` only, which
//! then stops the nodes in order.

use super::layout::{Layout, LayoutError};
use rustix::process::{kill_process, test_kill_process, Pid, Signal};
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Reads a pid file; `None` if it is missing or unreadable.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True if `pid` is a live process that looks like a Quire node (the
/// command line is checked so a recycled pid is not mistaken for one).
pub fn is_node_alive(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    if test_kill_process(p).is_err() {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("quire") && text.contains("--config")
        }
        // Not Linux, or gone: trust the signal probe.
        Err(_) => true,
    }
}

/// The live node process started with `config` as its `--config` (by
/// hand: `quire-node --config PATH` or `quire node --config PATH`, the
/// path as the operator typed it, absolute or relative to where the node
/// was started), found through `/proc`. For nodes `quire up` did not start,
/// which have no pid file.
pub fn find_node_by_config(config: &Path) -> Option<i32> {
    let wanted = config.canonicalize().ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let named = args.windows(2).any(|pair| {
            pair[0] == b"--config" && {
                let path = Path::new(std::str::from_utf8(pair[1]).unwrap_or_default());
                // A relative path is relative to the process's directory.
                let full = std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .map(|cwd| cwd.join(path))
                    .unwrap_or_else(|_| path.to_path_buf());
                full.canonicalize().is_ok_and(|p| p == wanted)
            }
        });
        if named && is_node_alive(pid) {
            return Some(pid);
        }
    }
    None
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn signal(pid: i32, signal: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = kill_process(p, signal);
    }
}

/// SIGTERM, the signal a node treats as "stop cleanly".
pub const STOP: Signal = Signal::TERM;

/// SIGKILL, for a node that did not stop in time.
pub const KILL: Signal = Signal::KILL;
/// Asks a node to reload its certificate, key and CA bundle.
pub const RELOAD: Signal = Signal::HUP;

/// SIGSTOP: the node freezes mid-request, as under a long GC pause or a
/// stalled VM, with its sockets open (fault tests).
pub const PAUSE: Signal = Signal::STOP;

/// SIGCONT: a paused node runs on; also sent after SIGTERM so a paused
/// node can stop.
pub const RESUME: Signal = Signal::CONT;

/// Starts node K of `layout` as a child process running `exe node`, logging
/// to `DIR/node-K/node.log`, and records its pid. A non-zero
/// `clock_skew_ms` shifts the node's clock (fault tests; see
/// [`quire_node::CLOCK_SKEW_ENV`]).
pub fn spawn_node(
    exe: &Path,
    layout: &Layout,
    k: usize,
    clock_skew_ms: i64,
) -> Result<Child, LayoutError> {
    let log_path = layout.log_file(k);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LayoutError::Io { path, source }
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let log2 = log.try_clone().map_err(io(&log_path))?;
    // A stale address from the last run must not be mistaken for this one.
    let addr_file = layout.bound_addr_file(k);
    match std::fs::remove_file(&addr_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&addr_file)(e)),
        _ => {}
    }
    let mut command = Command::new(exe);
    if clock_skew_ms != 0 {
        command.env(quire_node::CLOCK_SKEW_ENV, clock_skew_ms.to_string());
    }
    let child = command
        .arg("--config")
        .arg(layout.node_config(k))
        .arg("node")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(io(exe))?;
    let pid_path = layout.pid_file(k);
    std::fs::write(&pid_path, child.id().to_string()).map_err(io(&pid_path))?;
    Ok(child)
}

/// Peak resident memory of process `pid` in bytes (Linux `VmHWM`).
pub fn peak_memory_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Resident anonymous memory of process `pid` in bytes (Linux `RssAnon`):
/// what the process itself allocated, without the file pages it maps.
pub fn anon_memory_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "RssAnon:")
}

/// A size in kB from `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
