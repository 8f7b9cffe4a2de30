//! Log recovery: [`read_wal`] reads a whole log file, cuts off a torn tail, and reports damage
//! before the tail; [`decode_wal`] is the pure decoder underneath it.
//!
//! The rule that separates a torn tail from corruption: when no valid record starts at some
//! offset, the rest of the file is searched for a valid record of this log. If there is none,
//! the log simply ends there (a crash cut the last write short, or the space was never written)
//! and the tail is cut off. If there is one, something that was already followed by good data
//! was damaged, which a crash cannot explain: that is an error, unless the caller opted into
//! [`RecoveryMode::SkipDamaged`].

use std::path::Path;

use super::format::{
    FILE_HEADER_LEN, decode_file_header, decode_record, follows_reused_log, next_valid_record,
};
use crate::error::Result;
use crate::fs::FileSystem;

/// What to do about damage found before the tail of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cut off a torn tail; any damage before it is an error naming the file and offset.
    #[default]
    TolerateTornTail,
    /// Cut off a torn tail; skip damaged stretches before it, resuming at the next valid
    /// record, and count them in [`WalContents::skipped`]. Loses the skipped writes.
    SkipDamaged,
}

/// Everything recovered from one log file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WalContents {
    /// The payloads of the records, in the order they were written.
    pub records: Vec<Vec<u8>>,
    /// `Some(offset)` if a torn tail was found and the file was truncated there.
    pub truncated_at: Option<u64>,
    /// Damaged stretches skipped in [`RecoveryMode::SkipDamaged`] mode (each counts once, however
    /// many records it held).
    pub skipped: usize,
    /// The log number from the file header.
    pub log_number: u64,
}

/// Reads a whole log. Zeros after the last record are the space the writer reserved ahead
/// ([`PREALLOCATION_CHUNK`](super::PREALLOCATION_CHUNK)): the log's end, left as it is. A torn
/// tail (an incomplete last record, or a bad checksum on the final record with nothing valid
/// after it) is cut off: the file is truncated to the end of the last whole record via
/// `fs.truncate`, and reported in `truncated_at`.
/// Damage before the tail is [`Error::Corruption`]/[`Error::ChecksumMismatch`] naming the file
/// and offset, unless mode is [`RecoveryMode::SkipDamaged`], where the reader resynchronises on
/// the next valid record and counts what it skipped.
///
/// A file shorter than its header ([`FILE_HEADER_LEN`] bytes) is [`Error::Corruption`] at
/// offset 0: it can only come from a crash inside [`WalWriter::create`](super::WalWriter::create),
/// before which nothing was written to the log, and the caller may remove it.
///
/// The file is read into memory whole; logs are bounded by the memtable size.
///
/// [`Error::Corruption`]: crate::Error::Corruption
/// [`Error::ChecksumMismatch`]: crate::Error::ChecksumMismatch
pub fn read_wal(fs: &dyn FileSystem, path: &Path, mode: RecoveryMode) -> Result<WalContents> {
    let bytes = fs.read_all(path)?;
    let contents = decode_wal(&bytes, path, mode)?;
    if let Some(offset) = contents.truncated_at {
        let dropped = bytes.len() as u64 - offset;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        if follows_reused_log(&bytes, at, contents.log_number) {
            tracing::debug!(log = %path.display(), offset, dropped, "reused log ends; dropping the previous log's records");
        } else {
            tracing::warn!(log = %path.display(), offset, dropped, "write-ahead log has a torn tail; truncating it");
        }
        fs.truncate(path, offset)?;
    }
    if contents.skipped > 0 {
        tracing::warn!(
            log = %path.display(),
            skipped = contents.skipped,
            "skipped damaged write-ahead log records"
        );
    }
    Ok(contents)
}

/// Pure decoder used by [`read_wal`] and by property tests: never panics, never allocates more
/// than the input's size. It only reports where a torn tail starts; truncating the file is
/// [`read_wal`]'s job.
pub fn decode_wal(bytes: &[u8], file: &Path, mode: RecoveryMode) -> Result<WalContents> {
    let header = decode_file_header(bytes, file)?;
    let log = header.log_number;
    let mut contents = WalContents {
        log_number: log,
        ..WalContents::default()
    };
    let mut pos = FILE_HEADER_LEN;
    while pos < bytes.len() {
        let damage = match decode_record(bytes, pos, log) {
            Ok((payload, next)) => {
                contents.records.push(payload.to_vec());
                pos = next;
                continue;
            }
            Err(damage) => damage,
        };
        // Space the writer reserved and never reached: the log's end, not a torn tail.
        if bytes
            .get(pos..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0))
        {
            break;
        }
        match (next_valid_record(bytes, pos + 1, log), mode) {
            (None, _) => {
                contents.truncated_at = Some(pos as u64);
                break;
            }
            (Some(_), RecoveryMode::TolerateTornTail) => {
                return Err(damage.into_error(file, pos as u64));
            }
            (Some(next), RecoveryMode::SkipDamaged) => {
                contents.skipped += 1;
                pos = next;
            }
        }
    }
    Ok(contents)
}
