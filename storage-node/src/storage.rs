//! LMDB storage: the only module that knows LMDB.
//!
//! One environment per node with named databases:
//! - `data`: `store length ‖ store ‖ partition (u32 BE) ‖ key` → the slot
//!   of `objects` holding its object (or, as older nodes wrote it, the
//!   object itself: see `records`)
//! - `objects`: slot (u64 BE) → object, slots in the order keys arrived
//! - `free`: slots of deleted objects, for the next new keys
//! - `hints`: `home node (u64 BE) ‖ data key` → object held for another
//!   node (a hashed form when that is too long for LMDB: see `keys`)
//! - `merkle`: `store length ‖ store ‖ partition ‖ segment (u16 BE)` →
//!   segment hash: the in-memory segments as a clean stop left them (see
//!   `merkle`)
//! - `meta`: node id, reset secret, membership document, Merkle format
//!
//! Stored objects and documents carry a format byte in front of their
//! postcard bytes so the layout can evolve; records of older formats decode
//! through `legacy`. Reads run on the caller's thread in a read
//! transaction; all writes go through [`crate::writer`], which batches them
//! into one transaction each.

pub mod compact;
pub mod dirlock;
mod drop;
mod hints;
mod keys;
mod legacy;
mod merkle;
mod records;
mod scan;
#[cfg(test)]
mod slot_tests;
#[cfg(test)]
mod tests;
mod transfer;

pub use hints::HintsPage;
pub use keys::{data_key, partition_prefix, split_data_key, LMDB_KEY_BYTES_MAX};
pub use merkle::{MerkleSource, PartitionSummary};
pub use scan::{only_tombstones, ScanPage, ScanRequest, StorageStats, StoreStats};

use lmdb::{Database, DatabaseFlags, Environment, EnvironmentFlags, Transaction, WriteFlags};
use quire_shared::{ActorId, Membership, NodeId, Object};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

/// Format byte of stored objects and meta records.
const FORMAT_V1: u8 = 1;
/// Format byte of the membership document since it carries grants;
/// formats 1 to 4 decode through `legacy`.
const MEMBERSHIP_FORMAT_V5: u8 = 5;
const META_NODE_ID: &[u8] = b"node_id";
/// LMDB's data file in the data directory.
const DATA_FILE: &str = "data.mdb";
const META_RESET_SECRET: &[u8] = b"reset_secret";
const META_MEMBERSHIP: &[u8] = b"membership";

/// LMDB's errors, with a full data file told apart: the one an operator
/// must act on.
impl From<lmdb::Error> for StorageError {
    fn from(e: lmdb::Error) -> Self {
        match e {
            lmdb::Error::MapFull => StorageError::Full,
            e => StorageError::Lmdb(e),
        }
    }
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// LMDB reported an error.
    #[error("lmdb: {0}")]
    Lmdb(lmdb::Error),
    /// The data file reached its size limit: writes are refused until an
    /// operator raises it; reads go on.
    #[error("the data file is full (storage.map_size_bytes in node.toml): raise it and restart the node; reads go on meanwhile")]
    Full,
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored record does not decode: the database is damaged or newer
    /// than this binary.
    #[error("stored record under {0} does not decode")]
    Corrupt(String),
    /// The batch this write was part of did not commit; nothing of it was
    /// stored.
    #[error("write not committed: {0}")]
    NotCommitted(String),
    /// The writer thread is gone (node shutting down).
    #[error("storage writer stopped")]
    WriterStopped,
    /// An fsync failed earlier: the node takes no more writes and stops
    /// (see `writer::failstop`).
    #[error("node stopped taking writes after an fsync failure: {0}")]
    FailStopped(String),
    /// The data directory belongs to another node than the one the
    /// node's certificate names: a certificate or a directory mixed up.
    #[error("the data directory belongs to node {stored}, but the certificate names node {certificate}: use that node's certificate, or an empty data directory")]
    IdentityMismatch {
        /// The node id stored in the data directory.
        stored: NodeId,
        /// The node id the certificate names.
        certificate: NodeId,
    },
    /// Another process (a running node, or `quire-node compact`) holds
    /// the data directory.
    #[error("data directory {path} is in use by another process{} (a running quire-node?): stop it first; one node per data directory", holder.map_or(String::new(), |pid| format!(" (last recorded holder: process {pid})")))]
    Locked {
        /// The directory.
        path: String,
        /// The holder's process id, when it is known.
        holder: Option<u32>,
    },
    /// `quire-node compact` could not compact; the data file was left as
    /// it was.
    #[error("compaction: {0}; the data file was left as it was")]
    Compaction(String),
    /// `quire-node compact` replaced the data file with its checked copy,
    /// and then failed to tidy up.
    #[error("compaction: the data file was replaced by its checked copy, but then: {0}")]
    AfterCompaction(String),
}

