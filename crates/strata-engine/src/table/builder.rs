//! [`TableBuilder`]: writes a sorted run of internal keys into a table file, cutting data blocks
//! at the configured size and, on [`TableBuilder::finish`], appending the filter, range-del,
//! properties and index blocks and the footer before syncing the file.

use std::cmp::Ordering;

use crate::MAX_VALUE_LEN;
use crate::batch::{MAX_STORED_KEY_LEN, check_key_len};
use crate::error::{Error, Result};
use crate::fs::WritableFile;
use crate::key::{ValueKind, compare_internal, parse_internal_key, user_key};
use crate::range_del::RangeTombstone;
use crate::table::block::BlockBuilder;
use crate::table::bloom::{BloomFilter, DEFAULT_BITS_PER_KEY};
use crate::table::format::{
    BLOCK_TRAILER_LEN, BlockHandle, CompressionType, FORMAT_VERSION, Footer, block_trailer,
    compress_block, encode_range_tombstones,
};
use crate::table::properties::TableProperties;

/// How tables are laid out.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Target size of a data block's contents before it is cut (default 4096).
    pub block_size: usize,
    /// Entries between restart points in data blocks (default 16).
    pub restart_interval: usize,
    /// Bloom filter bits per user key (default 10, about 1% false positives); 0 disables the
    /// filter.
    pub bloom_bits_per_key: usize,
    /// How data blocks are compressed (none by default). A block is stored compressed only
    /// when that saves at least an eighth of its size.
    pub compression: CompressionType,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size: 4096,
            restart_interval: 16,
            bloom_bits_per_key: DEFAULT_BITS_PER_KEY,
            compression: CompressionType::None,
        }
    }
}

/// Writes one table file. Entries go in with [`TableBuilder::add`] in strictly increasing
/// internal-key order; nothing is durable until [`TableBuilder::finish`] returns.
pub struct TableBuilder {
    file: Box<dyn WritableFile>,
    opts: TableOptions,
    offset: u64,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    last_key: Vec<u8>,
    filter_hashes: Vec<u64>,
    range_tombstones: Vec<RangeTombstone>,
    props: TableProperties,
    has_seq: bool,
    failed: bool,
}

impl TableBuilder {
    /// Starts a table in `file`, which should be empty.
    pub fn new(file: Box<dyn WritableFile>, opts: TableOptions) -> TableBuilder {
        let offset = file.len();
        TableBuilder {
            file,
            data_block: BlockBuilder::new(opts.restart_interval),
            // Index entries are few and sought often: every one is a restart point.
            index_block: BlockBuilder::new(1),
            opts,
            offset,
            last_key: Vec::new(),
            filter_hashes: Vec::new(),
            range_tombstones: Vec::new(),
            props: TableProperties::default(),
            has_seq: false,
            failed: false,
        }
    }

    /// Adds an entry. `ikey` is an encoded internal key and must sort strictly after the previous
    /// one in [`compare_internal`] order; otherwise, or if the key or value is out of limits,
    /// the entry is refused with an error and the builder is unchanged.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.check_usable()?;
        let parsed = parse_internal_key(ikey).ok_or_else(|| {
            Error::InvalidArgument("table entry key is not an internal key".into())
        })?;
        check_key_len(parsed.user_key, MAX_STORED_KEY_LEN)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge {
                len: value.len(),
                max: MAX_VALUE_LEN,
            });
        }
        if self.props.num_entries > 0 && compare_internal(&self.last_key, ikey) != Ordering::Less {
            return Err(Error::InvalidArgument(
                "table entries must be added in strictly increasing key order".into(),
            ));
        }

        if self.opts.bloom_bits_per_key > 0
            && (self.props.num_entries == 0 || user_key(&self.last_key) != parsed.user_key)
        {
            self.filter_hashes.push(BloomFilter::hash(parsed.user_key));
        }
        if self.props.num_entries == 0 {
            self.props.smallest_key = ikey.to_vec();
        }
        self.props.num_entries += 1;
        if parsed.kind == ValueKind::Delete {
            self.props.num_deletions += 1;
        }
        self.props.raw_key_bytes += ikey.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        self.note_seq(parsed.seq);
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);

        self.data_block.add(ikey, value);
        if self.data_block.estimated_size() >= self.opts.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Records a range tombstone; they are stored together in the range-del block.
    pub fn add_range_tombstone(&mut self, t: &RangeTombstone) {
        self.props.num_range_deletions += 1;
        self.note_seq(t.seq);
        self.range_tombstones.push(t.clone());
    }

    /// Bytes written so far plus the size of the data block being filled.
    pub fn estimated_size(&self) -> u64 {
        self.offset + self.data_block.estimated_size() as u64
    }

    /// Point entries added so far.
    pub fn num_entries(&self) -> u64 {
        self.props.num_entries
    }

    /// Writes the last data block, the filter, range-del, properties and index blocks and the
    /// footer, then syncs the file. Returns the table's properties.
    pub fn finish(mut self) -> Result<TableProperties> {
        self.check_usable()?;
        if !self.data_block.is_empty() {
            self.flush_data_block()?;
        }
        if self.props.num_entries > 0 {
            self.props.largest_key = self.last_key.clone();
        }
        let index_contents = self.index_block.finish();

        let filter = if self.opts.bloom_bits_per_key > 0 {
            let f =
                BloomFilter::build_from_hashes(&self.filter_hashes, self.opts.bloom_bits_per_key);
            let h = self.write_block(&f)?;
            self.props.filter_size = h.size + BLOCK_TRAILER_LEN as u64;
            h
        } else {
            BlockHandle::default()
        };

        self.range_tombstones.sort();
        let range_del = self.write_block(&encode_range_tombstones(&self.range_tombstones))?;

        self.props.index_size = (index_contents.len() + BLOCK_TRAILER_LEN) as u64;
        let properties = self.write_block(&self.props.encode())?;
        let index = self.write_block(&index_contents)?;

        let footer = Footer {
            index,
            filter,
            properties,
            range_del,
            version: FORMAT_VERSION,
        };
        self.append(&footer.encode())?;
        self.file.sync()?;
        self.props.file_size = self.offset;
        Ok(self.props)
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned(
                "an earlier write to this table failed".into(),
            ));
        }
        Ok(())
    }

    fn note_seq(&mut self, seq: u64) {
        if self.has_seq {
            self.props.smallest_seq = self.props.smallest_seq.min(seq);
            self.props.largest_seq = self.props.largest_seq.max(seq);
        } else {
            self.props.smallest_seq = seq;
            self.props.largest_seq = seq;
            self.has_seq = true;
        }
    }

    fn flush_data_block(&mut self) -> Result<()> {
        let last = self.data_block.last_key().to_vec();
        let contents = self.data_block.finish();
        let handle = match compress_block(&contents, self.opts.compression) {
            Some(compressed) => self.write_block_as(&compressed, self.opts.compression)?,
            None => self.write_block(&contents)?,
        };
        self.props.data_size += handle.size + BLOCK_TRAILER_LEN as u64;
        self.index_block.add(&last, &handle.encode());
        Ok(())
    }

    fn write_block(&mut self, contents: &[u8]) -> Result<BlockHandle> {
        self.write_block_as(contents, CompressionType::None)
    }

    fn write_block_as(&mut self, stored: &[u8], kind: CompressionType) -> Result<BlockHandle> {
        let handle = BlockHandle {
            offset: self.offset,
            size: stored.len() as u64,
        };
        self.append(stored)?;
        self.append(&block_trailer(stored, kind))?;
        Ok(handle)
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        match self.file.append(data) {
            Ok(()) => {
                self.offset += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}
