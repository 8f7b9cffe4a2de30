//! [`WriteBatch`]: an ordered group of puts, deletes and range deletes applied atomically, and its
//! encoding as a WAL record (`seq: u64`, `count: u32`, then one tagged entry per operation; each
//! operation consumes one sequence number, starting at `seq`).

use crate::coding::{Reader, put_bytes, put_u32, put_u64};
use crate::error::{Error, Result};
use crate::key::{MAX_SEQNO, SeqNo};
use crate::{MAX_KEY_LEN, MAX_KEY_PREFIX_ROOM, MAX_VALUE_LEN};

/// The longest key any store accepts: [`MAX_KEY_LEN`] plus the most prefix room.
pub(crate) const MAX_STORED_KEY_LEN: usize = MAX_KEY_LEN + MAX_KEY_PREFIX_ROOM;

const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE_RANGE: u8 = 2;
const HEADER_LEN: usize = 12;

/// One operation in a batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// Delete every key in `[start, end)`.
    DeleteRange {
        /// First key deleted.
        start: &'a [u8],
        /// First key kept after the range.
        end: &'a [u8],
    },
}

/// An atomic group of writes. Later operations on the same key win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: u32,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks a user's key against the limit every layer holds keys to ([`MAX_KEY_LEN`]).
pub fn check_key(key: &[u8]) -> Result<()> {
    check_key_len(key, MAX_KEY_LEN)
}

/// Checks a key against a limit of `max` bytes.
pub(crate) fn check_key_len(key: &[u8], max: usize) -> Result<()> {
    if key.is_empty() || key.len() > max {
        return Err(Error::InvalidKey {
            len: key.len(),
            max,
        });
    }
    Ok(())
}

/// Checks a value against the engine's limits.
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch {
            rep: vec![0; HEADER_LEN],
            count: 0,
        }
    }

    /// Adds a put. Fails if the value is over its limit or the key longer than any store
    /// accepts; [`Db::write`](crate::Db::write) then holds the keys to the store's own limit
    /// ([`Options::max_key_len`](crate::Options::max_key_len)).
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<&mut Self> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key_len(key, MAX_STORED_KEY_LEN)?;
        check_value(value)?;
        self.rep.push(TAG_PUT);
        put_bytes(&mut self.rep, key);
        put_bytes(&mut self.rep, value);
        self.count += 1;
        Ok(self)
    }

    /// Adds a delete. Fails if the key is longer than any store accepts (see
    /// [`WriteBatch::put`]).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<&mut Self> {
        let key = key.as_ref();
        check_key_len(key, MAX_STORED_KEY_LEN)?;
        self.rep.push(TAG_DELETE);
        put_bytes(&mut self.rep, key);
        self.count += 1;
        Ok(self)
    }

    /// Adds a deletion of every key in `[start, end)`. An empty range (`start >= end`) is refused.
    pub fn delete_range(
        &mut self,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
    ) -> Result<&mut Self> {
        let (start, end) = (start.as_ref(), end.as_ref());
        check_key_len(start, MAX_STORED_KEY_LEN)?;
        check_key_len(end, MAX_STORED_KEY_LEN)?;
        if start >= end {
            return Err(Error::InvalidArgument(
                "delete_range needs start < end".into(),
            ));
        }
        self.rep.push(TAG_DELETE_RANGE);
        put_bytes(&mut self.rep, start);
        put_bytes(&mut self.rep, end);
        self.count += 1;
        Ok(self)
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the encoded batch in bytes.
    pub fn encoded_len(&self) -> usize {
        self.rep.len()
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        self.rep.truncate(HEADER_LEN);
        self.count = 0;
    }

    /// The operations in order.
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            reader: Reader::new(self.rep.get(HEADER_LEN..).unwrap_or_default()),
        }
    }

    /// Checks every key of the batch against a limit of `max` bytes.
    pub(crate) fn check_key_lengths(&self, max: usize) -> Result<()> {
        for op in self.iter() {
            match op.map_err(|()| Error::InvalidArgument("damaged write batch".into()))? {
                BatchOp::Put { key, .. } | BatchOp::Delete { key } => check_key_len(key, max)?,
                BatchOp::DeleteRange { start, end } => {
                    check_key_len(start, max)?;
                    check_key_len(end, max)?;
                }
            }
        }
        Ok(())
    }

    /// Stamps the batch with its first sequence number and returns the WAL record.
    pub(crate) fn encode_with_seq(&mut self, seq: SeqNo) -> &[u8] {
        let mut header = Vec::with_capacity(HEADER_LEN);
        put_u64(&mut header, seq);
        put_u32(&mut header, self.count);
        self.rep.splice(0..HEADER_LEN, header);
        &self.rep
    }

    /// Decodes a WAL record into its first sequence number and batch, validating every entry.
    ///
    /// A batch whose sequence numbers (`seq` up to `seq + count - 1`) do not all fit in
    /// [`MAX_SEQNO`] is refused: no writer produces one, and recovery would overflow while
    /// numbering its operations (found while writing the `batch` fuzz target).
    pub fn decode(record: &[u8]) -> Option<(SeqNo, WriteBatch)> {
        let mut r = Reader::new(record);
        let seq = r.u64()?;
        let count = r.u32()?;
        if seq.checked_add(u64::from(count))? > MAX_SEQNO + 1 {
            return None;
        }
        let batch = WriteBatch {
            rep: record.to_vec(),
            count,
        };
        let mut n = 0u32;
        for op in batch.iter() {
            // Hold decoded batches to the limits the builder enforces, so a damaged record
            // cannot smuggle an empty key, an oversized value or an inverted range into the
            // memtable.
            let key_ok = |k| check_key_len(k, MAX_STORED_KEY_LEN).is_ok();
            let valid = match op.ok()? {
                BatchOp::Put { key, value } => key_ok(key) && check_value(value).is_ok(),
                BatchOp::Delete { key } => key_ok(key),
                BatchOp::DeleteRange { start, end } => key_ok(start) && key_ok(end) && start < end,
            };
            if !valid {
                return None;
            }
            n += 1;
        }
        (n == count).then_some((seq, batch))
    }
}