impl StorageError {
    /// A file or directory of the data directory failed with `source`.
    fn dir(path: &Path, source: std::io::Error) -> Self {
        Self::Dir {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The node's identity, made once per data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Identity in the membership document.
    pub node_id: NodeId,
    /// Actor in the dots this node makes as a home replica: new at every
    /// start, never stored (see [`Storage::open`] for why).
    pub actor_id: ActorId,
    /// Secret behind the node's QUIC stateless-reset tokens (RFC 9000
    /// §10.3). Kept across restarts so a restarted node can tell clients
    /// that their old connections are gone, at once.
    pub reset_secret: [u8; 32],
}

/// A random id; zero is reserved so that "no id" can never be confused
/// with one.
pub fn fresh_id() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// Handle to the LMDB environment and its databases. Cheap to share.
#[derive(Clone)]
pub struct Storage {
    env: std::sync::Arc<Environment>,
    data: Database,
    objects: Database,
    free: Database,
    hints: Database,
    merkle: Database,
    meta: Database,
    /// Set by tests to make every fsync fail, as a dying disk would.
    sync_fault: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Set by the `test_skip_fsync` test hook: `sync` does nothing.
    sync_skip: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Takes turns between the fsyncs of the data file (a commit's own,
    /// and [`Storage::sync`] from the writer or the flusher).
    flushes: std::sync::Arc<Flushes>,
    /// The Merkle segments of every partition held, in memory (read back
    /// or rebuilt at open, kept current by every commit, saved at a clean
    /// stop: see `merkle`).
    index: merkle::Index,
    /// Where the open found the segments (see [`Storage::merkle_source`]).
    merkle_source: merkle::MerkleSource,
    /// The data directory's lock, held while any handle is alive.
    lock: std::sync::Arc<dirlock::DirLock>,
    /// LMDB's data file, for its size.
    data_file: std::sync::Arc<std::path::PathBuf>,
}

/// The data file's fsyncs, one at a time, and the first that failed.
///
/// Linux reports a failed write-back to the first fsync of the file after
/// it, not to every one: a commit's fsync running beside the flusher's
/// could return success for pages the flusher's call learned were lost,
/// and LMDB would then write a meta page naming them. Taking turns, and
/// refusing every commit and sync once one has failed, closes that gap.
#[derive(Default)]
struct Flushes {
    turn: std::sync::Mutex<()>,
    failed: std::sync::OnceLock<String>,
}

impl Flushes {
    /// Waits for this thread's turn to fsync; refuses once one failed.
    fn turn(&self) -> Result<std::sync::MutexGuard<'_, ()>, StorageError> {
        let turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        match self.failed.get() {
            Some(why) => Err(StorageError::FailStopped(why.clone())),
            None => Ok(turn),
        }
    }

    /// Records a failed write-back (kept: the first one says why).
    fn failed(&self, e: &StorageError) {
        let _ = self.failed.set(e.to_string());
    }
}

/// Errnos with which fsync reports that written pages did not reach the
/// disk (see fsync(2)): after one, the kernel may have dropped them.
const WRITE_BACK_ERRNOS: [i32; 3] = [
    5,   // EIO
    28,  // ENOSPC
    122, // EDQUOT
];

impl StorageError {
    /// True when this is a failed write-back of the data file, or a
    /// refusal because one happened: the node must stop taking writes.
    pub fn is_write_back_failure(&self) -> bool {
        match self {
            StorageError::Lmdb(lmdb::Error::Other(errno)) => WRITE_BACK_ERRNOS.contains(errno),
            StorageError::FailStopped(_) => true,
            _ => false,
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    encode_as(FORMAT_V1, v)
}

fn encode_as<T: Serialize>(format: u8, v: &T) -> Vec<u8> {
    let mut out = vec![format];
    out.extend(postcard::to_allocvec(v).expect("stored records always encode"));
    out
}

fn corrupt(what: &[u8]) -> StorageError {
    StorageError::Corrupt(String::from_utf8_lossy(what).into_owned())
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &[u8]) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => postcard::from_bytes(body).map_err(|_| corrupt(what)),
        _ => Err(corrupt(what)),
    }
}

/// The stored membership document, in the current or an older format.
fn get_membership_in(
    txn: &impl Transaction,
    meta: Database,
) -> Result<Option<Membership>, StorageError> {
    match txn.get(meta, &META_MEMBERSHIP) {
        Ok(bytes) => legacy::decode_membership(bytes, MEMBERSHIP_FORMAT_V5)
            .map(Some)
            .ok_or_else(|| corrupt(META_MEMBERSHIP)),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn get_in<T: DeserializeOwned>(
    txn: &impl Transaction,
    db: Database,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match txn.get(db, &key) {
        Ok(bytes) => decode(bytes, key).map(Some),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Mode of the LMDB data and lock files.
pub const DATA_FILE_MODE: u32 = 0o600;
/// Mode of the data directory.
pub const DATA_DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) as [`DATA_DIR_MODE`], and takes
/// group and other access away from an existing one: the directory holds
/// every stored value and the node's identity.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "data directory was open to others; now 700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DATA_DIR_MODE))?;
    }
    Ok(())
}

impl Storage {
    /// Opens (creating if needed) the environment in `dir` and returns it
    /// with the node's identity, made on first open.
    pub fn open(dir: &Path, map_size_bytes: u64) -> Result<(Self, Identity), StorageError> {
        Self::open_as(dir, map_size_bytes, None)
    }

    /// Like [`Storage::open`], for the node `node_id` (the one its
    /// certificate names): a new data directory takes that id, and one
    /// that already belongs to another node is refused
    /// ([`StorageError::IdentityMismatch`]).
    pub fn open_as(
        dir: &Path,
        map_size_bytes: u64,
        node_id: Option<NodeId>,
    ) -> Result<(Self, Identity), StorageError> {
        Self::open_with(dir, map_size_bytes, node_id, EnvironmentFlags::empty())
    }

    /// Like [`Storage::open_as`] on a disk that ignores flushes: nothing
    /// this environment commits or syncs after opening is fsynced. For the power-loss
    /// tests' `test_skip_fsync` hook, to show that their filesystem loses
    /// what was not fsynced.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn open_ignoring_flushes(
        dir: &Path,
        map_size_bytes: u64,
        node_id: Option<NodeId>,
    ) -> Result<(Self, Identity), StorageError> {
        let (storage, identity) =
            Self::open_with(dir, map_size_bytes, node_id, EnvironmentFlags::NO_SYNC)?;
        storage
            .sync_skip
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok((storage, identity))
    }

    /// [`Storage::open_as`] with `extra` LMDB flags.
    fn open_with(
        dir: &Path,
        map_size_bytes: u64,
        node_id: Option<NodeId>,
        extra: EnvironmentFlags,
    ) -> Result<(Self, Identity), StorageError> {
        private_dir(dir).map_err(|source| StorageError::dir(dir, source))?;
        let lock = dirlock::DirLock::take(dir, dirlock::NODE_WAIT)?;
        // An interrupted compaction's copy: never renamed, so never used,
        // and up to a data file's size. Not a reason to stay down.
        if let Err(e) = compact::remove_leftover(dir) {
            tracing::warn!(error = %e, "could not remove an interrupted compaction's copy");
        }
        // A compaction's rename made durable before this node writes on
        // top of the file it put there.
        compact::sync_dir(dir)?;
        let env = Environment::new()
            // A commit fsyncs the pages it wrote, then writes its meta
            // page (the root that makes the commit current) without a
            // flush; the writer calls `sync` after each batch holding a
            // `sync`-store write, which flushes that meta page, and the
            // flusher does on an interval for the rest. Not `NO_SYNC`:
            // there a meta page can reach the disk before the pages it
            // points to (a flush writes a file's dirty pages in any order,
            // and the meta pages come first in the file), and LMDB's
            // documentation says a system crash "can corrupt the
            // database" unless the filesystem preserves write order. With
            // `NO_META_SYNC` a meta page is written only after its pages
            // were flushed, so a crash undoes at most the commits whose
            // meta page was not flushed yet, and the data stays whole.
            .set_flags(EnvironmentFlags::NO_TLS | EnvironmentFlags::NO_META_SYNC | extra)
            .set_max_dbs(8)
            .set_map_size(map_size_bytes as usize)
            // The data and lock files: the node's user only, whatever the
            // umask of whoever started it.
            .open_with_permissions(dir, DATA_FILE_MODE)?;
        let data = env.create_db(Some("data"), DatabaseFlags::empty())?;
        let objects = env.create_db(Some(records::OBJECTS_DB), DatabaseFlags::empty())?;
        let free = env.create_db(Some(records::FREE_DB), DatabaseFlags::empty())?;
        let hints = env.create_db(Some("hints"), DatabaseFlags::empty())?;
        let merkle = env.create_db(Some("merkle"), DatabaseFlags::empty())?;
        let meta = env.create_db(Some("meta"), DatabaseFlags::empty())?;
        let mut storage = Self {
            env: std::sync::Arc::new(env),
            data,
            objects,
            free,
            hints,
            merkle,
            meta,
            sync_fault: Default::default(),
            sync_skip: Default::default(),
            flushes: Default::default(),
            index: Default::default(),
            merkle_source: merkle::MerkleSource::Rebuilt,
            lock: std::sync::Arc::new(lock),
            data_file: std::sync::Arc::new(dir.join(DATA_FILE)),
        };
        storage.load_merkle()?;
        let identity = storage.load_or_create_identity(node_id)?;
        Ok((storage, identity))
    }

    fn load_or_create_identity(&self, named: Option<NodeId>) -> Result<Identity, StorageError> {
        let mut txn = self.env.begin_rw_txn()?;
        let node_id = match get_in::<u64>(&txn, self.meta, META_NODE_ID)? {
            Some(stored) => match named {
                Some(certificate) if certificate.0 != stored => {
                    return Err(StorageError::IdentityMismatch {
                        stored: NodeId(stored),
                        certificate,
                    })
                }
                _ => stored,
            },
            None => {
                let v = named.map_or_else(fresh_id, |n| n.0);
                txn.put(self.meta, &META_NODE_ID, &encode(&v), WriteFlags::empty())?;
                v
            }
        };
        // A node must never issue a dot it may have issued before. Its
        // counters live in the data it stores, and that data can go back
        // in time while the node id stays: a buffered store (or a sync store
        // in its narrow window) loses its last interval in an OS crash, or
        // an operator restores the data directory from a backup. Counters
        // restarted from the older state under the same actor would re-issue
        // dots that other replicas already hold for other values, and one
        // acknowledged value would silently vanish (Riak's "kv679"). No
        // state on this disk can tell that it went back, so the actor is new
        // at every start: its dots cannot collide with any dot issued
        // before. The cost is one more DVVSet entry (about a dozen bytes)
        // for each key this node coordinates after a restart; Riak's leased
        // counters would cost less but do not survive a restored backup.
        let actor_id = ActorId(fresh_id());
        let reset_secret = match get_in::<[u8; 32]>(&txn, self.meta, META_RESET_SECRET)? {
            Some(s) => s,
            None => {
                let s: [u8; 32] = rand::random();
                txn.put(
                    self.meta,
                    &META_RESET_SECRET,
                    &encode(&s),
                    WriteFlags::empty(),
                )?;
                s
            }
        };
        txn.commit()?;
        // A commit does not flush its meta page: an identity must be on
        // disk before the node answers as it.
        self.sync()?;
        Ok(Identity {
            node_id: NodeId(node_id),
            actor_id,
            reset_secret,
        })
    }

    /// The stored object under `data_key`, if any.
    pub fn get(&self, data_key: &[u8]) -> Result<Option<Object>, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        records::object_at(&txn, (self.data, self.objects), data_key)
    }

    /// Flushes every committed transaction to disk (fsync). After a
    /// commit, whose own pages are already flushed, this flushes its meta
    /// page: only then does the commit survive a power loss.
    ///
    /// Why two flushes: LMDB's meta page (the root that makes a commit
    /// current) sits at the start of the data file, and one flush writes
    /// a file's dirty pages in no promised order, so a meta page flushed
    /// with its commit's pages could reach the disk before them. The
    /// environment is opened with `NO_META_SYNC`, not `NO_SYNC`, so LMDB
    /// flushes a commit's pages before it writes the meta page.
    /// Once an fsync has failed, every later call fails too.
    pub fn sync(&self) -> Result<(), StorageError> {
        let _turn = self.flushes.turn()?;
        let done = if self.sync_fault.load(std::sync::atomic::Ordering::Relaxed) {
            Err(StorageError::Lmdb(lmdb::Error::Other(5))) // EIO
        } else if self.sync_skip.load(std::sync::atomic::Ordering::Relaxed) {
            Ok(())
        } else {
            self.env.sync(true).map_err(StorageError::from)
        };
        if let Err(e) = &done {
            self.flushes.failed(e);
        }
        done
    }

    /// Makes the next [`Storage::sync`] fail with EIO, as a dying disk
    /// would, and so every commit and sync after it: for tests of the
    /// fail-stop path.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn inject_sync_failure(&self) {
        self.sync_fault
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The size of LMDB's data file on disk. LMDB never shrinks it:
    /// against the bytes of the records held (`StorageStats`), it says
    /// what `quire-node compact` would give back.
    pub fn data_file_bytes(&self) -> std::io::Result<u64> {
        std::fs::metadata(&*self.data_file).map(|m| m.len())
    }

    /// Tells when every handle of this storage is gone and the data
    /// directory may be opened again.
    pub fn lock_watch(&self) -> dirlock::DirLockWatch {
        dirlock::DirLockWatch::of(&self.lock)
    }

    /// The stored membership document, if any.
    pub fn membership(&self) -> Result<Option<Membership>, StorageError> {
        let txn = self.env.begin_ro_txn()?;
        get_membership_in(&txn, self.meta)
    }

    /// Starts a write transaction (writer thread only).
    pub(crate) fn begin_write(&self) -> Result<WriteTxn<'_>, StorageError> {
        Ok(WriteTxn {
            txn: self.env.begin_rw_txn()?,
            storage: self,
            merkle_pending: Vec::new(),
            next_slot: None,
        })
    }
}

