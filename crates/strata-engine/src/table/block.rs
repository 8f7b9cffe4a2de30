//! Sorted key-value blocks, used for both data blocks and the index block: a [`BlockBuilder`]
//! that prefix-compresses keys and a [`BlockIter`] that seeks by binary search over restart
//! points.
//!
//! # Format
//!
//! ```text
//! entry*  restart: u32 LE * num_restarts  num_restarts: u32 LE
//! entry = shared: varint | unshared: varint | value_len: varint | key[shared..] | value
//! ```
//!
//! Each key stores only the bytes it does not share with the key before it. Every
//! `restart_interval` entries the sharing restarts (`shared = 0`) and the entry's offset is
//! recorded in the restart array, so a seek can binary-search the restart keys and then scan at
//! most one interval. Keys are encoded internal keys in
//! [`compare_internal`] order.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::coding::{Reader, get_u32, put_u32, put_varint};
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::compare_internal;

/// Builds one block. Keys must be added in increasing order; the builder does not check.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    since_restart: usize,
    restart_interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    /// An empty builder that starts a restart point every `restart_interval` entries (at least 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            since_restart: 0,
            restart_interval: restart_interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Appends an entry; `key` must sort after every key added before.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.since_restart >= self.restart_interval {
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        } else {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let unshared = key.get(shared..).unwrap_or_default();
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, unshared.len() as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(unshared);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.since_restart += 1;
        self.entries += 1;
    }

    /// The size the block would have if finished now.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Entries added since the last [`BlockBuilder::finish`].
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True if no entry was added since the last [`BlockBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Returns the finished block and resets the builder for the next one.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for &r in &self.restarts {
            put_u32(&mut out, r);
        }
        put_u32(&mut out, self.restarts.len() as u32);
        self.restarts = vec![0];
        self.since_restart = 0;
        self.last_key.clear();
        self.entries = 0;
        out
    }
}

/// A decoded, immutable block whose restart array has been checked; cheap to clone.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    restarts_offset: usize,
    num_restarts: usize,
    file: Arc<Path>,
    offset: u64,
}

impl Block {
    /// Wraps block contents read from `offset` of `file` (both used only in error messages).
    pub fn new(contents: impl Into<Bytes>, file: Arc<Path>, offset: u64) -> Result<Block> {
        let data: Bytes = contents.into();
        let corrupt = |reason: &str| Error::corruption(&*file, offset, reason);
        let tail = data
            .len()
            .checked_sub(4)
            .ok_or_else(|| corrupt("block shorter than its restart count"))?;
        let num_restarts = get_u32(&data, tail)
            .ok_or_else(|| corrupt("block shorter than its restart count"))?
            as usize;
        let restarts_offset = num_restarts
            .checked_mul(4)
            .and_then(|n| tail.checked_sub(n))
            .ok_or_else(|| corrupt("restart array larger than the block"))?;
        if num_restarts == 0 && restarts_offset != 0 {
            return Err(corrupt("non-empty block without restart points"));
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts,
            file,
            offset,
        })
    }

    /// The size of the block's contents in bytes.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// The offset in its file the block was read from.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// An iterator over the block, positioned nowhere until a seek.
    pub fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            key: Vec::new(),
            value: (0, 0),
            next: 0,
            valid: false,
        }
    }

    fn corrupt(&self, reason: &str) -> Error {
        Error::corruption(&*self.file, self.offset, reason)
    }

    fn restart_point(&self, i: usize) -> Result<usize> {
        let at = i
            .checked_mul(4)
            .and_then(|n| n.checked_add(self.restarts_offset));
        match at.and_then(|at| get_u32(&self.data, at)) {
            Some(p) if (p as usize) <= self.restarts_offset => Ok(p as usize),
            _ => Err(self.corrupt("restart point out of range")),
        }
    }

    /// Decodes the entry at `off`.
    fn entry_at(&self, off: usize) -> Result<Entry<'_>> {
        let region = self
            .data
            .get(off..self.restarts_offset)
            .ok_or_else(|| self.corrupt("entry offset out of range"))?;
        let mut r = Reader::new(region);
        let bad = || self.corrupt("truncated or malformed block entry");
        let shared = r.varint_usize().ok_or_else(bad)?;
        let unshared_len = r.varint_usize().ok_or_else(bad)?;
        let value_len = r.varint_usize().ok_or_else(bad)?;
        let unshared = r.take(unshared_len).ok_or_else(bad)?;
        let value_start = off + r.position();
        r.take(value_len).ok_or_else(bad)?;
        let next = off + r.position();
        Ok(Entry {
            shared,
            unshared,
            value: (value_start, next),
            next,
        })
    }

    /// The full key stored at restart point `i` (whose entry must share nothing).
    fn restart_key(&self, i: usize) -> Result<&[u8]> {
        let e = self.entry_at(self.restart_point(i)?)?;
        if e.shared != 0 {
            return Err(self.corrupt("restart entry shares a key prefix"));
        }
        Ok(e.unshared)
    }
}

/// One decoded entry of a block, borrowing its key suffix from the block.
struct Entry<'a> {
    /// Bytes shared with the previous key.
    shared: usize,
    /// The rest of the key.
    unshared: &'a [u8],
    /// The value's byte range in the block.
    value: (usize, usize),
    /// Offset of the following entry.
    next: usize,
}

/// A cursor over one [`Block`]; owns a handle to the block, so it outlives the reader.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    key: Vec<u8>,
    value: (usize, usize),
    next: usize,
    valid: bool,
}

impl BlockIter {
    /// Decodes the entry at `off` on top of the current key, or goes invalid at the end.
    fn decode_at(&mut self, off: usize) -> Result<()> {
        if off >= self.block.restarts_offset {
            self.valid = false;
            return Ok(());
        }
        let result = self.block.entry_at(off).and_then(|e| {
            if e.shared > self.key.len() {
                return Err(self
                    .block
                    .corrupt("entry shares more than the previous key"));
            }
            self.key.truncate(e.shared);
            self.key.extend_from_slice(e.unshared);
            self.value = e.value;
            self.next = e.next;
            Ok(())
        });
        self.valid = result.is_ok();
        result
    }

    fn seek_to_restart(&mut self, i: usize) -> Result<()> {
        self.key.clear();
        match self.block.restart_point(i) {
            Ok(off) => self.decode_at(off),
            Err(e) => {
                self.valid = false;
                Err(e)
            }
        }
    }

    /// Index of the last restart point whose key is below `target` (0 if none is).
    fn find_restart(&self, target: &[u8]) -> Result<usize> {
        let (mut lo, mut hi) = (0, self.block.num_restarts.saturating_sub(1));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if compare_internal(self.block.restart_key(mid)?, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
    }
}

impl InternalIterator for BlockIter {
    fn valid(&self) -> bool {
        self.valid
    }

    fn seek_to_first(&mut self) -> Result<()> {
        if self.block.num_restarts == 0 {
            self.valid = false;
            return Ok(());
        }
        self.seek_to_restart(0)
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        if self.block.num_restarts == 0 {
            self.valid = false;
            return Ok(());
        }
        let start = match self.find_restart(target) {
            Ok(i) => i,
            Err(e) => {
                self.valid = false;
                return Err(e);
            }
        };
        self.seek_to_restart(start)?;
        while self.valid && compare_internal(&self.key, target) == Ordering::Less {
            self.next()?;
        }
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        self.decode_at(self.next)
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> &[u8] {
        self.block
            .data
            .get(self.value.0..self.value.1)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ValueKind, make_internal_key, seek_key};

    fn entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        // Two versions per user key, newest first, so prefixes are shared across entries.
        (0..n)
            .map(|i| {
                let user = format!("user{:06}", i / 2);
                let seq = 1000 - (i % 2) as u64;
                let kind = if i % 7 == 0 {
                    ValueKind::Delete
                } else {
                    ValueKind::Put
                };
                let value = if kind == ValueKind::Put {
                    format!("value-{i}").into_bytes()
                } else {
                    Vec::new()
                };
                (make_internal_key(user.as_bytes(), seq, kind), value)
            })
            .collect()
    }

    fn build(entries: &[(Vec<u8>, Vec<u8>)], interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for (k, v) in entries {
            b.add(k, v);
        }
        assert_eq!(b.len(), entries.len());
        let est = b.estimated_size();
        let data = b.finish();
        assert_eq!(data.len(), est);
        assert!(b.is_empty());
        Block::new(data, Arc::from(Path::new("test")), 0).unwrap()
    }

    #[test]
    fn round_trip_scan_and_seek_every_key() {
        for interval in [1, 2, 16, 1000] {
            let es = entries(500);
            let block = build(&es, interval);
            let mut it = block.iter();
            it.seek_to_first().unwrap();
            for (k, v) in &es {
                assert!(it.valid());
                assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
                it.next().unwrap();
            }
            assert!(!it.valid());
            for (i, (k, v)) in es.iter().enumerate() {
                it.seek(k).unwrap();
                assert_eq!(
                    (it.key(), it.value()),
                    (&k[..], &v[..]),
                    "seek to entry {i}"
                );
            }
        }
    }

    #[test]
    fn seek_between_keys_lands_on_the_next_one() {
        let es = entries(300);
        let block = build(&es, 16);
        let mut it = block.iter();
        for i in 0..150 {
            let user = format!("user{i:06}");
            // Above every version: the newest entry of the user key.
            it.seek(&seek_key(user.as_bytes(), 5000)).unwrap();
            assert_eq!(it.key(), &es[2 * i].0[..]);
            // Between the two versions.
            it.seek(&seek_key(user.as_bytes(), 999)).unwrap();
            assert_eq!(it.key(), &es[2 * i + 1].0[..]);
            // Below every version: the next user key, or the end.
            it.seek(&seek_key(user.as_bytes(), 1)).unwrap();
            match es.get(2 * i + 2) {
                Some((k, _)) => assert_eq!(it.key(), &k[..]),
                None => assert!(!it.valid()),
            }
            // A user key between two stored ones.
            let mid = format!("user{i:06}a");
            it.seek(&seek_key(mid.as_bytes(), 5000)).unwrap();
            assert_eq!(it.valid(), es.get(2 * i + 2).is_some());
        }
        it.seek(&seek_key(b"a", 1)).unwrap();
        assert_eq!(it.key(), &es[0].0[..]);
        it.seek(&seek_key(b"z", 1)).unwrap();
        assert!(!it.valid());
    }

    #[test]
    fn empty_block_is_empty() {
        let block = build(&[], 16);
        let mut it = block.iter();
        it.seek_to_first().unwrap();
        assert!(!it.valid());
        it.seek(b"anything").unwrap();
        assert!(!it.valid());
    }

    #[test]
    fn damaged_blocks_give_errors_not_panics() {
        let es = entries(100);
        let mut b = BlockBuilder::new(16);
        for (k, v) in &es {
            b.add(k, v);
        }
        let data = b.finish();
        let file: Arc<Path> = Arc::from(Path::new("test"));
        for cut in 0..data.len() {
            if let Ok(block) = Block::new(data[..cut].to_vec(), file.clone(), 0) {
                exercise(&block);
            }
        }
        for i in 0..data.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[i] ^= x;
                if let Ok(block) = Block::new(bad, file.clone(), 0) {
                    exercise(&block);
                }
            }
        }
    }

    fn exercise(block: &Block) {
        let mut it = block.iter();
        let mut steps = 0;
        if it.seek_to_first().is_ok() {
            while it.valid() && steps < 1000 {
                let _ = (it.key(), it.value());
                if it.next().is_err() {
                    break;
                }
                steps += 1;
            }
        }
        let _ = it.seek(&seek_key(b"user000020", 3));
    }
}
