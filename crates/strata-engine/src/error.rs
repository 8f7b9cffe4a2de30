//! The engine's error type: one enum with structured variants that callers can match on.

use std::path::PathBuf;

/// The result type used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way an engine operation can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the file it concerned when known.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Bytes on disk failed a checksum or could not be decoded.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record or block.
        offset: u64,
        /// What was wrong.
        reason: String,
    },

    /// A checksum did not match.
    #[error(
        "checksum mismatch in {file} at offset {offset}: stored {expected:#010x}, computed {got:#010x}"
    )]
    ChecksumMismatch {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record or block.
        offset: u64,
        /// Checksum stored on disk.
        expected: u32,
        /// Checksum computed over the bytes read.
        got: u32,
    },

    /// A key that is empty or longer than the limit (`max`): [`MAX_KEY_LEN`](crate::MAX_KEY_LEN)
    /// plus the store's [`key_prefix_room`](crate::Options::key_prefix_room).
    #[error("key of {len} bytes is invalid: keys must be 1 to {max} bytes")]
    InvalidKey {
        /// Length of the rejected key.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value longer than [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN).
    #[error("value of {len} bytes is too large: the limit is {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// An argument that makes no sense (an empty range, a bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The directory holds something that is not a Strata store.
    #[error("{path} is not a Strata store: {reason}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The store was written by a newer format than this build understands.
    #[error("{path} uses format version {found}, this build reads up to {supported}")]
    UnsupportedVersion {
        /// The file carrying the version.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },

    /// Another process (or another `Db` in this one) holds the directory's lock.
    #[error("{path} is locked by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// An earlier failure (a failed fsync, a crashed background job) left the store unsafe to
    /// write; reopen it to recover from what is durable.
    #[error("store is poisoned by an earlier failure ({0}); reopen it to recover")]
    Poisoned(String),

    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
}

impl Error {
    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a [`Error::Corruption`].
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors caused by damaged bytes on disk.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. } | Error::ChecksumMismatch { .. }
        )
    }
}
