//! [`TableIterator`]: the two-level iterator over a table. The index block says which data block
//! holds a key; data blocks are read (and their checksums verified) only when the cursor enters
//! them. A cursor that walks on through the blocks asks the OS to read the file ahead of it
//! (table files are opened for point reads, without the kernel's readahead), in a window that
//! grows from 64 KiB to 2 MiB as the scan goes on, so a short scan reads little extra and a
//! compaction reads in large requests.

use std::sync::Arc;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::table::block::BlockIter;
use crate::table::reader::Table;

/// Data blocks read in a row (by moving on, not seeking) before readahead starts.
const READAHEAD_AFTER_BLOCKS: u32 = 2;
/// The first readahead window; each next one doubles, up to [`MAX_READAHEAD`].
const MIN_READAHEAD: u64 = 64 << 10;
/// The largest readahead window.
const MAX_READAHEAD: u64 = 2 << 20;

/// A cursor over a table's point entries in internal-key order. It holds the table by `Arc`, so
/// it may outlive the caller's handle. After an error it is invalid until the next seek.
pub struct TableIterator {
    table: Arc<Table>,
    index: BlockIter,
    data: Option<BlockIter>,
    readahead: Readahead,
}

/// The sequential readahead of one cursor.
#[derive(Debug, Default)]
struct Readahead {
    /// Data blocks entered in a row since the last seek.
    blocks: u32,
    /// The file offset up to which readahead was asked for.
    until: u64,
    /// The last window asked for.
    window: u64,
}

impl TableIterator {
    pub(crate) fn new(table: Arc<Table>) -> TableIterator {
        let index = table.index_iter();
        TableIterator {
            table,
            index,
            data: None,
            readahead: Readahead::default(),
        }
    }

    /// Counts a data block entered in sequence and, once the scan is sequential, keeps the
    /// OS reading ahead of it: the next window is asked for when the cursor is half-way
    /// through the current one.
    fn read_ahead(&mut self) {
        let ra = &mut self.readahead;
        ra.blocks = ra.blocks.saturating_add(1);
        if ra.blocks < READAHEAD_AFTER_BLOCKS || !self.index.valid() {
            return;
        }
        let Some(offset) = self.table.block_offset(self.index.value()) else {
            return;
        };
        if offset + ra.window / 2 < ra.until {
            return;
        }
        ra.window = (ra.window * 2).clamp(MIN_READAHEAD, MAX_READAHEAD);
        let from = ra.until.max(offset);
        self.table.will_need(from, ra.window);
        ra.until = from + ra.window;
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
            self.read_ahead();
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
        self.readahead = Readahead::default();
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
        self.readahead = Readahead::default();
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
