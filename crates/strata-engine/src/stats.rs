//! Counters the engine keeps while it runs, and the [`Stats`] snapshot `Db::stats` returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters, updated with relaxed atomics on the hot paths.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub keys_written: AtomicU64,
    pub keys_read: AtomicU64,
    pub bloom_negatives: AtomicU64,
    pub bloom_false_positives: AtomicU64,
    pub bloom_positives: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_bytes_read: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub flush_bytes_written: AtomicU64,
    pub keys_removed: AtomicU64,
    pub bytes_reclaimed: AtomicU64,
    pub write_stalls: AtomicU64,
    pub write_slowdowns: AtomicU64,
    pub wal_bytes_written: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub wal_records_skipped: AtomicU64,
    pub user_bytes_written: AtomicU64,
    pub last_compaction_micros: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Files and bytes of one level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Number of tables.
    pub files: usize,
    /// Total bytes of those tables.
    pub bytes: u64,
}

/// A snapshot of the engine's counters and shape.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Keys written (puts, deletes and range deletes).
    pub keys_written: u64,
    /// Point lookups served.
    pub keys_read: u64,
    /// Table lookups a bloom filter answered "absent" without reading a data block.
    pub bloom_negatives: u64,
    /// Table lookups the filter let through that found no entry for the key.
    pub bloom_false_positives: u64,
    /// Table lookups the filter let through.
    pub bloom_positives: u64,
    /// Memtables flushed to tables.
    pub flushes: u64,
    /// Compactions completed (automatic and manual).
    pub compactions: u64,
    /// Bytes read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes written by compactions.
    pub compaction_bytes_written: u64,
    /// Bytes written by flushes.
    pub flush_bytes_written: u64,
    /// Entries dropped by flushes (versions overwritten in the same memtable) and compactions
    /// (shadowed versions and tombstones).
    pub keys_removed: u64,
    /// Bytes by which compactions shrank the tables they rewrote.
    pub bytes_reclaimed: u64,
    /// Times a writer waited for a flush or compaction.
    pub write_stalls: u64,
    /// Times a writer was slowed because L0 was filling up.
    pub write_slowdowns: u64,
    /// Bytes appended to WALs.
    pub wal_bytes_written: u64,
    /// WAL syncs (group commit makes this smaller than the number of synced writes).
    pub wal_syncs: u64,
    /// Damaged WAL records skipped at open (only in skip mode).
    pub wal_records_skipped: u64,
    /// Bytes of keys and values written by users.
    pub user_bytes_written: u64,
    /// Duration of the last compaction.
    pub last_compaction: Option<Duration>,
    /// Bytes in the active and immutable memtables.
    pub memtable_bytes: u64,
    /// Immutable memtables waiting for a flush.
    pub immutable_memtables: usize,
    /// Files and bytes per level.
    pub levels: Vec<LevelStats>,
    /// Last sequence number written.
    pub last_sequence: u64,
    /// Data-block reads served by the block cache.
    pub block_cache_hits: u64,
    /// Data-block reads that went to the file.
    pub block_cache_misses: u64,
    /// Bytes held by the block cache.
    pub block_cache_bytes: u64,
    /// The block cache's byte budget.
    pub block_cache_capacity: u64,
    /// Index and filter bytes pinned in memory by open tables.
    pub pinned_table_bytes: u64,
}

impl Stats {
    /// Bytes written to tables (flushes and compactions) per byte the user wrote.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            return 0.0;
        }
        (self.flush_bytes_written + self.compaction_bytes_written) as f64
            / self.user_bytes_written as f64
    }

    /// Share of filtered table lookups where the filter saved a data-block read.
    pub fn bloom_useful_rate(&self) -> f64 {
        let total = self.bloom_negatives + self.bloom_false_positives;
        if total == 0 {
            return 0.0;
        }
        self.bloom_negatives as f64 / total as f64
    }

    /// Share of data-block reads served by the block cache.
    pub fn block_cache_hit_rate(&self) -> f64 {
        let total = self.block_cache_hits + self.block_cache_misses;
        if total == 0 {
            return 0.0;
        }
        self.block_cache_hits as f64 / total as f64
    }

    /// Total number of tables.
    pub fn table_files(&self) -> usize {
        self.levels.iter().map(|l| l.files).sum()
    }

    /// Total bytes of tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }
}
