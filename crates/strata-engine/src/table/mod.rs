//! Sorted string tables (SSTables): immutable files of internal keys in order, written once by
//! flushes and compactions and read by point lookups and iterators.
//!
//! A table is a run of data blocks (prefix-compressed keys with restart points), a bloom filter
//! over its user keys, its range tombstones, a properties block and an index block with one entry
//! per data block, closed by a fixed-size footer. Every block carries a CRC32C that is checked on
//! each read; damage is reported as [`Error::ChecksumMismatch`](crate::Error::ChecksumMismatch)
//! or [`Error::Corruption`](crate::Error::Corruption) naming the file and offset.
//!
//! - [`block`]: the block format, [`BlockBuilder`](block::BlockBuilder) and
//!   [`BlockIter`](block::BlockIter).
//! - [`bloom`]: the [`BloomFilter`].
//! - [`format`](mod@format): block handles, block trailers and the footer.
//! - [`properties`]: the [`TableProperties`].
//! - [`builder`]: [`TableBuilder`] and [`TableOptions`].
//! - [`reader`]: [`Table`] and [`TableGet`].
//! - [`iter`]: the two-level [`TableIterator`].
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod block;
pub mod bloom;
pub mod builder;
pub mod format;
pub mod iter;
pub mod properties;
pub mod reader;

#[cfg(test)]
mod tests;

pub use bloom::BloomFilter;
pub use builder::{TableBuilder, TableOptions};
pub use format::CompressionType;
pub use iter::TableIterator;
pub use properties::TableProperties;
pub use reader::{Table, TableGet};
