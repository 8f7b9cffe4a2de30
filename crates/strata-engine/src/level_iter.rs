//! [`LevelIterator`]: iterates the disjoint, sorted tables of one level (L1 and deeper) as one
//! sequence, opening a table iterator only when the walk reaches that table.

use std::sync::Arc;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::user_key;
use crate::table::TableIterator;
use crate::version::FileMeta;

/// The iterators that walk one level's tables: one per table in L0, whose tables overlap, and
/// one concatenating iterator for a deeper level, whose tables are disjoint.
pub fn level_iterators(
    level: usize,
    mut files: Vec<Arc<FileMeta>>,
) -> Vec<Box<dyn InternalIterator>> {
    if level == 0 {
        return files
            .iter()
            .map(|f| Box::new(f.table.iter()) as Box<dyn InternalIterator>)
            .collect();
    }
    if files.is_empty() {
        return Vec::new();
    }
    files.sort_by(|a, b| a.desc.smallest.cmp(&b.desc.smallest));
    vec![Box::new(LevelIterator::new(files))]
}

/// Concatenates the tables of a level.
pub struct LevelIterator {
    files: Vec<Arc<FileMeta>>,
    index: usize,
    current: Option<TableIterator>,
}

impl LevelIterator {
    /// Iterates `files`, which must be sorted and disjoint.
    pub fn new(files: Vec<Arc<FileMeta>>) -> Self {
        LevelIterator {
            files,
            index: 0,
            current: None,
        }
    }

    fn open(&mut self, index: usize) {
        self.index = index;
        self.current = self.files.get(index).map(|f| f.table.iter());
    }

    /// Moves forward across exhausted tables until one has an entry.
    fn skip_empty(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            self.open(self.index + 1);
            if let Some(c) = self.current.as_mut() {
                c.seek_to_first()?;
            }
        }
        Ok(())
    }
}

impl InternalIterator for LevelIterator {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.open(0);
        if let Some(c) = self.current.as_mut() {
            c.seek_to_first()?;
        }
        self.skip_empty()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let uk = user_key(target);
        let i = self
            .files
            .partition_point(|f| f.desc.largest.as_slice() < uk);
        self.open(i);
        if let Some(c) = self.current.as_mut() {
            c.seek(target)?;
        }
        self.skip_empty()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.next()?;
        }
        self.skip_empty()
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.value())
    }
}
