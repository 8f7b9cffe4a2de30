//! [`Table`]: an open table file. Opening reads and verifies the footer and the index, filter,
//! properties and range-del blocks and keeps them in memory; data blocks are read, and their
//! checksums verified, on each lookup.

use std::path::Path;
use std::sync::Arc;

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::fs::RandomAccessFile;
use crate::iter::InternalIterator;
use crate::key::{MAX_SEQNO, SeqNo, ValueKind, parse_internal_key, seek_key};
use crate::range_del::RangeTombstone;
use crate::table::block::{Block, BlockIter};
use crate::table::bloom::BloomFilter;
use crate::table::format::{BlockHandle, FOOTER_LEN, Footer, decode_range_tombstones, read_block};
use crate::table::iter::TableIterator;
use crate::table::properties::TableProperties;

/// The answer of a point lookup in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableGet {
    /// The bloom filter ruled the key out: no data block was read.
    FilteredOut,
    /// The filter passed (or there is none) but the table has no entry for this user key at or
    /// below the read sequence number; when the filter passed, this was a false positive.
    NotFound,
    /// The newest entry for the user key with a sequence number at or below the read one.
    Found {
        /// Sequence number of the entry.
        seq: SeqNo,
        /// Put or point tombstone.
        kind: ValueKind,
        /// The value (empty for a tombstone).
        value: Vec<u8>,
    },
    /// The lookup was not allowed to read from the file and the data block it needs is not in
    /// the block cache.
    NotCached,
}

/// An open, immutable table; `Send + Sync`, shared as `Arc<Table>`.
#[derive(Debug)]
pub struct Table {
    file: Arc<dyn RandomAccessFile>,
    path: Arc<Path>,
    index: Block,
    filter: Option<Vec<u8>>,
    properties: TableProperties,
    range_tombstones: Vec<RangeTombstone>,
    /// End of the block area (where the footer starts): no block may reach past it.
    blocks_end: u64,
    /// The shared block cache and this table's id in it.
    cache: Option<(Arc<BlockCache>, u64)>,
}

impl Table {
    /// Reads and verifies the footer and the index, filter, properties and range-del blocks,
    /// which stay in memory. `path` is used only in error messages.
    pub fn open(file: Arc<dyn RandomAccessFile>, path: &Path) -> Result<Table> {
        Self::open_with_cache(file, path, None)
    }

    /// [`Table::open`], keeping the data blocks it reads in `cache`.
    pub fn open_with_cache(
        file: Arc<dyn RandomAccessFile>,
        path: &Path,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Table> {
        let path: Arc<Path> = Arc::from(path);
        let len = file.len();
        let blocks_end = len
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| Error::corruption(&*path, 0, "file too short to be a table"))?;
        let footer_bytes = file.read_at(blocks_end, FOOTER_LEN)?;
        let footer = Footer::decode(&footer_bytes, &path, blocks_end)?;
        let read = |h: BlockHandle| read_block(file.as_ref(), &path, h, blocks_end);

        let index = Block::new(read(footer.index)?, path.clone(), footer.index.offset)?;

        let filter = if footer.filter.size == 0 {
            None
        } else {
            let f = read(footer.filter)?;
            if !BloomFilter::is_well_formed(&f) {
                return Err(Error::corruption(
                    &*path,
                    footer.filter.offset,
                    "malformed bloom filter",
                ));
            }
            Some(f)
        };

        let mut properties =
            TableProperties::decode(&read(footer.properties)?).ok_or_else(|| {
                Error::corruption(
                    &*path,
                    footer.properties.offset,
                    "malformed properties block",
                )
            })?;
        properties.file_size = len;

        let range_tombstones =
            decode_range_tombstones(&read(footer.range_del)?).ok_or_else(|| {
                Error::corruption(&*path, footer.range_del.offset, "malformed range-del block")
            })?;
        if range_tombstones.len() as u64 != properties.num_range_deletions {
            return Err(Error::corruption(
                &*path,
                footer.range_del.offset,
                "range tombstone count disagrees with the properties",
            ));
        }

        Ok(Table {
            file,
            path,
            index,
            filter,
            properties,
            range_tombstones,
            blocks_end,
            cache: cache.map(|c| {
                let id = c.new_id();
                (c, id)
            }),
        })
    }

    /// Looks up the newest entry for `user_key` at or below `seq`. Range tombstones are not
    /// applied here: they are returned by [`Table::range_tombstones`] for the caller to combine
    /// with those of newer sources.
    pub fn get(&self, user_key: &[u8], seq: SeqNo) -> Result<TableGet> {
        self.get_hashed(user_key, BloomFilter::hash(user_key), seq, true)
    }

