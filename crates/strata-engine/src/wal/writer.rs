//! [`WalWriter`]: appends framed records to a new log file, with explicit flush (survives the
//! process dying) and sync (survives power loss) steps.

use std::fmt;
use std::path::{Path, PathBuf};

use super::format::{encode_file_header, encode_record_header};
use crate::error::{Error, Result};
use crate::fs::{FileSystem, WritableFile, parent_dir};

/// Space a log file reserves ahead of its records at a time: appends then land inside the file's
/// size, so a synced append need not also commit a size change (on this project's disks that
/// makes a synced append about 1.5x faster on a new file). The reserved tail reads as zeros,
/// which the reader takes as the end of the log.
pub const PREALLOCATION_CHUNK: u64 = 4 << 20;

/// Appends records to one log file.
///
/// After any failed write, flush or sync the writer refuses further work with
/// [`Error::Poisoned`]: the file may end in a partial record, and records appended after it
/// would sit behind damage that recovery must treat as corruption rather than a torn tail. A
/// failed sync also leaves it unknown what is durable. The caller starts a new log instead.
pub struct WalWriter {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    log_number: u64,
    failure: Option<String>,
}

impl fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalWriter")
            .field("path", &self.path)
            .field("log_number", &self.log_number)
            .field("size", &self.size())
            .field("failure", &self.failure)
            .finish()
    }
}

impl WalWriter {
    /// Creates a new log file at `path` for log number `log_number`: writes the file header,
    /// syncs the file and its directory (`fs.sync_dir(parent)`) so the file itself survives
    /// power loss.
    ///
    /// Refuses with [`Error::InvalidArgument`] if `path` already exists, so an existing log is
    /// never overwritten.
    pub fn create(fs: &dyn FileSystem, path: &Path, log_number: u64) -> Result<WalWriter> {
        if fs.exists(path) {
            return Err(Error::InvalidArgument(format!(
                "log file {} already exists",
                path.display()
            )));
        }
        let mut file = fs.create(path)?;
        file.preallocate_in_chunks(PREALLOCATION_CHUNK);
        let started = file
            .append(&encode_file_header(log_number))
            .and_then(|()| file.sync())
            .and_then(|()| fs.sync_dir(parent_dir(path)));
        if let Err(e) = started {
            // Nothing was ever written to this log; leaving the half-made file behind would only
            // make a retry with the same path fail. The original error is what matters.
            drop(file);
            if let Err(cleanup) = fs.remove_file(path) {
                tracing::warn!(
                    log = %path.display(),
                    error = %cleanup,
                    "could not remove a log whose creation failed"
                );
            }
            return Err(e);
        }
        Ok(WalWriter {
            file,
            path: path.to_path_buf(),
            log_number,
            failure: None,
        })
    }

    /// Turns the obsolete log at `old_path` into log `log_number` at `new_path`, reusing its
    /// disk space so appends overwrite blocks the file already has instead of growing it (a
    /// synced append then need not also commit a size change). The new header is written and
    /// synced before the rename, so after a crash the file is either the old, obsolete log or
    /// the new one, whose leftover records, stamped with the old log number, read as its end.
    pub fn recycle(
        fs: &dyn FileSystem,
        old_path: &Path,
        new_path: &Path,
        log_number: u64,
    ) -> Result<WalWriter> {
        if fs.exists(new_path) {
            return Err(Error::InvalidArgument(format!(
                "log file {} already exists",
                new_path.display()
            )));
        }
        let mut file = fs.open_overwrite(old_path)?;
        file.preallocate_in_chunks(PREALLOCATION_CHUNK);
        file.append(&encode_file_header(log_number))?;
        file.sync()?;
        fs.rename(old_path, new_path)?;
        fs.sync_dir(parent_dir(new_path))?;
        Ok(WalWriter {
            file,
            path: new_path.to_path_buf(),
            log_number,
            failure: None,
        })
    }

