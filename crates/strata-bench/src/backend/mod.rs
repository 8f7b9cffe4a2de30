//! The [`Backend`] trait that every engine or server under test implements, the settings they
//! are opened with ([`BackendConfig`]), [`open`], which picks an engine by [`EngineKind`], and
//! [`open_target`], which connects to a server by [`Target`].
//!
//! The model is thread-per-client: the runner starts `--threads` OS threads, each calling the
//! blocking methods of the backend. An engine in this process is shared by every thread through
//! an `Arc`; a remote backend (gRPC, RESP) gives each thread a connection of its own through
//! [`Backend::thread_client`], as independent clients would have, or for gRPC and etcd one of
//! a few shared ones ([`conns`]).

pub mod conns;
pub mod embedded;
pub mod etcd;
#[cfg(feature = "fjall")]
pub mod fjall;
pub mod grpc;
pub mod resp;
pub mod target;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::workload::Workload;
use conns::Conns;

pub use target::Target;

/// A key-value store under test. Every method may be called from many threads at once.
pub trait Backend: Send + Sync {
    /// A short name for reports (`strata`, `fjall`).
    fn name(&self) -> &'static str;

    /// Reads `key`; `Ok(None)` when absent.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Writes one key; with `sync` the write is on stable storage when this returns.
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()>;

    /// Deletes one key; `sync` as for [`Backend::put`].
    fn delete(&self, key: &[u8], sync: bool) -> Result<()>;

    /// Writes several keys atomically; `sync` as for [`Backend::put`].
    fn put_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()>;

    /// Visits up to `limit` entries in key order from the first key at or after `start`, and
    /// returns how many it visited.
    fn scan(
        &self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize>;

    /// Writes everything in memory to table files (a no-op where that means nothing).
    fn flush(&self) -> Result<()>;

    /// The directory holding the store's files, for backends that run in this process; the
    /// cold-read workload evicts its files from the page cache.
    fn local_dir(&self) -> Option<&Path>;

    /// What one client thread should call. `None` (the default): this backend itself, shared
    /// by every thread, as an engine in this process is. A remote backend returns a new
    /// connection, opened before the thread's clock starts.
    fn thread_client(&self) -> Result<Option<Box<dyn Backend>>> {
        Ok(None)
    }

    /// Why `workload` cannot run on this backend, if it cannot; the runner skips it with a note.
    fn unsupported(&self, workload: Workload) -> Option<&'static str> {
        if workload == Workload::ColdRead && self.local_dir().is_none() {
            return Some("its files are not on this machine");
        }
        None
    }
}

/// Which engine to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Strata's own engine, in process.
    Strata,
    /// The fjall crate (needs the `fjall` cargo feature).
    Fjall,
}

impl EngineKind {
    /// The engine's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Strata => "strata",
            EngineKind::Fjall => "fjall",
        }
    }
}

/// Block compression asked for with `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// The engine settings shared by every backend; a backend that lacks one reports it in
/// [`Opened::notes`] instead of failing.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The store directory.
    pub data_dir: PathBuf,
    /// Memtable size in bytes.
    pub write_buffer_size: usize,
    /// Bloom filter bits per key.
    pub bloom_bits: usize,
    /// Block cache budget in bytes, when given.
    pub cache_size: Option<u64>,
    /// Block compression.
    pub compression: Compression,
}

/// A freshly opened backend and what it could not honour.
pub struct Opened {
    /// The backend, ready to share between threads.
    pub backend: Arc<dyn Backend>,
    /// Settings that this engine (version) does not support, in words for the report.
    pub notes: Vec<String>,
}

/// Connects to the server `target`, presenting `token` when given; `conns` says whether the
/// client threads share connections (gRPC and etcd targets; a RESP connection is never shared,
/// its replies come in order).
pub fn open_target(target: &Target, token: Option<&str>, conns: Conns) -> Result<Opened> {
    match target {
        Target::Grpc(_) => grpc::open(&target.addrs(), token, conns),
        Target::Redis(addr) => resp::open(addr, token),
        Target::Etcd(_) => etcd::open(&target.addrs(), conns),
    }
}

/// Opens the backend `kind` on `config.data_dir`.
pub fn open(kind: EngineKind, config: &BackendConfig) -> Result<Opened> {
    match kind {
        EngineKind::Strata => embedded::open(config),
        #[cfg(feature = "fjall")]
        EngineKind::Fjall => fjall::open(config),
        #[cfg(not(feature = "fjall"))]
        EngineKind::Fjall => Err(crate::error::Error::UnknownEngine(format!(
            "{} (rebuild with --features fjall)",
            kind.name()
        ))),
    }
}
