//! The data directory's lock: one process at a time.
//!
//! LMDB lets several processes open one environment, and says never to
//! open it twice in one process. Nothing stopped two nodes from sharing a
//! data directory by mistake (a copied config), nor an offline tool such
//! as [`super::compact`] from rewriting the data file under a running
//! node, which would lose every write the node made meanwhile. A node
//! holds an exclusive lock on `node.lock` in its data directory for as
//! long as its storage is open; the lock goes with the process, however
//! it ends.

use super::{StorageError, DATA_FILE_MODE};
use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "node.lock";

/// How long an open waits for the lock before it says who holds it: a
/// node restarted at once (systemd's `Restart=`, a test) may start while
/// the old process is still exiting.
const WAIT: Duration = Duration::from_secs(5);

/// Held while the storage is open; the lock is released when it drops.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of the data directory `dir`, waiting up to a few
    /// seconds; refuses with [`StorageError::Locked`] if another process
    /// (or another open storage of this process) keeps it.
    pub fn take(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| StorageError::Dir {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .mode(DATA_FILE_MODE)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let began = Instant::now();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Self { _file: file }),
                Err(Errno::WOULDBLOCK) if began.elapsed() < WAIT => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(Errno::WOULDBLOCK) => {
                    return Err(StorageError::Locked {
                        path: dir.display().to_string(),
                    })
                }
                Err(e) => return Err(io(e.into())),
            }
        }
    }
}
