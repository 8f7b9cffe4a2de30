//! Tuning knobs: [`Options`] for opening a store, [`WriteOptions`] per write.

use std::sync::Arc;

use crate::fs::{FileSystem, OsFs};
use crate::table::{CompressionType, TableOptions};

/// How tables are merged in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactionStyle {
    /// L0 by file count into L1, deeper levels by size with a growth ratio: low space and read
    /// amplification, more rewriting.
    #[default]
    Leveled,
    /// Every table is a sorted run in L0; runs of similar size are merged together, and all
    /// runs when the space they waste passes 200%: less rewriting, more space and read
    /// amplification.
    Tiered,
}

/// How a store is opened and run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The file system to use (the real one unless a test injects faults).
    pub fs: Arc<dyn FileSystem>,
    /// Create the directory and a new store if none exists.
    pub create_if_missing: bool,
    /// Memtable size that triggers a switch to a new memtable and a flush.
    pub write_buffer_size: usize,
    /// Full memtables that may wait for flushing before writers stop.
    pub max_immutable_memtables: usize,
    /// Target size of a data block.
    pub block_size: usize,
    /// Bloom filter bits per key (0 disables filters).
    pub bloom_bits_per_key: usize,
    /// Byte budget of the cache of data blocks shared by all tables (0 disables it). Index and
    /// filter blocks are pinned in memory outside this budget and reported in stats.
    pub block_cache_size: usize,
    /// Compression of data blocks in new tables (tables already written keep theirs).
    pub compression: CompressionType,
    /// Number of L0 tables that triggers a compaction into L1.
    pub l0_compaction_trigger: usize,
    /// Number of L0 tables at which writers are slowed.
    pub l0_slowdown_trigger: usize,
    /// Number of L0 tables at which writers wait for compaction.
    pub l0_stop_trigger: usize,
    /// Target size of L1; each deeper level is `level_size_multiplier` times larger.
    pub max_bytes_for_level_base: u64,
    /// Growth factor between levels.
    pub level_size_multiplier: u64,
    /// Target size of a table written by compaction.
    pub target_file_size: u64,
    /// Obsolete WAL files kept for reuse: a new log overwrites one in place rather than growing
    /// a fresh file, so synced appends do not also pay for file growth (0 deletes them).
    pub recycle_log_files: usize,
    /// Leveled (the default) or size-tiered compaction.
    pub compaction_style: CompactionStyle,
    /// Run compactions automatically in the background.
    pub auto_compaction: bool,
    /// Recover past damaged WAL records instead of refusing to open (reported in stats).
    pub skip_damaged_wal_records: bool,
    /// Bytes a layer above prepends to its users' keys (at most
    /// [`MAX_KEY_PREFIX_ROOM`](crate::MAX_KEY_PREFIX_ROOM)): the store accepts keys of up to
    /// [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) plus this many bytes, so every user key of the
    /// documented limit fits behind the prefix. 0 (the default) for embedded use.
    pub key_prefix_room: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fs: Arc::new(OsFs),
            create_if_missing: true,
            write_buffer_size: 64 << 20,
            max_immutable_memtables: 2,
            block_size: 4096,
            bloom_bits_per_key: 10,
            block_cache_size: 32 << 20,
            compression: CompressionType::None,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 12,
            l0_stop_trigger: 20,
            max_bytes_for_level_base: 64 << 20,
            level_size_multiplier: 10,
            target_file_size: 32 << 20,
            recycle_log_files: 2,
            compaction_style: CompactionStyle::Leveled,
            auto_compaction: true,
            skip_damaged_wal_records: false,
            key_prefix_room: 0,
        }
    }
}

impl Options {
    /// The longest key this store accepts.
    pub fn max_key_len(&self) -> usize {
        crate::MAX_KEY_LEN + self.key_prefix_room
    }

    /// The options for tables this store writes.
    pub fn table_options(&self) -> TableOptions {
        TableOptions {
            block_size: self.block_size,
            bloom_bits_per_key: self.bloom_bits_per_key,
            compression: self.compression,
            ..TableOptions::default()
        }
    }
}

/// How one write is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// `true` (the default): the write is on stable storage when acknowledged and survives power
    /// loss. `false`: it reached the operating system and survives the process being killed.
    pub sync: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { sync: true }
    }
}

impl WriteOptions {
    /// Options for a write acknowledged before it is synced.
    pub fn no_sync() -> Self {
        WriteOptions { sync: false }
    }
}
