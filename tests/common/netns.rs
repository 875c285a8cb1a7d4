//! Several "hosts" on one machine: Linux network namespaces joined by veth
//! pairs to a bridge, so nodes and clients talk over real routing between
//! real interfaces instead of 127.0.0.1.
//!
//! # What [`Hosts::create`] makes
//!
//! ```text
//!             namespace qn{pid}s{seq}-sw  (the "switch")
//!        +----------------- br0 ------------------+
//!        p1                 p2        ...         pK        (veth ends)
//!        |                  |                     |
//!   eth0 10.77.X.1     eth0 10.77.X.2   ...  eth0 10.77.X.K
//!   namespace           namespace              namespace
//!   qn{pid}s{seq}-1     qn{pid}s{seq}-2        qn{pid}s{seq}-K
//! ```
//!
//! - One switch namespace holding the bridge `br0`, and K host namespaces,
//!   each with `lo` up and one veth pair whose `eth0` end carries
//!   10.77.X.k/24 and whose `pk` end is a port of the bridge. Both ends are
//!   created in place (`ip -n SWITCH link add pk type veth peer name eth0
//!   netns HOST`), so no interface ever appears in the root namespace, and
//!   the root namespace's interfaces, addresses and routes are never
//!   touched.
//! - Names are unique per run: the process id and a per-process sequence
//!   number (two tests of one binary run at once). Interface names (`br0`,
//!   `pk`, `eth0`) live inside our own namespaces, so they cannot collide
//!   and stay well under the 15-byte limit. X is derived from the same
//!   pair; since every run has its own bridge, two runs with the same X
//!   would still not see each other.
//! - Every host has its own port space, so a node can listen on a fixed
//!   port ([`NODE_PORT`]).
//!
//! # Clean-up
//!
//! [`Hosts`]'s `Drop` deletes every namespace it created (also while a
//! failing test unwinds); deleting a namespace destroys its veth ends, and
//! the bridge goes with the switch. Processes still running in a host keep
//! its namespace alive without a name until they exit, so drop the nodes
//! first (declare them after the `Hosts`). A run that was killed before
//! `Drop` leaves namespaces named after a dead process id: the next
//! [`Hosts::create`] deletes those.
//!
//! # Running
//!
//! Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and
//! `ip` from iproute2 (`.ci/run` installs it when missing). Where either is
//! missing, [`available`] prints `SKIPPED: ...` on stderr and the test
//! returns early: `cargo test --test multihost -- --nocapture` shows why.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The port a node listens on inside its host.
pub const NODE_PORT: u16 = 7400;

/// Where `ip netns add` puts the namespaces it names.
const NETNS_DIR: &str = "/run/netns";

/// Every name we create starts with this, then the process id.
const PREFIX: &str = "qn";

