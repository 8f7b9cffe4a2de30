//! Compaction: choosing which tables to merge ([`picker`], a pure planner over a [`Version`]),
//! merging them while dropping what no reader can see ([`job`]), and writing the results as
//! tables ([`output`], shared with memtable flushes).
//!
//! [`Version`]: crate::version::Version

pub mod job;
pub mod output;
pub mod picker;

use std::sync::Arc;
use std::time::Duration;

use crate::version::FileMeta;

/// Why a compaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionReason {
    /// L0 reached its file-count trigger.
    L0FileCount,
    /// A level grew past its size target.
    LevelSize,
    /// Requested through `compact_range`.
    Manual,
}

/// A planned compaction: the input tables and the level the output goes to.
#[derive(Debug, Clone)]
pub struct CompactionTask {
    /// Input tables with their levels.
    pub inputs: Vec<(usize, Arc<FileMeta>)>,
    /// Level of the output tables.
    pub output_level: usize,
    /// Why it was planned.
    pub reason: CompactionReason,
}

impl CompactionTask {
    /// Total bytes of the inputs.
    pub fn input_bytes(&self) -> u64 {
        self.inputs.iter().map(|(_, f)| f.desc.size).sum()
    }
}

/// Progress of a running compaction, passed to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionProgress {
    /// Input bytes merged so far (estimated from entry sizes).
    pub bytes_done: u64,
    /// Total input bytes.
    pub bytes_total: u64,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Tables read.
    pub files_before: usize,
    /// Bytes of the tables read.
    pub bytes_before: u64,
    /// Tables written.
    pub files_after: usize,
    /// Bytes of the tables written.
    pub bytes_after: u64,
    /// Entries read.
    pub keys_in: u64,
    /// Entries dropped (shadowed versions, tombstones and what they covered).
    pub keys_dropped: u64,
    /// Range tombstones dropped because nothing older remained beneath them.
    pub range_tombstones_dropped: u64,
    /// Wall-clock time taken.
    pub duration: Duration,
}

impl CompactionReport {
    /// Bytes by which the rewritten tables shrank.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}
