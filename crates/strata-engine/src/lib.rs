//! # strata-engine
//!
//! An embeddable LSM-tree key-value store in the LevelDB/RocksDB lineage: writes go to a
//! checksummed write-ahead log and a concurrent skiplist memtable; full memtables are flushed
//! to immutable sorted tables (SSTables) with bloom filters; background compaction merges tables
//! level by level, dropping shadowed versions and tombstones. It has no async runtime and no
//! network: other Rust programs use it the way they would use RocksDB.
//!
//! ```
//! use strata_engine::{Db, Options, WriteBatch, WriteOptions};
//! # fn main() -> strata_engine::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"user:1", b"alice")?.put(b"user:2", b"bob")?;
//! db.write(batch, WriteOptions::default())?; // atomic and synced
//! let users: Vec<_> = db.prefix(b"user:")?.collect::<Result<_, _>>()?;
//! assert_eq!(users.len(), 2);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`db`]: [`Db`], the store: open and recovery, the group-commit write path, reads and
//!   iterators, background flush and compaction threads.
//! - [`options`]: [`Options`] and [`WriteOptions`].
//! - [`batch`]: atomic write batches and their WAL encoding.
//! - [`wal`]: the write-ahead log: record framing, writer, recovery.
//! - [`memtable`]: the concurrent skiplist that takes writes before a flush.
//! - [`cache`]: the sharded LRU cache of data blocks.
//! - [`table`]: SSTables: blocks, bloom filters, index, properties, footer, builder, reader.
//! - [`version`]: the live tables per level and the MANIFEST that persists them.
//! - [`compaction`]: planning, running and writing compactions.
//! - [`merge`], [`level_iter`], [`iter`]: the iterators that stitch sources together.
//! - [`key`]: internal keys (user key, sequence number, kind) and their order.
//! - [`range_del`]: range tombstones written by `delete_range`.
//! - [`stats`]: counters and the [`Stats`] snapshot.
//! - [`fs`]: the file-system trait, the real implementation and a fault-injecting one.
//! - [`filename`]: names of the files in a store directory.
//! - [`error`]: the [`Error`] enum and [`Result`].
//! - [`coding`]: bounds-checked integer and varint encoding.

pub mod batch;
pub mod cache;
pub mod coding;
pub mod compaction;
pub mod db;
pub mod error;
pub mod filename;
pub mod fs;
pub mod iter;
pub mod key;
pub mod level_iter;
pub mod memtable;
pub mod merge;
pub mod options;
pub mod range_del;
pub mod stats;
pub mod table;
pub mod version;
pub mod wal;

pub use batch::WriteBatch;
pub use compaction::{CompactionProgress, CompactionReport};
pub use db::{Db, DbIterator, PendingWrite, Snapshot};
pub use error::{Error, Result};
pub use options::{CompactionStyle, Options, WriteOptions};
pub use stats::{LevelStats, Stats};
pub use table::CompressionType;

/// The longest key accepted, in bytes (64 KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// The most bytes [`Options::key_prefix_room`] may let a layer above prepend to its users' keys
/// (the cluster's partition prefix takes 3), so that a user key of [`MAX_KEY_LEN`] still fits.
pub const MAX_KEY_PREFIX_ROOM: usize = 16;
/// The longest value accepted, in bytes (16 MiB).
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