    /// [`Table::get`] with the key's [`BloomFilter::hash`] already computed, so one hash serves
    /// every table a lookup visits. Without `allow_io`, a data block missing from the block
    /// cache is not read: the answer is [`TableGet::NotCached`].
    pub fn get_hashed(
        &self,
        user_key: &[u8],
        hash: u64,
        seq: SeqNo,
        allow_io: bool,
    ) -> Result<TableGet> {
        if self
            .filter
            .as_deref()
            .is_some_and(|f| !BloomFilter::may_contain_hash(f, hash))
        {
            return Ok(TableGet::FilteredOut);
        }
        let target = seek_key(user_key, seq.min(MAX_SEQNO));
        let mut index = self.index.iter();
        index.seek(&target)?;
        if !index.valid() {
            return Ok(TableGet::NotFound);
        }
        let block = if allow_io {
            self.read_data_block(index.value())?
        } else {
            match self.cached_data_block(index.value())? {
                Some(block) => block,
                None => return Ok(TableGet::NotCached),
            }
        };
        let mut it = block.iter();
        it.seek(&target)?;
        if !it.valid() {
            // The index key is the block's last key and sorts at or after the target, so the
            // block must hold an entry at or after it.
            return Err(Error::corruption(
                &*self.path,
                block.offset(),
                "data block ends before its index key",
            ));
        }
        let parsed = parse_internal_key(it.key()).ok_or_else(|| {
            Error::corruption(
                &*self.path,
                block.offset(),
                "malformed internal key in data block",
            )
        })?;
        if parsed.user_key != user_key {
            return Ok(TableGet::NotFound);
        }
        Ok(TableGet::Found {
            seq: parsed.seq,
            kind: parsed.kind,
            value: it.value().to_vec(),
        })
    }

    /// False if the bloom filter rules `user_key` out; true if it may be present (or the table
    /// has no filter).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|f| BloomFilter::may_contain(f, user_key))
    }

    /// An iterator over every point entry, reading data blocks as it reaches them.
    pub fn iter(self: &Arc<Self>) -> TableIterator {
        TableIterator::new(self.clone())
    }

    /// The table's properties.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// The table's range tombstones, sorted.
    pub fn range_tombstones(&self) -> &[RangeTombstone] {
        &self.range_tombstones
    }

    /// The path the table was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An iterator over the index block: (last key of a data block, encoded block handle).
    pub(crate) fn index_iter(&self) -> BlockIter {
        self.index.iter()
    }

    fn decode_handle(&self, handle_bytes: &[u8]) -> Result<BlockHandle> {
        BlockHandle::decode(handle_bytes).ok_or_else(|| {
            Error::corruption(
                &*self.path,
                self.index.offset(),
                "malformed block handle in index",
            )
        })
    }

    /// The data block whose encoded handle is `handle_bytes` if the block cache holds it.
    fn cached_data_block(&self, handle_bytes: &[u8]) -> Result<Option<Block>> {
        let handle = self.decode_handle(handle_bytes)?;
        Ok(self
            .cache
            .as_ref()
            .and_then(|(cache, id)| cache.get((*id, handle.offset))))
    }

    /// The file offset of the block whose encoded handle is `handle_bytes`.
    pub(crate) fn block_offset(&self, handle_bytes: &[u8]) -> Option<u64> {
        BlockHandle::decode(handle_bytes).map(|h| h.offset)
    }

    /// Hints that the file's `len` bytes from `offset` will be read soon.
    pub(crate) fn will_need(&self, offset: u64, len: u64) {
        self.file.will_need(offset, len);
    }

    /// Reads and verifies the data block whose encoded handle is `handle_bytes`.
    pub(crate) fn read_data_block(&self, handle_bytes: &[u8]) -> Result<Block> {
        if let Some(block) = self.cached_data_block(handle_bytes)? {
            return Ok(block);
        }
        let handle = self.decode_handle(handle_bytes)?;
        let contents = read_block(self.file.as_ref(), &self.path, handle, self.blocks_end)?;
        let block = Block::new(contents, self.path.clone(), handle.offset)?;
        if let Some((cache, id)) = &self.cache {
            cache.insert((*id, handle.offset), block.clone());
        }
        Ok(block)
    }

    /// Bytes this table keeps in memory for as long as it is open (index and filter blocks).
    pub fn pinned_bytes(&self) -> usize {
        self.index.size() + self.filter.as_ref().map_or(0, Vec::len)
    }
}
