//! The write-ahead log: every write batch is appended here, checksummed and framed, before it
//! reaches the memtable, so that a crash loses nothing that was acknowledged.
//!
//! A log is one file holding a header (magic, format version, log number) and records of opaque
//! payloads; the caller encodes write batches. [`WalWriter`] creates a log and appends to it,
//! with [`WalWriter::flush`] making records survive the process dying and [`WalWriter::sync`]
//! making them survive power loss. [`read_wal`] recovers a log: a torn tail left by a crash is
//! truncated away, while damage before the tail is an error naming the file and offset (or is
//! skipped in [`RecoveryMode::SkipDamaged`]). The byte layout is documented in
//! [`format`](mod@format).
//!
//! ```
//! use std::path::Path;
//! use strata_engine::fs::{FaultFs, FileSystem};
//! use strata_engine::wal::{RecoveryMode, WalWriter, read_wal};
//!
//! # fn main() -> strata_engine::Result<()> {
//! let fs = FaultFs::new();
//! fs.create_dir_all(Path::new("/db"))?;
//! let path = Path::new("/db/000001.log");
//! let mut log = WalWriter::create(&fs, path, 1)?;
//! log.add_record(b"batch one")?;
//! log.add_record(b"batch two")?;
//! log.sync()?;
//!
//! let contents = read_wal(&fs, path, RecoveryMode::default())?;
//! assert_eq!(contents.records, vec![b"batch one".to_vec(), b"batch two".to_vec()]);
//! assert_eq!(contents.truncated_at, None);
//! # Ok(())
//! # }
//! ```

pub mod format;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use format::{FORMAT_VERSION, MAX_RECORD_LEN};
pub use reader::{RecoveryMode, WalContents, decode_wal, read_wal};
pub use writer::{PREALLOCATION_CHUNK, WalWriter};
