//! [`OutputWriter`]: writes the sorted stream of a flush or compaction into tables of a target
//! size, split only between user keys, with the range tombstones clipped to each table's share of
//! the key space so that tables of one level stay disjoint.

use std::path::Path;
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::error::Result;
use crate::filename;
use crate::fs::FileSystem;
use crate::key::{ParsedKey, SeqNo, ValueKind};
use crate::range_del::RangeTombstone;
use crate::table::{Table, TableBuilder, TableOptions};
use crate::version::FileDesc;

struct OpenTable {
    builder: TableBuilder,
    number: u64,
    lower: Option<Vec<u8>>,
    smallest: Option<Vec<u8>>,
    largest: Vec<u8>,
    smallest_seq: SeqNo,
    largest_seq: SeqNo,
    entries: u64,
    deletions: u64,
}

/// Writes output tables for one level.
pub struct OutputWriter<'a> {
    fs: &'a dyn FileSystem,
    dir: &'a Path,
    level: usize,
    table_options: TableOptions,
    target_file_size: u64,
    cache: Option<Arc<BlockCache>>,
    new_file_number: &'a mut dyn FnMut() -> u64,
    tombstones: Vec<RangeTombstone>,
    current: Option<OpenTable>,
    next_lower: Option<Vec<u8>>,
    finished: Vec<(FileDesc, Arc<Table>)>,
}

impl<'a> OutputWriter<'a> {
    /// Prepares to write tables of `level` into `dir`, numbered by `new_file_number`; the
    /// tables are opened with `cache` once written.
    pub fn new(
        fs: &'a dyn FileSystem,
        dir: &'a Path,
        level: usize,
        table_options: TableOptions,
        target_file_size: u64,
        cache: Option<Arc<BlockCache>>,
        new_file_number: &'a mut dyn FnMut() -> u64,
    ) -> Self {
        OutputWriter {
            fs,
            dir,
            level,
            table_options,
            target_file_size,
            cache,
            new_file_number,
            tombstones: Vec::new(),
            current: None,
            next_lower: None,
            finished: Vec::new(),
        }
    }

    /// Range tombstones to carry into the outputs.
    pub fn set_range_tombstones(&mut self, tombstones: Vec<RangeTombstone>) {
        self.tombstones = tombstones;
    }

    /// Announces the first entry of a new user key: the current table is closed here if full.
    pub fn start_user_key(&mut self, user_key: &[u8]) -> Result<()> {
        let full = self
            .current
            .as_ref()
            .is_some_and(|t| t.builder.estimated_size() >= self.target_file_size);
        if full {
            self.finish_current(Some(user_key))?;
            self.next_lower = Some(user_key.to_vec());
        }
        Ok(())
    }

    /// Adds an entry; entries must arrive in internal-key order.
    pub fn add(&mut self, ikey: &[u8], parsed: &ParsedKey<'_>, value: &[u8]) -> Result<()> {
        if self.current.is_none() {
            self.open()?;
        }
        if let Some(t) = self.current.as_mut() {
            t.builder.add(ikey, value)?;
            if t.smallest.is_none() {
                t.smallest = Some(parsed.user_key.to_vec());
            }
            t.largest.clear();
            t.largest.extend_from_slice(parsed.user_key);
            t.smallest_seq = t.smallest_seq.min(parsed.seq);
            t.largest_seq = t.largest_seq.max(parsed.seq);
            t.entries += 1;
            if parsed.kind == ValueKind::Delete {
                t.deletions += 1;
            }
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        let number = (self.new_file_number)();
        let file = self.fs.create(&filename::table(self.dir, number))?;
        self.current = Some(OpenTable {
            builder: TableBuilder::new(file, self.table_options.clone()),
            number,
            lower: self.next_lower.take(),
            smallest: None,
            largest: Vec::new(),
            smallest_seq: SeqNo::MAX,
            largest_seq: 0,
            entries: 0,
            deletions: 0,
        });
        Ok(())
    }

    fn finish_current(&mut self, upper: Option<&[u8]>) -> Result<()> {
        let Some(mut t) = self.current.take() else {
            return Ok(());
        };
        for ts in &self.tombstones {
            let start = match &t.lower {
                Some(l) if l > &ts.start => l.clone(),
                _ => ts.start.clone(),
            };
            let end = match upper {
                Some(u) if u < ts.end.as_slice() => u.to_vec(),
                _ => ts.end.clone(),
            };
            if start >= end {
                continue;
            }
            t.builder.add_range_tombstone(&RangeTombstone {
                start: start.clone(),
                end: end.clone(),
                seq: ts.seq,
            });
            if t.smallest.as_ref().is_none_or(|s| &start < s) {
                t.smallest = Some(start);
            }
            if end > t.largest {
                t.largest = end;
            }
            t.smallest_seq = t.smallest_seq.min(ts.seq);
            t.largest_seq = t.largest_seq.max(ts.seq);
        }
        let props = t.builder.finish()?;
        let path = filename::table(self.dir, t.number);
        let table = Arc::new(Table::open_with_cache(
            self.fs.open_random(&path)?,
            &path,
            self.cache.clone(),
        )?);
        let desc = FileDesc {
            level: self.level,
            number: t.number,
            size: props.file_size,
            smallest: t.smallest.unwrap_or_default(),
            largest: t.largest,
            smallest_seq: if t.smallest_seq == SeqNo::MAX {
                0
            } else {
                t.smallest_seq
            },
            largest_seq: t.largest_seq,
            num_entries: t.entries,
            num_deletions: t.deletions,
        };
        self.finished.push((desc, table));
        Ok(())
    }

    /// Closes the last table (writing one for tombstones alone if no entry was added), syncs the
    /// directory so the new tables' names are durable, and returns what was written.
    pub fn finish(mut self) -> Result<Vec<(FileDesc, Arc<Table>)>> {
        if self.current.is_none() && self.finished.is_empty() && !self.tombstones.is_empty() {
            self.open()?;
        }
        self.finish_current(None)?;
        if !self.finished.is_empty() {
            self.fs.sync_dir(self.dir)?;
        }
        Ok(self.finished)
    }
}