    /// Appends one framed record (buffered; not yet flushed to the OS).
    ///
    /// A payload longer than [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN) is refused with
    /// [`Error::InvalidArgument`] and leaves the writer usable.
    pub fn add_record(&mut self, payload: &[u8]) -> Result<()> {
        self.check_usable()?;
        let header = encode_record_header(self.log_number, payload)?;
        let appended = match self.file.append(&header) {
            Ok(()) => self.file.append(payload),
            Err(e) => Err(e),
        };
        self.note(appended)
    }

    /// Hands buffered bytes to the OS (survives kill -9).
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        let flushed = self.file.flush();
        self.note(flushed)
    }

    /// flush + fdatasync (survives power loss).
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        let synced = self.file.sync();
        self.note(synced)
    }

    /// Bytes in the file so far (header and every record appended, flushed or not).
    pub fn size(&self) -> u64 {
        self.file.len()
    }

    /// The number of the log this writer appends to.
    pub fn log_number(&self) -> u64 {
        self.log_number
    }

    /// The path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failure {
            Some(why) => Err(Error::Poisoned(format!(
                "log {} failed earlier: {why}",
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Remembers a failed I/O result so that later calls refuse to write.
    fn note(&mut self, res: Result<()>) -> Result<()> {
        if let Err(e) = &res {
            tracing::error!(log = %self.path.display(), error = %e, "write-ahead log I/O failed");
            self.failure = Some(e.to_string());
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FaultFs;
    use crate::wal::format::{FILE_HEADER_LEN, RECORD_HEADER_LEN};

    fn setup() -> (FaultFs, PathBuf) {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        (fs, PathBuf::from("/db/000001.log"))
    }

    #[test]
    fn size_counts_header_and_records() {
        let (fs, path) = setup();
        let mut w = WalWriter::create(&fs, &path, 1).unwrap();
        assert_eq!(w.size(), FILE_HEADER_LEN as u64);
        assert_eq!(w.log_number(), 1);
        w.add_record(b"abc").unwrap();
        w.add_record(b"").unwrap();
        let want = (FILE_HEADER_LEN + 2 * RECORD_HEADER_LEN + 3) as u64;
        assert_eq!(w.size(), want);
        w.sync().unwrap();
        // The file reserved space past the records; the reserved part reads as zeros.
        let bytes = fs.read_all(&path).unwrap();
        assert!(bytes.len() as u64 > want, "{} bytes", bytes.len());
        assert!(bytes[want as usize..].iter().all(|&b| b == 0));
        assert!(format!("{w:?}").contains("000001.log"));
    }

    #[test]
    fn create_refuses_an_existing_file() {
        let (fs, path) = setup();
        WalWriter::create(&fs, &path, 1).unwrap();
        let err = WalWriter::create(&fs, &path, 2).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn create_fails_cleanly_when_sync_fails() {
        let (fs, path) = setup();
        fs.set_fail_syncs(true);
        assert!(matches!(
            WalWriter::create(&fs, &path, 1),
            Err(Error::Io { .. })
        ));
        assert!(!fs.exists(&path), "the half-made file is removed");
        fs.set_fail_syncs(false);
        WalWriter::create(&fs, &path, 1).unwrap();
    }

    #[test]
    fn failed_write_poisons_the_writer() {
        let (fs, path) = setup();
        let mut w = WalWriter::create(&fs, &path, 1).unwrap();
        w.add_record(b"ok").unwrap();
        fs.set_fail_writes(true);
        assert!(matches!(w.add_record(b"lost"), Err(Error::Io { .. })));
        fs.set_fail_writes(false);
        assert!(matches!(w.add_record(b"later"), Err(Error::Poisoned(_))));
        assert!(matches!(w.flush(), Err(Error::Poisoned(_))));
        assert!(matches!(w.sync(), Err(Error::Poisoned(_))));
    }

    #[test]
    fn failed_sync_poisons_the_writer() {
        let (fs, path) = setup();
        let mut w = WalWriter::create(&fs, &path, 1).unwrap();
        w.add_record(b"maybe").unwrap();
        fs.set_fail_syncs(true);
        assert!(matches!(w.sync(), Err(Error::Io { .. })));
        fs.set_fail_syncs(false);
        assert!(matches!(w.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(w.add_record(b"x"), Err(Error::Poisoned(_))));
    }
}
