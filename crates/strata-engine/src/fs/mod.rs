//! The file-system seam: every byte the engine reads or writes goes through [`FileSystem`], so
//! tests can swap the real one ([`OsFs`]) for [`FaultFs`], which keeps files in memory, forgets
//! whatever was not synced when told to simulate a power loss, and fails writes or syncs on demand.

mod fault;
mod os;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use fault::FaultFs;
pub use os::OsFs;

use crate::error::Result;

/// A file opened for appending.
pub trait WritableFile: Send + Sync {
    /// Appends bytes (possibly into a user-space buffer).
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Hands buffered bytes to the operating system: after this they survive the process dying.
    fn flush(&mut self) -> Result<()>;
    /// Flushes, then makes the file's data durable (`fdatasync`): after this it survives power
    /// loss. A failed sync leaves the file's durable contents unknown.
    fn sync(&mut self) -> Result<()>;
    /// Bytes appended so far.
    fn len(&self) -> u64;
    /// True if nothing was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Asks the file to reserve space ahead of its writes, `chunk` bytes at a time, so that
    /// most appends land inside the file's size instead of growing it (a synced append then
    /// commits no size change). The reserved space reads as zeros. A no-op where unsupported
    /// and for files opened to append after their end.
    fn preallocate_in_chunks(&mut self, _chunk: u64) {}
}

/// A file opened for reads at arbitrary offsets, shared between threads.
pub trait RandomAccessFile: Send + Sync + Debug {
    /// Reads exactly `len` bytes at `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// The file's size.
    fn len(&self) -> u64;
    /// True if the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Hints that `len` bytes at `offset` will be read soon, so the OS may read them ahead (a
    /// sequential scan of a file opened for point reads); the default ignores the hint.
    fn will_need(&self, _offset: u64, _len: u64) {}
    /// Hints that cached pages of this file are no longer needed (a no-op where unsupported).
    fn drop_cache(&self) {}
}

/// An exclusive lock on a store directory, released when dropped.
pub trait FileLock: Send + Sync + Debug {}

/// The file-system operations the engine needs. Paths are absolute or relative to the process.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates (or truncates) a file for appending.
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Opens an existing file for appending after its current end.
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Opens an existing file for writing from its first byte without truncating it: writes
    /// overwrite the old contents, and space already written is reused without growing the file.
    fn open_overwrite(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Opens an existing file for random reads.
    fn open_random(&self, path: &Path) -> Result<Arc<dyn RandomAccessFile>>;
    /// Reads a whole file.
    fn read_all(&self, path: &Path) -> Result<Vec<u8>>;
    /// True if the path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Names (not paths) of the entries in a directory.
    fn list_dir(&self, path: &Path) -> Result<Vec<String>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Atomically renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> Result<()>;
    /// Cuts a file to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
    /// The size of a file.
    fn file_size(&self, path: &Path) -> Result<u64>;
    /// Takes an exclusive lock on `path` (created if missing); fails with
    /// [`Error::Locked`](crate::Error::Locked) if someone else holds it.
    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>>;
    /// Creates `to` as a hard link of `from` (or a copy where links are impossible).
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()>;
}

/// Writes `data` to `path` crash-safely: a temporary file is written and synced, renamed over
/// `path`, and the directory synced, so a reader sees either the old file or the new one whole.
pub fn write_file_atomic(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = fs.create(&tmp)?;
    f.append(data)?;
    f.sync()?;
    drop(f);
    fs.rename(&tmp, path)?;
    fs.sync_dir(parent_dir(path))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
