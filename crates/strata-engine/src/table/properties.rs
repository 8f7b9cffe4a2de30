//! [`TableProperties`]: what a table holds (entry and tombstone counts, key and sequence-number
//! ranges, sizes), written into the table's properties block so that compaction and statistics
//! can decide about a table without reading its data.
//!
//! # Format
//!
//! Every field but `file_size` in declaration order, integers as varints and keys as a varint
//! length followed by the bytes. `file_size` is not stored: it is the size of the file read.

use crate::coding::{Reader, put_bytes, put_varint};

/// Facts about one table, gathered while it was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableProperties {
    /// Point entries (puts and point tombstones); range tombstones are not counted.
    pub num_entries: u64,
    /// Point tombstones among `num_entries`.
    pub num_deletions: u64,
    /// Range tombstones.
    pub num_range_deletions: u64,
    /// The first point entry's internal key; empty if there are no point entries.
    pub smallest_key: Vec<u8>,
    /// The last point entry's internal key; empty if there are no point entries.
    pub largest_key: Vec<u8>,
    /// The smallest sequence number of any entry or range tombstone (0 if there are none).
    pub smallest_seq: u64,
    /// The largest sequence number of any entry or range tombstone (0 if there are none).
    pub largest_seq: u64,
    /// Total length of the point entries' internal keys.
    pub raw_key_bytes: u64,
    /// Total length of the point entries' values.
    pub raw_value_bytes: u64,
    /// Bytes of data blocks on disk, trailers included.
    pub data_size: u64,
    /// Bytes of the index block on disk, trailer included.
    pub index_size: u64,
    /// Bytes of the filter block on disk, trailer included (0 without a filter).
    pub filter_size: u64,
    /// Size of the whole table file.
    pub file_size: u64,
}

impl TableProperties {
    /// Encodes the stored fields (all but `file_size`).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + self.smallest_key.len() + self.largest_key.len());
        put_varint(&mut buf, self.num_entries);
        put_varint(&mut buf, self.num_deletions);
        put_varint(&mut buf, self.num_range_deletions);
        put_bytes(&mut buf, &self.smallest_key);
        put_bytes(&mut buf, &self.largest_key);
        for v in [
            self.smallest_seq,
            self.largest_seq,
            self.raw_key_bytes,
            self.raw_value_bytes,
            self.data_size,
            self.index_size,
            self.filter_size,
        ] {
            put_varint(&mut buf, v);
        }
        buf
    }

    /// Decodes a properties block; `None` if it is malformed or has bytes left over.
    /// `file_size` is left at 0 for the caller to fill in.
    pub fn decode(b: &[u8]) -> Option<TableProperties> {
        let mut r = Reader::new(b);
        let p = TableProperties {
            num_entries: r.varint()?,
            num_deletions: r.varint()?,
            num_range_deletions: r.varint()?,
            smallest_key: r.bytes()?.to_vec(),
            largest_key: r.bytes()?.to_vec(),
            smallest_seq: r.varint()?,
            largest_seq: r.varint()?,
            raw_key_bytes: r.varint()?,
            raw_value_bytes: r.varint()?,
            data_size: r.varint()?,
            index_size: r.varint()?,
            filter_size: r.varint()?,
            file_size: 0,
        };
        r.is_empty().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableProperties {
        TableProperties {
            num_entries: 10_000,
            num_deletions: 17,
            num_range_deletions: 2,
            smallest_key: b"aaa\x01\x00\x00\x00\x00\x00\x00\x00".to_vec(),
            largest_key: b"zzz\x01\x00\x00\x00\x00\x00\x00\x00".to_vec(),
            smallest_seq: 1,
            largest_seq: u64::MAX >> 8,
            raw_key_bytes: 123_456,
            raw_value_bytes: 7_890_123,
            data_size: 8_000_000,
            index_size: 40_000,
            filter_size: 12_500,
            file_size: 0,
        }
    }

    #[test]
    fn round_trip() {
        let p = sample();
        assert_eq!(TableProperties::decode(&p.encode()), Some(p));
        let empty = TableProperties::default();
        assert_eq!(TableProperties::decode(&empty.encode()), Some(empty));
    }

    #[test]
    fn truncated_or_padded_is_rejected() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert_eq!(TableProperties::decode(&enc[..cut]), None);
        }
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(TableProperties::decode(&long), None);
    }
}