/// Iterator over a batch's operations; yields an error entry if the encoding is damaged.
#[derive(Debug)]
pub struct BatchIter<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = std::result::Result<BatchOp<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.is_empty() {
            return None;
        }
        let op = (|| {
            let tag = self.reader.u8()?;
            let a = self.reader.bytes()?;
            match tag {
                TAG_PUT => Some(BatchOp::Put {
                    key: a,
                    value: self.reader.bytes()?,
                }),
                TAG_DELETE => Some(BatchOp::Delete { key: a }),
                TAG_DELETE_RANGE => Some(BatchOp::DeleteRange {
                    start: a,
                    end: self.reader.bytes()?,
                }),
                _ => None,
            }
        })();
        match op {
            Some(op) => Some(Ok(op)),
            None => {
                // Stop after reporting the damage once.
                self.reader = Reader::new(&[]);
                Some(Err(()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut b = WriteBatch::new();
        b.put("a", "1").unwrap().delete("b").unwrap();
        b.delete_range("c", "d").unwrap();
        let rec = b.encode_with_seq(77).to_vec();
        let (seq, d) = WriteBatch::decode(&rec).unwrap();
        assert_eq!(seq, 77);
        let ops: Vec<_> = d.iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            ops,
            vec![
                BatchOp::Put {
                    key: b"a",
                    value: b"1"
                },
                BatchOp::Delete { key: b"b" },
                BatchOp::DeleteRange {
                    start: b"c",
                    end: b"d"
                },
            ]
        );
        for cut in 0..rec.len() {
            assert!(WriteBatch::decode(&rec[..cut]).is_none());
        }
    }

    #[test]
    fn sequence_numbers_past_the_limit_are_refused() {
        // Regression: a checksummed WAL record holding a batch numbered from u64::MAX made
        // recovery panic on `seq += 1` (and, in release builds, wrap to sequence 0).
        let mut b = WriteBatch::new();
        b.put("a", "1").unwrap().put("b", "2").unwrap();
        for (seq, ok) in [
            (MAX_SEQNO - 1, true),
            (MAX_SEQNO, false),
            (MAX_SEQNO + 1, false),
            (u64::MAX, false),
        ] {
            let rec = b.encode_with_seq(seq).to_vec();
            assert_eq!(WriteBatch::decode(&rec).is_some(), ok, "seq {seq}");
        }
        let mut empty = WriteBatch::new();
        assert!(WriteBatch::decode(empty.encode_with_seq(MAX_SEQNO)).is_some());
        assert!(WriteBatch::decode(empty.encode_with_seq(u64::MAX)).is_none());
    }

    #[test]
    fn decoded_batches_obey_the_builder_limits() {
        let encode = |ops: &[(u8, &[u8], &[u8])]| {
            let mut rec = Vec::new();
            put_u64(&mut rec, 1);
            put_u32(&mut rec, ops.len() as u32);
            for (tag, a, b) in ops {
                rec.push(*tag);
                put_bytes(&mut rec, a);
                if *tag != TAG_DELETE {
                    put_bytes(&mut rec, b);
                }
            }
            rec
        };
        assert!(WriteBatch::decode(&encode(&[(TAG_PUT, b"k", b"v")])).is_some());
        assert!(WriteBatch::decode(&encode(&[(TAG_PUT, b"", b"v")])).is_none());
        assert!(WriteBatch::decode(&encode(&[(TAG_DELETE, b"", b"")])).is_none());
        assert!(WriteBatch::decode(&encode(&[(TAG_DELETE_RANGE, b"b", b"a")])).is_none());
        assert!(WriteBatch::decode(&encode(&[(TAG_DELETE_RANGE, b"a", b"a")])).is_none());
    }

    #[test]
    fn limits_are_enforced() {
        let mut b = WriteBatch::new();
        assert!(matches!(b.put("", "v"), Err(Error::InvalidKey { .. })));
        assert!(b.put(vec![0u8; MAX_STORED_KEY_LEN + 1], "v").is_err());
        assert!(b.put(vec![0u8; MAX_KEY_LEN], "v").is_ok());
        assert!(check_key(&[0u8; MAX_KEY_LEN + 1]).is_err());
        assert!(check_key(&[0u8; MAX_KEY_LEN]).is_ok());
        assert!(matches!(
            b.put("k", vec![0u8; MAX_VALUE_LEN + 1]),
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(b.delete_range("b", "a").is_err());
        assert_eq!(b.len(), 1);
    }
}