/// Hosts per set: addresses 10.77.X.1..=HOSTS_MAX in one /24.
const HOSTS_MAX: usize = 250;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`; the error is `ip`'s own complaint.
fn ip<I, S>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this machine lets us create network namespaces. If not, says
/// so loudly on stderr: the caller then returns without testing.
pub fn available() -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        Some("not root: creating network namespaces needs CAP_SYS_ADMIN".to_string())
    } else if let Err(e) = ip(["-V"]) {
        Some(format!("{e} (install iproute2)"))
    } else {
        let probe = format!("{PREFIX}{}p", std::process::id());
        match ip(["netns", "add", &probe]) {
            Ok(()) => ip(["netns", "del", &probe]).err(),
            Err(e) => Some(e),
        }
    };
    match why {
        None => true,
        Some(why) => {
            eprintln!("\nSKIPPED: multi-host test needs network namespaces: {why}\n");
            false
        }
    }
}

/// Deletes namespaces left by runs that died before their `Drop`: names
/// `qn{pid}...` whose process no longer exists.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(["netns", "del", &name]);
        }
    }
}

/// A switch namespace with a bridge and K host namespaces plugged into it;
/// see the module doc. Hosts are numbered from 1.
pub struct Hosts {
    /// `qn{pid}s{seq}`: every namespace name starts with it.
    stem: String,
    /// The third octet of every host address.
    subnet: u8,
    /// Number of hosts.
    count: usize,
    /// Namespaces made so far, deleted in reverse order on drop.
    made: Vec<String>,
}

impl Hosts {
    /// Creates the switch and `count` hosts. Panics (after deleting what
    /// it made) if `ip` refuses; call [`available`] first.
    pub fn create(count: usize) -> Self {
        assert!((1..=HOSTS_MAX).contains(&count), "1..={HOSTS_MAX} hosts");
        sweep_stale();
        let pid = std::process::id();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let mut hosts = Self {
            stem: format!("{PREFIX}{pid}s{seq}"),
            subnet: ((pid.wrapping_mul(31).wrapping_add(seq)) % 250 + 1) as u8,
            count,
            made: Vec::new(),
        };
        // On failure `hosts` is dropped while the panic unwinds, which
        // deletes whatever was made.
        hosts
            .build()
            .unwrap_or_else(|e| panic!("cannot create hosts: {e}"));
        hosts
    }

    fn build(&mut self) -> Result<(), String> {
        let switch = self.switch();
        self.add_namespace(&switch)?;
        ip(["-n", &switch, "link", "set", "lo", "up"])?;
        ip(["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(["-n", &switch, "link", "set", "br0", "up"])?;
        for k in 1..=self.count {
            let host = self.ns(k);
            let port = format!("p{k}");
            self.add_namespace(&host)?;
            ip(["-n", &host, "link", "set", "lo", "up"])?;
            ip([
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &host,
            ])?;
            ip(["-n", &switch, "link", "set", &port, "master", "br0"])?;
            ip(["-n", &switch, "link", "set", &port, "up"])?;
            let cidr = format!("{}/24", self.addr(k));
            ip(["-n", &host, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(["-n", &host, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    fn add_namespace(&mut self, name: &str) -> Result<(), String> {
        ip(["netns", "add", name])?;
        self.made.push(name.to_string());
        Ok(())
    }

    /// The switch namespace's name.
    pub fn switch(&self) -> String {
        format!("{}-sw", self.stem)
    }

    /// Host `host`'s namespace name.
    pub fn ns(&self, host: usize) -> String {
        assert!((1..=self.count).contains(&host), "no host {host}");
        format!("{}-{host}", self.stem)
    }

    /// The prefix of every host's namespace name: host K is `{prefix}K`.
    pub fn ns_prefix(&self) -> String {
        format!("{}-", self.stem)
    }

    /// Host `host`'s address (on its `eth0`).
    pub fn addr(&self, host: usize) -> Ipv4Addr {
        assert!((1..=self.count).contains(&host), "no host {host}");
        Ipv4Addr::new(10, 77, self.subnet, host as u8)
    }

    /// A command that runs `program` inside host `host`
    /// (`ip netns exec NS program`; `ip` execs it in place, so the child's
    /// pid is the program's own and signals reach it).
    pub fn exec(&self, host: usize, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec"])
            .arg(self.ns(host))
            .arg(program);
        command
    }

    /// Runs `f` on a new thread that has moved into host `host`'s network
    /// namespace: every socket `f` opens belongs to that host. For library
    /// calls the CLI has no command for; the calling thread's namespace
    /// does not change.
    pub fn run_in<T: Send>(&self, host: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("{NETNS_DIR}/{}", self.ns(host));
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Whether process `pid` runs in host `host`'s network namespace (the
    /// same namespace inode as the host's name).
    pub fn holds(&self, host: usize, pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata(format!("{NETNS_DIR}/{}", self.ns(host)));
        let its = std::fs::metadata(format!("/proc/{pid}/ns/net"));
        match (ours, its) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in self.made.drain(..).rev() {
            if let Err(e) = ip(["netns", "del", &name]) {
                eprintln!("netns harness: {e}");
            }
        }
    }
}
