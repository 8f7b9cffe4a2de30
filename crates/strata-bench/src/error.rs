//! The [`Error`] enum of the benchmark library and its [`Result`] alias.

use std::path::PathBuf;

/// What can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag or a combination of flags that cannot be run.
    #[error("invalid argument {flag}: {reason}")]
    InvalidArgument {
        /// The flag, as spelled on the command line.
        flag: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A name in `--benchmarks` that is not a known workload.
    #[error("unknown benchmark {0:?} (see --help for the list)")]
    UnknownWorkload(String),
    /// `--engine` named an engine this build does not have.
    #[error("engine {0:?} is not available in this build")]
    UnknownEngine(String),
    /// The data directory holds files that a previous benchmark did not write.
    #[error(
        "refusing to wipe {0}: it is not empty and was not created by strata bench \
         (pass an empty or new directory, or --use-existing-db)"
    )]
    ForeignDataDir(PathBuf),
    /// A workload needs something the backend cannot do (such as a local directory to evict).
    #[error("{workload} is not supported by the {backend} backend: {reason}")]
    Unsupported {
        /// The workload that was asked for.
        workload: &'static str,
        /// The backend's name.
        backend: &'static str,
        /// What is missing.
        reason: &'static str,
    },
    /// An operation on the backend failed.
    #[error("{backend} {op} failed: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The operation (get, put, ...).
        op: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file operation of the benchmark itself (data directory, probe file) failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Report(#[from] std::io::Error),
    /// A worker thread panicked.
    #[error("a benchmark thread panicked in {0}")]
    ThreadPanicked(&'static str),
}

impl Error {
    /// Wraps a backend error, naming the backend and the operation.
    pub fn backend(
        backend: &'static str,
        op: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            backend,
            op,
            source: Box::new(source),
        }
    }

    /// Wraps an I/O error on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
