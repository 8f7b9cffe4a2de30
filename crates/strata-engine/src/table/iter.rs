//! [`TableIterator`]: the two-level iterator over a table. The index block says which data block
//! holds a key; data blocks are read (and their checksums verified) only when the cursor enters
//! them.

use std::sync::Arc;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::table::block::BlockIter;
use crate::table::reader::Table;

/// A cursor over a table's point entries in internal-key order. It holds the table by `Arc`, so
/// it may outlive the caller's handle. After an error it is invalid until the next seek.
pub struct TableIterator {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
}

impl TableIterator {
    pub(crate) fn new(table: Arc<Table>) -> TableIterator {
        let index = table.index_iter();
        TableIterator {
            table,
            index,
            data: None,
        }
    }

    /// Opens the data block under the index cursor, or clears the data cursor at the end.
    fn load_data_block(&mut self) -> Result<()> {
        self.data = None;
        if self.index.valid() {
            let block = self.table.read_data_block(self.index.value())?;
            self.data = Some(block.iter());
        }
        Ok(())
    }

    /// Moves forward past exhausted data blocks to the next entry, if any.
    fn skip_exhausted_blocks(&mut self) -> Result<()> {
        while self.data.as_ref().is_some_and(|d| !d.valid()) {
            self.index.next()?;
            self.load_data_block()?;
            if let Some(d) = self.data.as_mut() {
                d.seek_to_first()?;
            }
        }
        Ok(())
    }

    /// Runs a positioning step; on error, leaves the iterator invalid.
    fn guarded(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let r = step(self);
        if r.is_err() {
            self.data = None;
        }
        r
    }
}

impl InternalIterator for TableIterator {
    fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.valid())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.guarded(|s| {
            s.index.seek_to_first()?;
            s.load_data_block()?;
            if let Some(d) = s.data.as_mut() {
                d.seek_to_first()?;
            }
            s.skip_exhausted_blocks()
        })
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.guarded(|s| {
            s.index.seek(target)?;
            s.load_data_block()?;
            if let Some(d) = s.data.as_mut() {
                d.seek(target)?;
            }
            s.skip_exhausted_blocks()
        })
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid() {
            return Ok(());
        }
        self.guarded(|s| {
            if let Some(d) = s.data.as_mut() {
                d.next()?;
            }
            s.skip_exhausted_blocks()
        })
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.key())
    }

    fn value(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.value())
    }
}
