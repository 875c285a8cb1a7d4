//! LazyFS for tests: a FUSE filesystem in memory that keeps what was not
//! fsynced apart and throws it away on a simulated power cut. The idea is
//! Jepsen's LazyFS (Ramos et al., "LazyFS: a FUSE file system with an
//! internal dedicated page cache to inject faults", INESC TEC); this is a
//! much smaller filesystem written for Quire's node data directories.
//!
//! # Semantics
//!
//! - **File contents.** Each file has a *durable image* and its *current
//!   contents*. Reads, writes, `mmap` and truncation work on the current
//!   contents. `fsync` or `fdatasync` of the file (including the implicit
//!   one after each write to an `O_SYNC`/`O_DSYNC` descriptor) copies the
//!   current contents, size included, into the durable image. Closing a
//!   file makes nothing durable.
//! - **Metadata.** Creating, renaming and unlinking files and directories,
//!   and `chmod`, are durable as soon as they return (as on a filesystem
//!   with synchronous metadata; directory `fsync` is accepted and does
//!   nothing). A file created and never fsynced survives a cut, empty; a
//!   file renamed over another before being fsynced survives with only
//!   what was fsynced under its new name, like the zero-length files of
//!   delayed allocation. Truncation is a change of contents, durable only
//!   with the next fsync.
//! - **A cut** ([`LazyMount::cut`]): the caller first kills, with SIGKILL,
//!   every process using the mount; then the filesystem is unmounted,
//!   every file is reset to its durable image, files unlinked while open
//!   are forgotten, and the same tree is mounted again at the same path.
//!   Remounting also empties the kernel's page cache and attribute caches
//!   of the mount, so nothing from before the cut can be read back.
//! - **One reordering, armed** ([`LazyMount::arm`]): the power goes at
//!   the first write into the start of a named file, and that write
//!   reaches the disk ahead of earlier writes that were not fsynced. LMDB
//!   keeps its meta pages there: a meta page on disk before the pages it
//!   points to must not matter.
//! - **What it does not model**: otherwise writes are never torn or
//!   reordered within a file (what survives is exactly the contents at
//!   the file's last fsync), there are no I/O errors, and an fsync covers
//!   the whole file. A real disk can be harsher than this; losing anything here is
//!   therefore a real bug.
//!
//! The kernel sees an ordinary filesystem: no `direct_io` (so shared and
//! private maps work through the page cache), no writeback cache (so each
//! write reaches the state before `write(2)` returns), and POSIX locks
//! handled by the kernel itself (LMDB locks its lock file).
//!
//! # Layout
//!
//! - `state`: the tree and the rules above, without FUSE;
//! - `fuse`: the `fuser::Filesystem` that maps requests onto the state;
//! - this file: mounting, the cut, unmounting on drop.

mod fuse;
mod state;

pub use state::CutReport;
use state::State;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long an unmount may take before the test gives up on it.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the filesystem cannot be mounted on this machine.
#[derive(Debug)]
pub struct Unavailable(
    /// What is missing or refused, for the `SKIPPED` line.
    pub String,
);

/// A mounted LazyFS. Dropping it unmounts (processes using it must be
/// gone first) and removes the mount point.
pub struct LazyMount {
    state: Arc<Mutex<State>>,
    /// `None` only while a cut remounts.
    session: Option<fuser::BackgroundSession>,
    /// Whether `fusermount3` mounted it with `auto_unmount` (and so must
    /// unmount it).
    helper: bool,
    path: PathBuf,
    /// Holds the (empty) mount point directory; declared last so it is
    /// removed after the unmount.
    _dir: tempfile::TempDir,
}

impl LazyMount {
    /// Mounts an empty filesystem on a new temporary directory. Fails with
    /// [`Unavailable`] when this machine has no usable FUSE (no
    /// `/dev/fuse`, or mounting is not permitted); any other failure
    /// panics, as it is a bug.
    pub fn mount() -> Result<Self, Unavailable> {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            return Err(Unavailable(format!("/dev/fuse cannot be opened: {e}")));
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        let meta = std::fs::metadata(&path).expect("mount point metadata");
        let state = Arc::new(Mutex::new(State::new((meta.uid(), meta.gid()))));
        let (session, helper) = match spawn(&state, &path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Unavailable(format!("mounting FUSE is not permitted: {e}")))
            }
            Err(e) => panic!("mounting LazyFS on {}: {e}", path.display()),
        };
        Ok(Self {
            state,
            session: Some(session),
            helper,
            path,
            _dir: dir,
        })
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The power cut. Every process that used the mount must already be
    /// dead (SIGKILL): the unmount waits for them otherwise.
    pub fn cut(&mut self) -> CutReport {
        self.unmount();
        let report = self.lock().cut();
        let (session, helper) =
            spawn(&self.state, &self.path).expect("remounting LazyFS after a cut");
        self.session = Some(session);
        self.helper = helper;
        report
    }

    /// Arms a power loss at the first write below `below` bytes into a
    /// file named `name` (see `State::arm`); the next [`LazyMount::cut`]
    /// leaves what the disk held at that moment.
    pub fn arm(&self, name: &str, below: u64) {
        self.lock().arm(std::ffi::OsStr::new(name), below);
    }

    /// When the armed power loss happened, if it has.
    pub fn went_off(&self) -> Option<std::time::Instant> {
        self.lock().went_off()
    }

    /// fsync calls seen so far on files, across cuts.
    pub fn fsyncs(&self) -> u64 {
        self.lock().fsyncs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unmounts and waits for the session thread, within a bound.
    fn unmount(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if self.helper {
            // With auto_unmount, fuser leaves the unmount to the helper
            // and does not wait for it: unmount now, so the session ends.
            let status = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("--")
                .arg(&self.path)
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "fusermount3 -u {}: {status:?}",
                self.path.display()
            );
        }
        let (done, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(session.umount_and_join());
        });
        match wait.recv_timeout(UNMOUNT_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("unmounting LazyFS: {e}"),
            Err(_) => {
                panic!("LazyFS did not unmount within {UNMOUNT_TIMEOUT:?}: a process still uses it")
            }
        }
    }
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Unmount without asserting anything more: one panic is enough.
            if self.helper {
                let _ = std::process::Command::new("fusermount3")
                    .args(["-u", "-z", "--"])
                    .arg(&self.path)
                    .status();
            }
            drop(self.session.take());
        } else {
            self.unmount();
        }
    }
}

/// Mounts a filesystem over `state` at `path`, served by a background
/// thread. Asks for `auto_unmount` first, so the kernel drops the mount
/// even if the test process dies without unwinding; that needs the
/// `fusermount3` helper (Debian's `fuse3`), and without it a plain mount
/// (root only) is tried. True with the session if the helper mounted it.
fn spawn(
    state: &Arc<Mutex<State>>,
    path: &Path,
) -> std::io::Result<(fuser::BackgroundSession, bool)> {
    let fs = || fuse::LazyFs {
        state: state.clone(),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("quire-lazyfs".into()),
        fuser::MountOption::AutoUnmount,
    ];
    config.acl = fuser::SessionACL::RootAndOwner;
    match fuser::spawn_mount(fs(), path, &config) {
        Ok(session) => Ok((session, true)),
        Err(auto) => {
            config.mount_options.pop();
            config.acl = fuser::SessionACL::Owner;
            let session = fuser::spawn_mount(fs(), path, &config).map_err(|plain| {
                std::io::Error::new(plain.kind(), format!("{plain} (with auto_unmount: {auto})"))
            })?;
            Ok((session, false))
        }
    }
}
