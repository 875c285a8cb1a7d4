//! Offline compaction: the data file rewritten with full pages.
//!
//! LMDB never gives a page back to the file system: a node that dropped
//! partitions after a membership change, or deleted many keys, keeps its
//! largest data file for good (freed pages are only reused). And deletes
//! leave holes in pages: records sit in slots numbered by arrival (see
//! `records`), so a dropped partition frees slots all over the file, which
//! only new keys fill again.
//!
//! Compaction copies every database (but the free slots, see `records`),
//! in key order, into a new environment with LMDB's `MDB_APPEND`, which
//! starts a new page only when the last one is full; checks the copy
//! against the source entry by entry; flushes it; and renames it over the
//! data file. The node must be stopped: the data
//! directory's lock ([`super::dirlock`]) is held throughout, so a running
//! node refuses to start and compaction refuses to run beside one. Until
//! the rename, the old file is untouched; the rename replaces it whole, so
//! an interruption at any point leaves one complete data file or the other.

use super::dirlock::DirLock;
use super::{private_dir, StorageError, DATA_FILE, DATA_FILE_MODE};
use lmdb::{
    Cursor, Database, DatabaseFlags, Environment, EnvironmentFlags, Transaction, WriteFlags,
};
use rustix::process::{fcntl_getlk, Flock, FlockOffsetType, FlockType};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// LMDB's lock file (its reader table): made again at the next open.
const LMDB_LOCK_FILE: &str = "lock.mdb";
/// Where the copy is built, inside the data directory (the same file
/// system, so the rename is atomic).
const WORK_DIR: &str = "compact.tmp";
/// Bytes copied per write transaction: bounds the copy's dirty pages in
/// memory.
const BYTES_PER_COMMIT: usize = 64 << 20;
/// Databases the node keeps; more than these is refused, not guessed at.
const DATABASES_MAX: u32 = 16;

/// What a compaction did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Compacted {
    /// The data directory.
    pub dir: PathBuf,
    /// The data file's size before.
    pub bytes_before: u64,
    /// Its size after.
    pub bytes_after: u64,
    /// Records copied, all databases together.
    pub records: u64,
    /// Named databases in the copy (the free slots' one made empty).
    pub databases: usize,
    /// How long it took, in seconds.
    pub seconds: f64,
}

impl std::fmt::Display for Compacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compacted {}: data file {} -> {} ({:.2}x), {} records in {} databases, {:.1} s",
            self.dir.display(),
            size(self.bytes_before),
            size(self.bytes_after),
            self.bytes_after as f64 / self.bytes_before.max(1) as f64,
            self.records,
            self.databases,
            self.seconds
        )
    }
}

/// `bytes` in KiB, MiB or GiB, whichever reads best.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1 << 20 {
        format!("{:.1} KiB", b / 1024.0)
    } else if bytes < 1 << 30 {
        format!("{:.1} MiB", b / f64::from(1 << 20))
    } else {
        format!("{:.2} GiB", b / f64::from(1 << 30))
    }
}