/// A write transaction with typed accessors; commit or drop (abort).
pub(crate) struct WriteTxn<'env> {
    txn: lmdb::RwTransaction<'env>,
    storage: &'env Storage,
    /// Segment changes of this transaction, applied to the in-memory
    /// index once it commits.
    merkle_pending: Vec<merkle::Pending>,
    /// The slot after the last of `objects`, once this transaction has
    /// looked it up (see `records`).
    next_slot: Option<u64>,
}

impl WriteTxn<'_> {
    /// The object under `data_key`, seeing this transaction's own writes.
    pub fn get_object(&self, data_key: &[u8]) -> Result<Option<Object>, StorageError> {
        Ok(self.held(data_key)?.map(|held| held.object))
    }

    /// What `data_key` holds: its object and its slot (see `records`).
    fn held(&self, data_key: &[u8]) -> Result<Option<records::Held>, StorageError> {
        let dbs = (self.storage.data, self.storage.objects);
        records::held_at(&self.txn, dbs, data_key)
    }

    /// Stores `object` under `data_key`, and its change in the key's
    /// Merkle segment, in this transaction.
    pub fn put_object(&mut self, data_key: &[u8], object: &Object) -> Result<(), StorageError> {
        let held = self.held(data_key)?;
        self.merkle_change(data_key, held.as_ref().map(|h| &h.object), Some(object))?;
        self.put_record(data_key, held.and_then(|h| h.slot), &encode(object))
    }

    /// Removes the object under `data_key` (and its entry from its Merkle
    /// segment); returns what was there.
    pub fn del_object(&mut self, data_key: &[u8]) -> Result<Option<Object>, StorageError> {
        let Some(held) = self.held(data_key)? else {
            return Ok(None);
        };
        self.merkle_change(data_key, Some(&held.object), None)?;
        self.del_record(data_key, held.slot)?;
        Ok(Some(held.object))
    }

    /// The membership document as this transaction sees it.
    pub fn get_membership(&self) -> Result<Option<Membership>, StorageError> {
        get_membership_in(&self.txn, self.storage.meta)
    }

    /// Stores the membership document.
    pub fn put_membership(&mut self, doc: &Membership) -> Result<(), StorageError> {
        let bytes = encode_as(MEMBERSHIP_FORMAT_V5, doc);
        Ok(self.txn.put(
            self.storage.meta,
            &META_MEMBERSHIP,
            &bytes,
            WriteFlags::empty(),
        )?)
    }

    /// Commits: fsyncs the pages written, then writes the meta page
    /// without flushing it (see [`Storage::sync`]). Refused, and nothing
    /// written, once an fsync of the data file has failed.
    pub fn commit(self) -> Result<(), StorageError> {
        let storage = self.storage;
        let flushes = &storage.flushes;
        let _turn = flushes.turn()?;
        let done = self.txn.commit().map_err(StorageError::from);
        match &done {
            Ok(()) => storage.index.apply(&self.merkle_pending),
            Err(e) if e.is_write_back_failure() => flushes.failed(e),
            Err(_) => {}
        }
        done
    }
}
