//! The filesystem's contents, apart from FUSE: a tree of inodes in memory
//! where each file has a durable image (what survives a power cut) beside
//! its current contents. Every operation the FUSE layer needs is a method
//! here returning an errno, so the rules of the power cut live in one
//! place (see the module doc of `lazyfs` for what they are).

use fuser::{Errno, FileAttr, FileType, INodeNo};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::{Instant, SystemTime};

/// Largest file the filesystem holds: far above what a test writes, low
/// enough that a runaway offset is refused instead of exhausting memory.
const FILE_BYTES_MAX: u64 = 1 << 30;

/// What an inode is.
enum Body {
    /// Entries by name. Durable at once: there is no separate durable
    /// image of a directory.
    Dir(BTreeMap<OsString, u64>),
    /// A regular file.
    File {
        /// What reads see.
        current: Vec<u8>,
        /// The contents at the last fsync; what a cut leaves.
        durable: Vec<u8>,
    },
}

struct Inode {
    body: Body,
    perm: u16,
    mtime: SystemTime,
}

/// What a cut threw away.
#[derive(Clone, Copy, Debug, Default)]
pub struct CutReport {
    /// Files whose current contents differed from their durable image.
    pub files_reverted: usize,
    /// Bytes of current contents that were replaced by the durable image
    /// (the sum of the lengths of the reverted files' current contents).
    pub bytes_dropped: u64,
}

/// The whole tree. Inode 1 is the root; numbers are never reused.
pub struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// Owner reported for every inode (the user that mounted).
    owner: (u32, u32),
    /// fsync and fdatasync calls seen on files, for reports.
    pub fsyncs: u64,
    /// An armed power loss: it happens at the first write below this
    /// offset into a file of this name (see [`State::arm`]).
    trigger: Option<(OsString, u64)>,
    /// When the armed power loss happened, and what each file then held
    /// on disk: what the next cut leaves.
    went_off: Option<(Instant, HashMap<u64, Vec<u8>>)>,
}

impl State {
    /// An empty tree whose every inode is owned by `owner` (uid, gid).
    pub fn new(owner: (u32, u32)) -> Self {
        let root = Inode {
            body: Body::Dir(BTreeMap::new()),
            perm: 0o755,
            mtime: SystemTime::now(),
        };
        Self {
            inodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            next_ino: INodeNo::ROOT.0 + 1,
            owner,
            fsyncs: 0,
            trigger: None,
            went_off: None,
        }
    }

