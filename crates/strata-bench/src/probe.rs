//! Measurements of the machine rather than the store: the raw `fdatasync` rate of the disk the
//! data directory is on ([`SyncProbe`]), and eviction of a store's files from the page cache
//! ([`PageCacheEvictor`]) so that reads go to the disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{FallocateFlags, PosixFadviseAdvice, fallocate, posix_fadvise};

use crate::error::{Error, Result};

/// The size of each record the sync probe appends, as a small WAL record.
pub const PROBE_RECORD: usize = 100;

/// Space the probe file reserves before its first append, so that its appends do not grow it.
const PROBE_RESERVED: i64 = 64 << 20;

/// A file that takes 100-byte appends, each followed by `fdatasync`, inside space reserved
/// beforehand: the best a write-ahead log can do per synced write on this disk (appends that
/// grow the file also commit the size change, and run about a third slower). The file is
/// removed when the probe is dropped.
#[derive(Debug)]
pub struct SyncProbe {
    file: File,
    path: PathBuf,
    record: [u8; PROBE_RECORD],
}

impl SyncProbe {
    /// Creates (or truncates) the probe file `name` in `dir`.
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        // Where the file system cannot reserve, the probe measures growing appends instead.
        let _ = fallocate(&file, FallocateFlags::empty(), 0, PROBE_RESERVED);
        file.sync_all()
            .map_err(|e| Error::io("syncing", &path, e))?;
        Ok(SyncProbe {
            file,
            path,
            record: [b'r'; PROBE_RECORD],
        })
    }

    /// Appends one record and waits for `fdatasync`.
    pub fn append_synced(&mut self) -> Result<()> {
        self.file
            .write_all(&self.record)
            .map_err(|e| Error::io("appending to", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing", &self.path, e))
    }
}

impl Drop for SyncProbe {
    fn drop(&mut self) {
        // Best effort: a leftover probe file is harmless and the next run truncates it.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Drops a directory's files from the page cache, so the next reads of them go to the disk.
#[derive(Debug)]
pub struct PageCacheEvictor {
    dir: PathBuf,
}

impl PageCacheEvictor {
    /// An evictor for every file under `dir` (recursively).
    pub fn new(dir: &Path) -> Self {
        PageCacheEvictor {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes back dirty pages (`POSIX_FADV_DONTNEED` only drops clean ones) and then evicts.
    pub fn sync_and_evict(&self) -> Result<usize> {
        self.walk(true)
    }

    /// Evicts every file's cached pages; returns how many files it advised.
    pub fn evict(&self) -> Result<usize> {
        self.walk(false)
    }

    fn walk(&self, sync: bool) -> Result<usize> {
        let mut stack = vec![self.dir.clone()];
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
                let path = entry.path();
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io("inspecting", &path, e))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    // A file may vanish between listing and opening (compaction removes
                    // tables); there is nothing left to evict then.
                    let Ok(file) = File::open(&path) else {
                        continue;
                    };
                    if sync {
                        file.sync_data()
                            .map_err(|e| Error::io("syncing", &path, e))?;
                    }
                    posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
                        .map_err(|e| Error::io("evicting", &path, e.into()))?;
                    files += 1;
                }
            }
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_appends_records_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe");
        {
            let mut p = SyncProbe::create(dir.path(), "probe").unwrap();
            for _ in 0..3 {
                p.append_synced().unwrap();
            }
            // The records, then the reserved space (zeros) where the file system has it.
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes.len() >= 300);
            assert!(bytes[..300].iter().all(|&b| b == b'r'));
            assert!(bytes[300..].iter().all(|&b| b == 0));
        }
        assert!(!path.exists());
    }

    #[test]
    fn evictor_visits_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        std::fs::write(dir.path().join("sub/b"), b"y").unwrap();
        let ev = PageCacheEvictor::new(dir.path());
        assert_eq!(ev.sync_and_evict().unwrap(), 2);
        assert_eq!(ev.evict().unwrap(), 2);
    }
}