/// Compacts the stopped node's data directory `dir`, whose map may grow
/// to `map_size_bytes` (the node's `storage.map_size_bytes`).
pub fn compact(dir: &Path, map_size_bytes: u64) -> Result<Compacted, StorageError> {
    let began = Instant::now();
    let source_file = dir.join(DATA_FILE);
    let meta = std::fs::metadata(&source_file).map_err(|e| {
        StorageError::Compaction(match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("{} holds no data file ({DATA_FILE})", dir.display())
            }
            _ => format!("{}: {e}", source_file.display()),
        })
    })?;
    check_owner(
        &source_file,
        meta.uid(),
        rustix::process::geteuid().as_raw(),
    )?;
    let _lock = DirLock::take(dir, Duration::ZERO)?;
    refuse_other_lmdb_users(dir)?;
    let unchanged = Unchanged::of(&source_file)?;
    let bytes_before = unchanged.len;
    let work = dir.join(WORK_DIR);
    remove_leftover(dir)?;
    private_dir(&work).map_err(|source| StorageError::dir(&work, source))?;

    // The copy's map: LMDB maps a file at least as large as it is, so the
    // copy gets the same room even if the setting was lowered since.
    let map = map_size_bytes.max(bytes_before);
    let (records, databases) = match copy_and_verify(dir, &work, map) {
        Ok(done) => done,
        Err(e) => {
            // A full disk is the likeliest cause: give the space back.
            let _ = remove_dir_if_there(&work);
            return Err(match e {
                e @ StorageError::Compaction(_) => e,
                e => StorageError::Compaction(e.to_string()),
            });
        }
    };
    // Our own environments are closed. A process that opened the data
    // file meanwhile without `node.lock` (a node of an older version)
    // would keep writing to the old file, or may have written to it and
    // left: refuse either way, keep the old file.
    let check = refuse_other_lmdb_users(dir).and_then(|()| unchanged.check(&source_file));
    if let Err(e) = check {
        let _ = remove_dir_if_there(&work);
        return Err(e);
    }
    // The old reader table goes first: the next open makes a new one.
    remove_file_if_there(&dir.join(LMDB_LOCK_FILE))
        .map_err(|e| StorageError::Compaction(e.to_string()))?;
    std::fs::rename(work.join(DATA_FILE), &source_file)
        .map_err(|e| StorageError::Compaction(StorageError::dir(&source_file, e).to_string()))?;
    let after = |e: StorageError| StorageError::AfterCompaction(e.to_string());
    sync_dir(dir).map_err(after)?;
    remove_dir_if_there(&work).map_err(after)?;
    Ok(Compacted {
        dir: dir.to_owned(),
        bytes_before,
        bytes_after: file_len(&source_file).map_err(after)?,
        records,
        databases,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// Refuses a run as `me` on a data file of user `owner`: files made as
/// another user (root, by `sudo`) would keep the node, running as the
/// data's owner, from opening them.
fn check_owner(file: &Path, owner: u32, me: u32) -> Result<(), StorageError> {
    if me == owner {
        return Ok(());
    }
    Err(StorageError::Compaction(format!(
        "{} belongs to user {owner}, and this runs as user {me}: run it as the node's user \
         (for example `sudo -u quire quire-node --config … compact`)",
        file.display()
    )))
}

/// What the data file looked like when the copy began: a commit by a
/// process that ignored `node.lock` changes its size or time.
struct Unchanged {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Unchanged {
    fn of(file: &Path) -> Result<Self, StorageError> {
        let meta = std::fs::metadata(file).map_err(|e| StorageError::dir(file, e))?;
        Ok(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }

    fn check(&self, file: &Path) -> Result<(), StorageError> {
        let now = Self::of(file)?;
        if (now.len, now.modified, now.inode) == (self.len, self.modified, self.inode) {
            return Ok(());
        }
        Err(StorageError::Compaction(format!(
            "{} was written to while it was copied, by a process that does not take node.lock",
            file.display()
        )))
    }
}

/// Removes what an interrupted compaction left in `dir`: a copy never
/// renamed, so never used, of up to the data file's size.
pub(crate) fn remove_leftover(dir: &Path) -> Result<(), StorageError> {
    let work = dir.join(WORK_DIR);
    if work.exists() {
        tracing::warn!(dir = %work.display(), "removing what an interrupted compaction left");
    }
    remove_dir_if_there(&work)
}

/// Refuses when another process has the LMDB environment in `dir` open:
/// every process that opens it holds a lock on the first byte of its lock
/// file (LMDB's `mdb_env_excl_lock`), and `F_GETLK` reports another's
/// without taking one.
fn refuse_other_lmdb_users(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(LMDB_LOCK_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::dir(&path, e)),
    };
    let probe = Flock {
        start: 0,
        length: 1,
        pid: None,
        typ: FlockType::WriteLock,
        offset_type: FlockOffsetType::Set,
    };
    match fcntl_getlk(&file, &probe).map_err(|e| StorageError::dir(&path, e.into()))? {
        None => Ok(()),
        Some(held) => Err(StorageError::Locked {
            path: dir.display().to_string(),
            holder: held.pid.map(|p| p.as_raw_nonzero().get() as u32),
        }),
    }
}

/// Copies every database of the environment in `dir` into a new one in
/// `work` (but the free slots: see `records`), checks the copy and
/// flushes it; returns the records copied and the databases made.
fn copy_and_verify(
    dir: &Path,
    work: &Path,
    map_size_bytes: u64,
) -> Result<(u64, usize), StorageError> {
    let source = open_env(dir, map_size_bytes, EnvironmentFlags::READ_ONLY)?;
    // NO_SYNC while copying: one flush at the end covers every page.
    let copy = open_env(work, map_size_bytes, EnvironmentFlags::NO_SYNC)?;
    let names = database_names(&source)?;
    // The copy packs every record into full pages: no hole is left for a
    // free slot to fill, so the free slots' database starts empty and new
    // keys go at the end.
    let (free, copied): (Vec<&String>, Vec<&String>) = names
        .iter()
        .partition(|n| n.as_str() == super::records::FREE_DB);
    for name in free {
        copy.create_db(Some(name), DatabaseFlags::empty())?;
    }
    let mut records = 0;
    for name in &copied {
        records += copy_database(&source, &copy, name)?;
    }
    for name in &copied {
        verify_database(&source, &copy, name)?;
    }
    copy.sync(true)?;
    Ok((records, names.len()))
}

fn open_env(
    dir: &Path,
    map_size_bytes: u64,
    flags: EnvironmentFlags,
) -> Result<Environment, StorageError> {
    Ok(Environment::new()
        .set_flags(EnvironmentFlags::NO_TLS | flags)
        .set_max_dbs(DATABASES_MAX)
        .set_map_size(map_size_bytes as usize)
        .open_with_permissions(dir, DATA_FILE_MODE)?)
}

/// The named databases of `env`: the keys of its main database.
fn database_names(env: &Environment) -> Result<Vec<String>, StorageError> {
    let main = env.open_db(None)?;
    let txn = env.begin_ro_txn()?;
    let mut cursor = txn.open_ro_cursor(main)?;
    let mut names = Vec::new();
    for entry in cursor.iter_start() {
        let (name, _) = entry?;
        let name = std::str::from_utf8(name).map_err(|_| {
            StorageError::Compaction(format!(
                "the main database holds a record that is not a database name: {}",
                String::from_utf8_lossy(name)
            ))
        })?;
        names.push(name.to_string());
    }
    if names.len() as u32 > DATABASES_MAX {
        return Err(StorageError::Compaction(format!(
            "{} databases, more than the {DATABASES_MAX} a node keeps",
            names.len()
        )));
    }
    Ok(names)
}

/// Copies database `name` of `source` into `copy` in key order, a
/// transaction per [`BYTES_PER_COMMIT`]; returns the records copied.
fn copy_database(
    source: &Environment,
    copy: &Environment,
    name: &str,
) -> Result<u64, StorageError> {
    let from = open_plain_db(source, name)?;
    let to = copy.create_db(Some(name), DatabaseFlags::empty())?;
    let read = source.begin_ro_txn()?;
    let mut cursor = read.open_ro_cursor(from)?;
    let mut write = copy.begin_rw_txn()?;
    let (mut records, mut pending) = (0u64, 0usize);
    for entry in cursor.iter_start() {
        let (key, value) = entry?;
        write.put(to, &key, &value, WriteFlags::APPEND)?;
        records += 1;
        pending += key.len() + value.len();
        if pending >= BYTES_PER_COMMIT {
            write.commit()?;
            write = copy.begin_rw_txn()?;
            pending = 0;
        }
    }
    write.commit()?;
    Ok(records)
}

/// Checks that database `name` holds the same records in `copy` as in
/// `source`, in the same order.
fn verify_database(
    source: &Environment,
    copy: &Environment,
    name: &str,
) -> Result<(), StorageError> {
    let (from, to) = (open_plain_db(source, name)?, copy.open_db(Some(name))?);
    let (a, b) = (source.begin_ro_txn()?, copy.begin_ro_txn()?);
    let (mut ca, mut cb) = (a.open_ro_cursor(from)?, b.open_ro_cursor(to)?);
    let mut copied = cb.iter_start();
    for (n, original) in ca.iter_start().enumerate() {
        let original = original?;
        match copied.next().transpose()? {
            Some(c) if c == original => {}
            _ => {
                return Err(StorageError::Compaction(format!(
                    "record {n} of database {name} differs in the copy"
                )))
            }
        }
    }
    if copied.next().is_some() {
        return Err(StorageError::Compaction(format!(
            "the copy of database {name} holds more records than its source"
        )));
    }
    Ok(())
}

/// Opens database `name`, refusing one with flags (sorted duplicates and
/// the like) that a plain copy would not keep: the node makes none.
fn open_plain_db(env: &Environment, name: &str) -> Result<Database, StorageError> {
    let db = env.open_db(Some(name))?;
    let flags = env.begin_ro_txn()?.db_flags(db)?;
    if !flags.is_empty() {
        return Err(StorageError::Compaction(format!(
            "database {name} has flags {flags:?}, which this version does not copy"
        )));
    }
    Ok(db)
}

fn file_len(path: &Path) -> Result<u64, StorageError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| StorageError::dir(path, source))
}

/// Makes the renames in `dir` durable. A file system that cannot flush a
/// directory says so with EINVAL: there is nothing to make durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.raw_os_error() != Some(rustix::io::Errno::INVAL.raw_os_error()) => {
            Err(StorageError::dir(dir, e))
        }
        _ => Ok(()),
    }
}

