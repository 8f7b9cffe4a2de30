//! [`FaultFs`]: an in-memory file system for tests that models what survives a power loss.
//!
//! Each file keeps the bytes written and, separately, the bytes that were synced; each directory
//! keeps its live entries and, separately, the entries made durable by `sync_dir`. A call to
//! [`FaultFs::power_loss`] throws away everything that was not made durable, exactly as a
//! machine losing power may. Writes and syncs can also be made to fail.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile, parent_dir};
use crate::error::{Error, Result};

/// The largest step in which a file reserves space ahead of its writes here
/// ([`WritableFile::preallocate_in_chunks`]).
const MAX_RESERVE_STEP: usize = 4096;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    dirs: HashSet<PathBuf>,
    locks: HashSet<PathBuf>,
    next_inode: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    fail_writes: AtomicBool,
    fail_syncs: AtomicBool,
    syncs: AtomicU64,
}

/// An in-memory, fault-injecting file system. Clones share the same files.
#[derive(Debug, Default, Clone)]
pub struct FaultFs {
    shared: Arc<Shared>,
}

fn not_found(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::new(ErrorKind::NotFound, "no such file"),
    )
}

fn injected(path: &Path, what: &str) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("injected {what} failure")),
    )
}

impl FaultFs {
    /// A new, empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a failing test; keep going.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Simulates a power loss: unsynced bytes and directory entries not made durable vanish, and
    /// every lock is released (the process holding them is gone).
    pub fn power_loss(&self) {
        let mut st = self.state();
        st.live = st.durable.clone();
        let referenced: HashSet<u64> = st.live.values().copied().collect();
        st.inodes.retain(|ino, _| referenced.contains(ino));
        for inode in st.inodes.values_mut() {
            inode.data = inode.synced.clone();
        }
        st.locks.clear();
    }

    /// The machine stops now, while `running` (the store using this file system) still runs:
    /// writes and syncs fail from this instant, so nothing it does afterwards becomes durable;
    /// what was not durable vanishes; `running` is dropped (its threads fail harmlessly against
    /// the dead disk) and whatever it left in the live view vanishes too. The disk then works
    /// again and holds exactly what was durable at the crash. Calling [`FaultFs::power_loss`]
    /// alone while a store runs would let its background threads keep writing to a "dead"
    /// disk, which no real machine does.
    pub fn crash<T>(&self, running: T) {
        self.set_fail_writes(true);
        self.set_fail_syncs(true);
        self.power_loss();
        drop(running);
        self.power_loss();
        self.set_fail_writes(false);
        self.set_fail_syncs(false);
    }

    /// Releases every lock, as when the process holding them is killed.
    pub fn release_locks(&self) {
        self.state().locks.clear();
    }

    /// Makes every later append fail (or succeed again).
    pub fn set_fail_writes(&self, fail: bool) {
        self.shared.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Makes every later sync fail (or succeed again).
    pub fn set_fail_syncs(&self, fail: bool) {
        self.shared.fail_syncs.store(fail, Ordering::SeqCst);
    }

    /// Number of successful file syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::SeqCst)
    }

    /// Overwrites bytes of an existing file in place (live and synced), to inject corruption.
    pub fn corrupt(&self, path: &Path, offset: usize, bytes: &[u8]) -> Result<()> {
        let mut st = self.state();
        let ino = *st.live.get(path).ok_or_else(|| not_found(path))?;
        let inode = st.inodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        for (i, b) in bytes.iter().enumerate() {
            if let Some(slot) = inode.data.get_mut(offset + i) {
                *slot = *b;
            }
            if let Some(slot) = inode.synced.get_mut(offset + i) {
                *slot = *b;
            }
        }
        Ok(())
    }

    /// The inode of an existing file and its current size.
    fn existing(&self, path: &Path) -> Result<(u64, u64)> {
        let st = self.state();
        let inode = *st.live.get(path).ok_or_else(|| not_found(path))?;
        Ok((
            inode,
            st.inodes.get(&inode).map_or(0, |i| i.data.len() as u64),
        ))
    }

    /// A handle writing to `inode` from byte `start` on.
    fn writer(
        &self,
        path: &Path,
        inode: u64,
        start: u64,
        appending: bool,
    ) -> Box<dyn WritableFile> {
        Box::new(FaultWritable {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
            len: start,
            offset: usize::try_from(start).unwrap_or(usize::MAX),
            chunk: 0,
            appending,
        })
    }

    fn new_file(&self, path: &Path) -> Result<u64> {
        let mut st = self.state();
        if !st.dirs.contains(parent_dir(path)) {
            return Err(not_found(parent_dir(path)));
        }
        let ino = st.next_inode;
        st.next_inode += 1;
        st.inodes.insert(ino, Inode::default());
        st.live.insert(path.to_path_buf(), ino);
        Ok(ino)
    }
}

struct FaultWritable {
    fs: FaultFs,
    path: PathBuf,
    inode: u64,
    /// Bytes written through this handle (plus the old size for an appending handle).
    len: u64,
    /// Where the next write lands in the file.
    offset: usize,
    /// Bytes reserved ahead of the writes at a time (0: none), as `fallocate` does: the file
    /// grows by zeros, which are durable once synced like any other bytes.
    chunk: usize,
    appending: bool,
}

