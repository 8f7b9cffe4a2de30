//! [`VersionEdit`]: one change to the set of live tables (tables added and removed, the WAL still
//! needed, counters), encoded as a tagged record of the MANIFEST.

use crate::coding::{Reader, put_bytes, put_varint};
use crate::key::SeqNo;

const TAG_FORMAT_VERSION: u64 = 1;
const TAG_LOG_NUMBER: u64 = 2;
const TAG_NEXT_FILE_NUMBER: u64 = 3;
const TAG_LAST_SEQ: u64 = 4;
const TAG_NEW_FILE: u64 = 5;
const TAG_DELETED_FILE: u64 = 6;

/// What the MANIFEST records about one table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileDesc {
    /// Level the table lives in.
    pub level: usize,
    /// File number (the table is `NNNNNN.sst`).
    pub number: u64,
    /// Size in bytes.
    pub size: u64,
    /// Smallest user key (or range-tombstone start) in the table.
    pub smallest: Vec<u8>,
    /// Largest user key (or range-tombstone end) in the table.
    pub largest: Vec<u8>,
    /// Smallest sequence number.
    pub smallest_seq: SeqNo,
    /// Largest sequence number.
    pub largest_seq: SeqNo,
    /// Point entries, tombstones included.
    pub num_entries: u64,
    /// Point tombstones.
    pub num_deletions: u64,
}

/// A change to the version: applied in order, the edits of a MANIFEST rebuild the current state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionEdit {
    /// Store format version (written in the first edit of every MANIFEST).
    pub format_version: Option<u32>,
    /// WALs numbered below this hold nothing that is not in a table.
    pub log_number: Option<u64>,
    /// Next unused file number.
    pub next_file_number: Option<u64>,
    /// Highest sequence number stored in a table.
    pub last_seq: Option<SeqNo>,
    /// Tables added.
    pub new_files: Vec<FileDesc>,
    /// Tables removed, as (level, number).
    pub deleted_files: Vec<(usize, u64)>,
}

impl VersionEdit {
    /// Encodes the edit as a MANIFEST record.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        if let Some(v) = self.format_version {
            put_varint(&mut b, TAG_FORMAT_VERSION);
            put_varint(&mut b, u64::from(v));
        }
        for (tag, v) in [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE_NUMBER, self.next_file_number),
            (TAG_LAST_SEQ, self.last_seq),
        ] {
            if let Some(v) = v {
                put_varint(&mut b, tag);
                put_varint(&mut b, v);
            }
        }
        for f in &self.new_files {
            put_varint(&mut b, TAG_NEW_FILE);
            put_varint(&mut b, f.level as u64);
            put_varint(&mut b, f.number);
            put_varint(&mut b, f.size);
            put_bytes(&mut b, &f.smallest);
            put_bytes(&mut b, &f.largest);
            put_varint(&mut b, f.smallest_seq);
            put_varint(&mut b, f.largest_seq);
            put_varint(&mut b, f.num_entries);
            put_varint(&mut b, f.num_deletions);
        }
        for (level, number) in &self.deleted_files {
            put_varint(&mut b, TAG_DELETED_FILE);
            put_varint(&mut b, *level as u64);
            put_varint(&mut b, *number);
        }
        b
    }

    /// Decodes a MANIFEST record; `None` if it is malformed.
    pub fn decode(bytes: &[u8]) -> Option<VersionEdit> {
        let mut r = Reader::new(bytes);
        let mut e = VersionEdit::default();
        while !r.is_empty() {
            match r.varint()? {
                TAG_FORMAT_VERSION => e.format_version = Some(u32::try_from(r.varint()?).ok()?),
                TAG_LOG_NUMBER => e.log_number = Some(r.varint()?),
                TAG_NEXT_FILE_NUMBER => e.next_file_number = Some(r.varint()?),
                TAG_LAST_SEQ => e.last_seq = Some(r.varint()?),
                TAG_NEW_FILE => e.new_files.push(FileDesc {
                    level: r.varint_usize()?,
                    number: r.varint()?,
                    size: r.varint()?,
                    smallest: r.bytes()?.to_vec(),
                    largest: r.bytes()?.to_vec(),
                    smallest_seq: r.varint()?,
                    largest_seq: r.varint()?,
                    num_entries: r.varint()?,
                    num_deletions: r.varint()?,
                }),
                TAG_DELETED_FILE => e.deleted_files.push((r.varint_usize()?, r.varint()?)),
                _ => return None,
            }
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let e = VersionEdit {
            format_version: Some(1),
            log_number: Some(7),
            next_file_number: Some(9),
            last_seq: Some(1234),
            new_files: vec![FileDesc {
                level: 1,
                number: 8,
                size: 4096,
                smallest: b"a".to_vec(),
                largest: b"z".to_vec(),
                smallest_seq: 1,
                largest_seq: 1234,
                num_entries: 10,
                num_deletions: 2,
            }],
            deleted_files: vec![(0, 3), (0, 4)],
        };
        let enc = e.encode();
        assert_eq!(VersionEdit::decode(&enc), Some(e));
        for cut in 1..enc.len() {
            // A cut may land on a tag boundary and decode to a shorter edit, but never panic.
            let _ = VersionEdit::decode(&enc[..cut]);
        }
        assert_eq!(VersionEdit::decode(&[99]), None);
    }
}