    fn inode(&self, ino: u64) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.inode(ino)?.body {
            Body::Dir(entries) => Ok(entries),
            Body::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.inode_mut(ino)?.body {
            Body::Dir(entries) => Ok(entries),
            Body::File { .. } => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<(&mut Vec<u8>, &mut Vec<u8>), Errno> {
        match &mut self.inode_mut(ino)?.body {
            Body::File { current, durable } => Ok((current, durable)),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// The attributes of `ino` as `stat` reports them.
    pub fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let inode = self.inode(ino)?;
        let (kind, size, nlink) = match &inode.body {
            Body::Dir(entries) => (FileType::Directory, 4096, 2 + entries.len() as u32),
            Body::File { current, .. } => (FileType::RegularFile, current.len() as u64, 1),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: inode.mtime,
            mtime: inode.mtime,
            ctime: inode.mtime,
            crtime: inode.mtime,
            kind,
            perm: inode.perm,
            nlink,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The inode named `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    /// Creates an empty file (`dir` false) or directory named `name` in
    /// `parent`. The entry is durable at once; a file's durable image
    /// starts empty.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        dir: bool,
        perm: u16,
    ) -> Result<u64, Errno> {
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = if dir {
            Body::Dir(BTreeMap::new())
        } else {
            Body::File {
                current: Vec::new(),
                durable: Vec::new(),
            }
        };
        let mtime = SystemTime::now();
        self.inodes.insert(ino, Inode { body, perm, mtime });
        self.dir_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Removes the entry `name` from `parent`: a file (`dir` false) or an
    /// empty directory. An open file stays readable and writable until
    /// the next cut, which forgets every inode no entry leads to.
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (&self.inode(ino)?.body, dir) {
            (Body::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File { .. }, true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.remove(name);
        Ok(())
    }

    /// Moves entry `name` of `parent` to `new_name` in `new_parent`,
    /// replacing a file or empty directory there (unless `no_replace`).
    /// Durable at once, and the inode keeps its durable image: a file
    /// renamed before it was fsynced is there after a cut, empty.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let moving_dir = matches!(self.inode(ino)?.body, Body::Dir(_));
        if moving_dir && self.is_within(new_parent, ino) {
            return Err(Errno::EINVAL);
        }
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(Errno::EEXIST);
            }
            match (&self.inode(target)?.body, moving_dir) {
                (Body::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
                (Body::Dir(_), false) => return Err(Errno::EISDIR),
                (Body::File { .. }, true) => return Err(Errno::ENOTDIR),
                _ => {}
            }
        }
        self.dir(new_parent)?;
        self.dir_mut(parent)?.remove(name);
        self.dir_mut(new_parent)?.insert(new_name.to_owned(), ino);
        Ok(())
    }

    /// Whether `ino` is `ancestor` or lies below it.
    fn is_within(&self, ino: u64, ancestor: u64) -> bool {
        ino == ancestor || self.reachable_from(ancestor).contains(&ino)
    }

    /// Every inode reachable from `top`, `top` included.
    fn reachable_from(&self, top: u64) -> Vec<u64> {
        let mut seen = vec![top];
        let mut i = 0;
        while i < seen.len() {
            if let Some(Inode {
                body: Body::Dir(entries),
                ..
            }) = self.inodes.get(&seen[i])
            {
                seen.extend(entries.values().copied());
            }
            i += 1;
        }
        seen
    }

    /// The entries of directory `ino` (names and inodes, `.` and `..`
    /// left to the caller).
    pub fn entries(&self, ino: u64) -> Result<Vec<(OsString, u64, FileType)>, Errno> {
        let mut out = Vec::new();
        for (name, &child) in self.dir(ino)? {
            out.push((name.clone(), child, self.attr(child)?.kind));
        }
        Ok(out)
    }

    /// Up to `size` bytes of `ino`'s current contents from `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let Body::File { current, .. } = &self.inode(ino)?.body else {
            return Err(Errno::EISDIR);
        };
        let start = (offset as usize).min(current.len());
        let end = start.saturating_add(size as usize).min(current.len());
        Ok(&current[start..end])
    }

    /// Writes `data` at `offset` into the current contents only.
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        if end > FILE_BYTES_MAX {
            return Err(Errno::EFBIG);
        }
        let (current, _) = self.file_mut(ino)?;
        if current.len() < end as usize {
            current.resize(end as usize, 0);
        }
        current[offset as usize..end as usize].copy_from_slice(data);
        self.inode_mut(ino)?.mtime = SystemTime::now();
        if self.is_trigger(ino, offset) {
            self.go_off(ino, offset, data);
        }
        Ok(data.len() as u32)
    }

    /// Arms a power loss at the first write below `below` bytes into a
    /// file named `name`: the disk has written that write and whatever was
    /// fsynced, and nothing else, when the power goes. This is a disk
    /// that writes a file's pages out of order (as write-back does): a
    /// write can reach it before earlier writes that were not fsynced.
    pub fn arm(&mut self, name: &OsStr, below: u64) {
        self.trigger = Some((name.to_owned(), below));
        self.went_off = None;
    }

    /// When the armed power loss happened, if it has.
    pub fn went_off(&self) -> Option<Instant> {
        self.went_off.as_ref().map(|(at, _)| *at)
    }

    /// Whether a write at `offset` into `ino` sets off the armed power
    /// loss.
    fn is_trigger(&self, ino: u64, offset: u64) -> bool {
        let Some((name, below)) = &self.trigger else {
            return false;
        };
        offset < *below
            && self.inodes.values().any(|inode| match &inode.body {
                Body::Dir(entries) => entries.get(name) == Some(&ino),
                Body::File { .. } => false,
            })
    }

    /// The armed power loss happens: every file's disk image is its
    /// durable image, with `data` at `offset` over it in file `ino`.
    /// Directories are not part of the image: an entry made, renamed or
    /// removed after this moment still counts at the cut (nothing on the
    /// tests' mounts does that between the two).
    fn go_off(&mut self, ino: u64, offset: u64, data: &[u8]) {
        let mut images = HashMap::new();
        for (&i, inode) in &self.inodes {
            if let Body::File { durable, .. } = &inode.body {
                let mut image = durable.clone();
                if i == ino {
                    let end = offset as usize + data.len();
                    if image.len() < end {
                        image.resize(end, 0);
                    }
                    image[offset as usize..end].copy_from_slice(data);
                }
                images.insert(i, image);
            }
        }
        self.trigger = None;
        self.went_off = Some((Instant::now(), images));
    }

    /// Sets the current size of file `ino` (zero-filled when it grows).
    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        if size > FILE_BYTES_MAX {
            return Err(Errno::EFBIG);
        }
        let (current, _) = self.file_mut(ino)?;
        current.resize(size as usize, 0);
        self.inode_mut(ino)?.mtime = SystemTime::now();
        Ok(())
    }

    /// Sets the permission bits of `ino`.
    pub fn chmod(&mut self, ino: u64, mode: u32) -> Result<(), Errno> {
        self.inode_mut(ino)?.perm = (mode & 0o7777) as u16;
        Ok(())
    }

    /// fsync or fdatasync of file `ino`: its current contents (size
    /// included) become its durable image. A directory has nothing to
    /// make durable.
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        self.fsyncs += 1;
        match &mut self.inode_mut(ino)?.body {
            Body::File { current, durable } => durable.clone_from(current),
            Body::Dir(_) => {}
        }
        Ok(())
    }

    /// The power cut: every file goes back to its durable image (or to
    /// its image when an armed power loss happened), and inodes no entry
    /// leads to (unlinked while open) are forgotten.
    pub fn cut(&mut self) -> CutReport {
        if let Some((_, mut images)) = self.went_off.take() {
            // An armed power loss happened: the disk holds what it held
            // then (a file made since then is empty).
            for (ino, inode) in &mut self.inodes {
                if let Body::File { durable, .. } = &mut inode.body {
                    *durable = images.remove(ino).unwrap_or_default();
                }
            }
        }
        self.trigger = None;
        let mut report = CutReport::default();
        let live = self.reachable_from(INodeNo::ROOT.0);
        self.inodes.retain(|ino, _| live.contains(ino));
        for inode in self.inodes.values_mut() {
            if let Body::File { current, durable } = &mut inode.body {
                if current != durable {
                    report.files_reverted += 1;
                    report.bytes_dropped += current.len() as u64;
                    current.clone_from(durable);
                }
            }
        }
        report
    }
}
