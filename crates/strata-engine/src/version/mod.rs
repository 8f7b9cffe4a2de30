//! Versions: the set of live tables per level at one moment. A [`Version`] is immutable and
//! shared by `Arc`, so readers keep the tables they started with while flushes and compactions
//! install new versions. [`VersionSet`] persists the changes in the MANIFEST.

mod edit;
mod set;

use std::sync::Arc;

pub use edit::{FileDesc, VersionEdit};
pub use set::{FORMAT_VERSION, VersionSet};

use crate::key::SeqNo;
use crate::range_del::RangeTombstone;
use crate::table::Table;

/// Number of levels in the tree.
pub const NUM_LEVELS: usize = 7;

/// A live table and what the MANIFEST says of it.
#[derive(Debug)]
pub struct FileMeta {
    /// The MANIFEST's description.
    pub desc: FileDesc,
    /// The open table.
    pub table: Arc<Table>,
}

impl FileMeta {
    /// True if the table's key range shares a key with the inclusive range `[lo, hi]`.
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.desc.smallest.as_slice() <= hi && lo <= self.desc.largest.as_slice()
    }

    /// True if the table's key range holds `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.overlaps(key, key)
    }
}

/// The tables of every level at one moment. L0 tables may overlap and are kept newest first;
/// tables of deeper levels are disjoint and sorted by key.
#[derive(Debug, Default, Clone)]
pub struct Version {
    /// Tables per level.
    pub levels: [Vec<Arc<FileMeta>>; NUM_LEVELS],
    /// Every range tombstone held by any table.
    pub range_tombstones: Vec<RangeTombstone>,
}

impl Version {
    /// Tables of `level` whose key range shares a key with `[lo, hi]`.
    pub fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<FileMeta>> {
        self.levels
            .get(level)
            .map(|files| {
                files
                    .iter()
                    .filter(|f| f.overlaps(lo, hi))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tables that may hold `key`, in the order a read must search them (newest data first).
    pub fn tables_for_key<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = &'a Arc<FileMeta>> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(move |(level, files)| {
                let start = if level == 0 {
                    0
                } else {
                    // Disjoint and sorted: skip the tables that end before the key.
                    files.partition_point(|f| f.desc.largest.as_slice() < key)
                };
                files
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(move |f| level == 0 || f.desc.smallest.as_slice() <= key)
                    .filter(move |f| f.contains(key))
            })
    }

    /// Total bytes of a level's tables.
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map_or(0, |files| files.iter().map(|f| f.desc.size).sum())
    }

    /// Total number of tables.
    pub fn num_files(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// True if no table below `level` may hold a key in `[lo, hi]`: a tombstone for such a key
    /// compacted into `level` has nothing left to hide.
    pub fn is_bottom_for(&self, level: usize, lo: &[u8], hi: &[u8]) -> bool {
        ((level + 1)..NUM_LEVELS).all(|l| self.overlapping(l, lo, hi).is_empty())
    }

    /// Highest sequence number held by any table.
    pub fn max_seq(&self) -> SeqNo {
        self.levels
            .iter()
            .flatten()
            .map(|f| f.desc.largest_seq)
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn rebuild_range_tombstones(&mut self) {
        self.range_tombstones = self
            .levels
            .iter()
            .flatten()
            .flat_map(|f| f.table.range_tombstones().iter().cloned())
            .collect();
    }
}
