//! # strata-engine
//!
//! An embeddable LSM-tree key-value store in the LevelDB/RocksDB lineage: writes go to a
//! checksummed write-ahead log and a concurrent skiplist memtable; full memtables are flushed
//! to immutable sorted tables (SSTables) with bloom filters; background compaction merges tables
//! level by level, dropping shadowed versions and tombstones. It has no async runtime and no
//! network: other Rust programs use it the way they would use RocksDB.
//!
//! # Layout
//!
//! - [`error`]: the [`Error`] enum and [`Result`].
//! - [`fs`]: the file-system trait, the real implementation and a fault-injecting one.
//! - `coding`: bounds-checked integer and varint encoding.
//! - [`key`]: internal keys (user key, sequence number, kind) and their order.
//! - [`range_del`]: range tombstones written by `delete_range`.
//! - [`iter`]: the iterator trait shared by every sorted source.
//! - [`table`]: SSTables: blocks, bloom filters, the table builder, reader and iterator.

pub mod coding;
pub mod error;
pub mod fs;
pub mod iter;
pub mod key;
pub mod range_del;
pub mod table;

pub use error::{Error, Result};

/// The longest key accepted, in bytes (64 KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// The longest value accepted, in bytes (16 MiB).
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
