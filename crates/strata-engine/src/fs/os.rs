//! [`OsFs`]: the real file system through `std::fs`, with `fdatasync` for syncs and `flock`-style
//! advisory locks for the store directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{FallocateFlags, PosixFadviseAdvice, fallocate, posix_fadvise};

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};
use crate::error::{Error, Result};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

const WRITE_BUFFER: usize = 64 * 1024;

struct OsWritable {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    len: u64,
    /// The file's size on disk, reserved space included.
    allocated: u64,
    /// Bytes reserved at a time (0: none).
    chunk: u64,
    /// Opened with `O_APPEND`, where reserving space would put later writes after it.
    appending: bool,
}

impl OsWritable {
    fn new(path: &Path, file: File, len: u64, allocated: u64, appending: bool) -> Self {
        OsWritable {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(WRITE_BUFFER),
            len,
            allocated,
            chunk: 0,
            appending,
        }
    }

    /// Reserves space up to a whole number of chunks past `end`, the file's size once the next
    /// write is done, if that is past what is reserved. A file system that cannot reserve is
    /// not asked again; the writes then grow the file, as without reservation.
    fn reserve(&mut self, end: u64) {
        if self.chunk == 0 || end <= self.allocated {
            return;
        }
        let target = end.div_ceil(self.chunk) * self.chunk;
        let (Ok(offset), Ok(len)) = (
            i64::try_from(self.allocated),
            i64::try_from(target - self.allocated),
        ) else {
            return;
        };
        match fallocate(&self.file, FallocateFlags::empty(), offset, len) {
            Ok(()) => self.allocated = target,
            Err(e) => {
                tracing::debug!(file = %self.path.display(), error = %e, "cannot reserve file space; writing without");
                self.chunk = 0;
            }
        }
    }
}

impl WritableFile for OsWritable {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.len += data.len() as u64;
        if self.buf.len() + data.len() > WRITE_BUFFER {
            self.flush()?;
        }
        if data.len() >= WRITE_BUFFER {
            self.reserve(self.len);
            return self
                .file
                .write_all(data)
                .map_err(|e| Error::io(&self.path, e));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.reserve(self.len);
            self.file
                .write_all(&self.buf)
                .map_err(|e| Error::io(&self.path, e))?;
            self.buf.clear();
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn preallocate_in_chunks(&mut self, chunk: u64) {
        if !self.appending {
            self.chunk = chunk;
        }
    }
}

#[derive(Debug)]
struct OsRandom {
    path: PathBuf,
    file: File,
    len: u64,
}

impl RandomAccessFile for OsRandom {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(buf)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn will_need(&self, offset: u64, len: u64) {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        let _ = posix_fadvise(
            &self.file,
            offset,
            len,
            PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        );
    }
}

#[derive(Debug)]
struct OsLock {
    _file: File,
}

impl FileLock for OsLock {}

impl FileSystem for OsFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(OsWritable::new(path, file, 0, 0, false)))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Box::new(OsWritable::new(path, file, len, len, true)))
    }

    fn open_overwrite(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Box::new(OsWritable::new(path, file, 0, size, false)))
    }

    fn open_random(&self, path: &Path) -> Result<Arc<dyn RandomAccessFile>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        // Point reads want one block, not the kernel's readahead window around it (RocksDB's
        // advise_random_on_open). Advice only: a file system that ignores it loses nothing.
        // Scans ask for readahead themselves ([`RandomAccessFile::will_need`]).
        let _ = posix_fadvise(&file, 0, 0, PosixFadviseAdvice::POSIX_FADV_RANDOM);
        Ok(Arc::new(OsRandom {
            path: path.to_path_buf(),
            file,
            len,
        }))
    }

    fn read_all(&self, path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| Error::io(path, e))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, path: &Path) -> Result<()> {
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io(from, e))
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(path, e))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(len).map_err(|e| Error::io(path, e))?;
        f.sync_all().map_err(|e| Error::io(path, e))
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        Ok(std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len())
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(OsLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        match std::fs::hard_link(from, to) {
            Ok(()) => Ok(()),
            // Across devices a link is impossible; a copy keeps the checkpoint correct.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => std::fs::copy(from, to)
                .map(|_| ())
                .map_err(|e| Error::io(from, e)),
            Err(e) => Err(Error::io(from, e)),
        }
    }
}