fn remove_dir_if_there(dir: &Path) -> Result<(), StorageError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::dir(dir, e)),
        _ => Ok(()),
    }
}

fn remove_file_if_there(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::dir(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::slot_tests::{object, MAP};
    use crate::storage::{data_key, Storage};
    use quire_shared::{NodeId, Object};

    /// Each key and what it holds.
    type Held = Vec<(Vec<u8>, Option<Object>)>;

    /// A node's directory after a load in key order (a few records per
    /// transaction) with a hint, and every third record deleted: holes
    /// in the pages, which only compaction closes.
    fn filled(dir: &Path) -> (NodeId, Held) {
        let (storage, identity) = Storage::open(dir, MAP).unwrap();
        let keys: Vec<Vec<u8>> = (0..1200u32)
            .map(|i| data_key("s", i % 4, format!("k{i:06}").as_bytes()))
            .collect();
        for (n, chunk) in keys.chunks(8).enumerate() {
            let mut txn = storage.begin_write().unwrap();
            for (m, key) in chunk.iter().enumerate() {
                txn.put_object(key, &object((n * 8 + m) as u32)).unwrap();
            }
            txn.commit().unwrap();
        }
        let mut txn = storage.begin_write().unwrap();
        txn.put_hint(NodeId(42), &keys[0], &object(9)).unwrap();
        for key in keys.iter().step_by(3) {
            txn.del_object(key).unwrap();
        }
        txn.commit().unwrap();
        storage.sync().unwrap();
        let held = keys
            .iter()
            .map(|k| (k.clone(), storage.get(k).unwrap()))
            .collect();
        (identity.node_id, held)
    }

    #[test]
    fn a_compacted_node_holds_the_same_records_in_a_smaller_file() {
        let dir = tempfile::tempdir().unwrap();
        let (node_id, held) = filled(dir.path());
        assert_eq!(held.iter().filter(|(_, o)| o.is_none()).count(), 400);
        // An interrupted compaction's leftovers are cleared, not used.
        std::fs::create_dir(dir.path().join(WORK_DIR)).unwrap();
        std::fs::write(dir.path().join(WORK_DIR).join(DATA_FILE), b"junk").unwrap();

        let done = compact(dir.path(), MAP).unwrap();
        assert!(
            done.bytes_after * 10 < done.bytes_before * 7,
            "the file shrank by less than 30 %: {done}"
        );
        assert_eq!(done.databases, 6, "{done}");
        assert!(!dir.path().join(WORK_DIR).exists());
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&dir.path().join(DATA_FILE)), DATA_FILE_MODE);

        let (storage, identity) = Storage::open(dir.path(), MAP).unwrap();
        assert_eq!(identity.node_id, node_id, "the node keeps its identity");
        for (key, object) in &held {
            assert_eq!(&storage.get(key).unwrap(), object);
        }
        let hints = storage.hints_page(NodeId(42), None, 10, 1 << 20).unwrap();
        assert_eq!(
            hints.hints,
            vec![(held[0].0.clone(), object(9))],
            "the hint is kept"
        );
        // And it takes writes as before.
        let mut txn = storage.begin_write().unwrap();
        txn.put_object(&held[0].0, &object(1)).unwrap();
        txn.commit().unwrap();
        assert_eq!(storage.get(&held[0].0).unwrap(), Some(object(1)));
    }

    #[test]
    fn compaction_is_refused_while_the_node_has_its_storage_open() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let before = std::fs::read(dir.path().join(DATA_FILE)).unwrap();
        let (_storage, _) = Storage::open(dir.path(), MAP).unwrap();
        let refused = compact(dir.path(), MAP).unwrap_err();
        let me = std::process::id();
        assert!(
            matches!(refused, StorageError::Locked { holder: Some(pid), .. } if pid == me),
            "{refused}"
        );
        assert!(
            refused
                .to_string()
                .contains(&format!("last recorded holder: process {me}")),
            "{refused}"
        );
        assert_eq!(std::fs::read(dir.path().join(DATA_FILE)).unwrap(), before);
        // A second storage of the same directory is refused the same way.
        assert!(matches!(
            Storage::open(dir.path(), MAP),
            Err(StorageError::Locked { .. })
        ));
    }

    /// Not a test of its own: `an_lmdb_user_without_the_node_lock_is_refused`
    /// runs it in a child process, as a node of a version without
    /// `node.lock` would hold the environment.
    #[test]
    #[ignore]
    fn lmdb_user_child() {
        let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
            return;
        };
        let dir = PathBuf::from(dir);
        let env = open_env(&dir, MAP, EnvironmentFlags::empty()).unwrap();
        std::fs::write(dir.join("child-ready"), b"").unwrap();
        std::thread::sleep(Duration::from_secs(60));
        drop(env);
    }

    const CHILD_DIR_ENV: &str = "QUIRE_TEST_LMDB_USER_DIR";

    /// The child, killed and reaped however the test ends.
    struct KillOnDrop(std::process::Child);

    impl KillOnDrop {
        fn stop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            self.stop();
        }
    }

    #[test]
    fn an_lmdb_user_without_the_node_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let before = std::fs::read(dir.path().join(DATA_FILE)).unwrap();
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "storage::compact::tests::lmdb_user_child"])
            .args(["--ignored", "--test-threads", "1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let began = Instant::now();
        while !dir.path().join("child-ready").exists() {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "the child never opened the environment"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let refused = compact(dir.path(), MAP).unwrap_err();
        let pid = child.0.id();
        child.stop();
        match refused {
            StorageError::Locked { holder, .. } => assert_eq!(holder, Some(pid)),
            other => panic!("not refused as in use: {other}"),
        }
        assert_eq!(std::fs::read(dir.path().join(DATA_FILE)).unwrap(), before);
        assert!(!dir.path().join(WORK_DIR).exists());
        compact(dir.path(), MAP).expect("compacts once the other user is gone");
    }

    #[test]
    fn a_copy_that_fails_leaves_the_data_file_and_no_leftover() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        {
            // A database this version does not copy (the node makes none).
            let env = open_env(dir.path(), MAP, EnvironmentFlags::empty()).unwrap();
            let db = env
                .create_db(Some("zz-dup"), DatabaseFlags::DUP_SORT)
                .unwrap();
            let mut txn = env.begin_rw_txn().unwrap();
            txn.put(db, b"k", b"v", WriteFlags::empty()).unwrap();
            txn.commit().unwrap();
        }
        let before = std::fs::read(dir.path().join(DATA_FILE)).unwrap();
        let refused = compact(dir.path(), MAP).unwrap_err();
        assert!(matches!(refused, StorageError::Compaction(_)), "{refused}");
        assert!(refused.to_string().contains("zz-dup"), "{refused}");
        assert_eq!(
            refused.to_string().matches("left as it was").count(),
            1,
            "{refused}"
        );
        assert!(
            !refused.to_string().contains("compaction: compaction"),
            "{refused}"
        );
        assert_eq!(std::fs::read(dir.path().join(DATA_FILE)).unwrap(), before);
        assert!(!dir.path().join(WORK_DIR).exists());
    }

    #[test]
    fn a_run_as_another_user_than_the_owner_is_refused() {
        let file = Path::new("/x/data.mdb");
        assert!(check_owner(file, 998, 998).is_ok());
        let refused = check_owner(file, 998, 0).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("belongs to user 998, and this runs as user 0"),
            "{refused}"
        );
    }

    #[test]
    fn a_node_removes_an_interrupted_compactions_copy_when_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        std::fs::create_dir(dir.path().join(WORK_DIR)).unwrap();
        std::fs::write(dir.path().join(WORK_DIR).join(DATA_FILE), b"junk").unwrap();
        let (_storage, _) = Storage::open(dir.path(), MAP).unwrap();
        assert!(!dir.path().join(WORK_DIR).exists());
    }

    #[test]
    fn a_data_file_of_another_user_is_refused() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: only root can give the data file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let file = dir.path().join(DATA_FILE);
        std::os::unix::fs::chown(&file, Some(65_534), None).unwrap();
        let refused = compact(dir.path(), MAP).unwrap_err();
        assert!(
            refused.to_string().contains("belongs to user 65534"),
            "{refused}"
        );
        assert!(!dir.path().join(WORK_DIR).exists());
    }

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(size(49_152), "48.0 KiB");
        assert_eq!(size(1_388_634_112), "1.29 GiB");
        assert_eq!(size(300 << 20), "300.0 MiB");
    }

    #[test]
    fn a_directory_without_a_data_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let refused = compact(dir.path(), MAP).unwrap_err();
        assert!(refused.to_string().contains("no data file"), "{refused}");
    }
}
