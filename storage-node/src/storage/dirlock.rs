//! The data directory's lock: one process at a time.
//!
//! LMDB lets several processes open one environment, and says never to
//! open it twice in one process. Nothing stopped two nodes from sharing a
//! data directory by mistake (a copied config), nor an offline tool such
//! as [`super::compact`] from rewriting the data file under a running
//! node, which would lose every write the node made meanwhile. A node
//! holds an exclusive lock on `node.lock` in its data directory for as
//! long as its storage is open, with its process id in the file; the lock
//! goes with the process, however it ends.

use super::{StorageError, DATA_FILE_MODE};
use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "node.lock";

/// How long a node's open waits for the lock before it says who holds it:
/// a node restarted at once (a test, a supervisor that does not wait for
/// the old process) may start while the old one is still exiting.
pub const NODE_WAIT: Duration = Duration::from_secs(5);

/// Held while the storage is open; the lock is released when it drops.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Tells when every handle of a storage is gone and its lock released.
#[derive(Clone, Debug)]
pub struct DirLockWatch(Weak<DirLock>);

impl DirLockWatch {
    /// A watch on `lock`.
    pub fn of(lock: &Arc<DirLock>) -> Self {
        Self(Arc::downgrade(lock))
    }

    /// Waits (blocking, polling) up to `limit` for the lock to be
    /// released; true if it was.
    pub fn released_within(&self, limit: Duration) -> bool {
        let began = Instant::now();
        while self.0.strong_count() > 0 {
            if began.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl DirLock {
    /// Takes the lock of the data directory `dir`, waiting up to `wait`;
    /// refuses with [`StorageError::Locked`], naming the holder's process
    /// id, if another process (or another open storage of this process)
    /// keeps it.
    pub fn take(dir: &Path, wait: Duration) -> Result<Self, StorageError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| StorageError::dir(&path, source);
        let mut file = OpenOptions::new()
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
                Ok(()) => break,
                Err(Errno::WOULDBLOCK) if began.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(Errno::WOULDBLOCK) => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    return Err(StorageError::Locked {
                        path: dir.display().to_string(),
                        holder: holder.trim().parse().ok(),
                    });
                }
                Err(e) => return Err(io(e.into())),
            }
        }
        // Who holds it, for the refusal above in another process.
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(Self { _file: file })
    }
}