impl WritableFile for FaultWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        if self.fs.shared.fail_writes.load(Ordering::SeqCst) {
            return Err(injected(&self.path, "write"));
        }
        let mut st = self.fs.state();
        let inode = st
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| not_found(&self.path))?;
        let end = self.offset + data.len();
        let reserved = match self.chunk {
            0 => end,
            chunk => end.div_ceil(chunk) * chunk,
        };
        if inode.data.len() < reserved {
            inode.data.resize(reserved, 0);
        }
        if let Some(slot) = inode.data.get_mut(self.offset..end) {
            slot.copy_from_slice(data);
        }
        self.offset = end;
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.fs.shared.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected(&self.path, "sync"));
        }
        let mut st = self.fs.state();
        let inode = st
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| not_found(&self.path))?;
        inode.synced = inode.data.clone();
        self.fs.shared.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn preallocate_in_chunks(&mut self, chunk: u64) {
        if !self.appending {
            // Small steps model the same zero tail without copying megabytes per sync.
            self.chunk = usize::try_from(chunk).unwrap_or(0).min(MAX_RESERVE_STEP);
        }
    }
}

#[derive(Debug)]
struct FaultRandom {
    fs: FaultFs,
    path: PathBuf,
    inode: u64,
    len: u64,
}

impl RandomAccessFile for FaultRandom {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let st = self.fs.state();
        let inode = st
            .inodes
            .get(&self.inode)
            .ok_or_else(|| not_found(&self.path))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        start
            .checked_add(len)
            .and_then(|end| inode.data.get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::io(
                    &self.path,
                    std::io::Error::new(ErrorKind::UnexpectedEof, "read past end of file"),
                )
            })
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[derive(Debug)]
struct FaultLock {
    fs: FaultFs,
    path: PathBuf,
}

impl FileLock for FaultLock {}

impl Drop for FaultLock {
    fn drop(&mut self) {
        self.fs.state().locks.remove(&self.path);
    }
}

impl FileSystem for FaultFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let inode = self.new_file(path)?;
        Ok(self.writer(path, inode, 0, false))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let (inode, len) = self.existing(path)?;
        Ok(self.writer(path, inode, len, true))
    }

    fn open_overwrite(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let (inode, _) = self.existing(path)?;
        Ok(self.writer(path, inode, 0, false))
    }

    fn open_random(&self, path: &Path) -> Result<Arc<dyn RandomAccessFile>> {
        let (inode, len) = self.existing(path)?;
        Ok(Arc::new(FaultRandom {
            fs: self.clone(),
            path: path.to_path_buf(),
            inode,
            len,
        }))
    }

    fn read_all(&self, path: &Path) -> Result<Vec<u8>> {
        let st = self.state();
        let inode = st.live.get(path).ok_or_else(|| not_found(path))?;
        Ok(st
            .inodes
            .get(inode)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.state();
        st.live.contains_key(path) || st.dirs.contains(path)
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let st = self.state();
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: Vec<String> = st
            .live
            .keys()
            .chain(st.dirs.iter())
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        // Directories themselves are treated as durable once created.
        let mut st = self.state();
        let mut p = Some(path);
        while let Some(dir) = p {
            if dir.as_os_str().is_empty() {
                break;
            }
            st.dirs.insert(dir.to_path_buf());
            p = dir.parent();
        }
        st.dirs.insert(PathBuf::from("."));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut st = self.state();
        st.live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.state();
        let inode = st.live.remove(from).ok_or_else(|| not_found(from))?;
        st.live.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        if self.shared.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected(path, "directory sync"));
        }
        let mut st = self.state();
        let in_dir = |p: &Path| parent_dir(p) == path;
        st.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> = st
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable.extend(entries);
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let mut st = self.state();
        let ino = *st.live.get(path).ok_or_else(|| not_found(path))?;
        let inode = st.inodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        inode.data.truncate(len);
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        let st = self.state();
        let ino = st.live.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.inodes.get(ino).map_or(0, |i| i.data.len() as u64))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let mut st = self.state();
        if !st.locks.insert(path.to_path_buf()) {
            return Err(Error::Locked {
                path: path.to_path_buf(),
            });
        }
        Ok(Box::new(FaultLock {
            fs: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.state();
        let inode = *st.live.get(from).ok_or_else(|| not_found(from))?;
        st.live.insert(to.to_path_buf(), inode);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_keeps_only_synced_bytes_and_entries() {
        let fs = FaultFs::new();
        let dir = Path::new("/db");
        fs.create_dir_all(dir).unwrap();
        let a = dir.join("a");
        let mut f = fs.create(&a).unwrap();
        f.append(b"durable").unwrap();
        f.sync().unwrap();
        fs.sync_dir(dir).unwrap();
        f.append(b" lost").unwrap();
        let mut g = fs.create(&dir.join("b")).unwrap();
        g.append(b"x").unwrap();
        g.sync().unwrap();
        fs.power_loss();
        assert_eq!(fs.read_all(&a).unwrap(), b"durable");
        assert!(
            !fs.exists(&dir.join("b")),
            "entry never made durable by sync_dir"
        );
    }

    #[test]
    fn injected_failures_and_locks() {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let mut f = fs.create(Path::new("/d/f")).unwrap();
        fs.set_fail_syncs(true);
        assert!(f.sync().is_err());
        fs.set_fail_writes(true);
        assert!(f.append(b"x").is_err());
        let l = fs.lock(Path::new("/d/LOCK")).unwrap();
        assert!(matches!(
            fs.lock(Path::new("/d/LOCK")),
            Err(Error::Locked { .. })
        ));
        drop(l);
        assert!(fs.lock(Path::new("/d/LOCK")).is_ok());
    }
}
