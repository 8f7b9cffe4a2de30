//! Helpers shared by the fuzz targets: a cursor over the fuzzer's bytes, a reference encoder for
//! write batches, builders of valid logs, blocks and tables from fuzzer-chosen entries, and a
//! pass that recomputes a table's checksums so that mutations reach the decoders behind them.
//!
//! `cargo test` here checks that the seed inputs decode; with `STRATA_FUZZ_WRITE_SEEDS=1` it also
//! writes them to `corpus/<target>/seed-*`.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use strata_engine::batch::BatchOp;
use strata_engine::fs::{FaultFs, FileSystem};
use strata_engine::iter::InternalIterator;
use strata_engine::key::{ValueKind, compare_internal, make_internal_key, parse_internal_key};
use strata_engine::range_del::RangeTombstone;
use strata_engine::table::block::{Block, BlockBuilder};
use strata_engine::table::format::{
    BLOCK_TRAILER_LEN, BlockHandle, FOOTER_LEN, FORMAT_VERSION, TABLE_MAGIC,
};
use strata_engine::table::{Table, TableBuilder, TableOptions};

/// A cursor over fuzzer bytes that yields zeros once they run out, so structured inputs never
/// fail to parse.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Starts at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` next bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Appends a LEB128 varint (the encoding every Strata format uses).
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Encodes a WAL write-batch record independently of the engine, from the layout documented in
/// `strata_engine::batch`: `seq: u64 LE`, `count: u32 LE`, then per operation a tag byte
/// (0 delete, 1 put, 2 delete-range) and its length-prefixed byte strings.
pub fn encode_batch(seq: u64, ops: &[BatchOp<'_>]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        match *op {
            BatchOp::Delete { key } => {
                buf.push(0);
                put_bytes(&mut buf, key);
            }
            BatchOp::Put { key, value } => {
                buf.push(1);
                put_bytes(&mut buf, key);
                put_bytes(&mut buf, value);
            }
            BatchOp::DeleteRange { start, end } => {
                buf.push(2);
                put_bytes(&mut buf, start);
                put_bytes(&mut buf, end);
            }
        }
    }
    buf
}

/// Sorted, distinct internal-key entries (user keys 1..=16 bytes, values 0..=63 bytes) read from
/// the fuzzer's bytes. At most one entry per (user key, sequence number), so a point lookup at an
/// entry's sequence number has exactly one right answer.
pub fn entries(input: &mut Input<'_>, max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    while !input.is_empty() && out.len() < max {
        let klen = usize::from(input.u8() % 16) + 1;
        let mut user_key = input.take(klen).to_vec();
        if user_key.is_empty() {
            user_key.push(0);
        }
        let seq = u64::from(input.u8()) << (input.u8() % 48);
        let kind = if input.u8() % 4 == 0 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let vlen = usize::from(input.u8() % 64);
        let value = if kind == ValueKind::Delete {
            Vec::new()
        } else {
            input.take(vlen).to_vec()
        };
        out.push((make_internal_key(&user_key, seq, kind), value));
    }
    out.sort_by(|a, b| compare_internal(&a.0, &b.0));
    // Equal (user key, seq) pairs differ only in the kind: keep the first.
    out.dedup_by(|b, a| {
        let (a, b) = (parse_internal_key(&a.0), parse_internal_key(&b.0));
        a.map(|p| (p.user_key, p.seq)) == b.map(|p| (p.user_key, p.seq))
    });
    out
}

/// Builds a block holding `entries` (sorted) with a restart point every `restart_interval`.
pub fn build_block(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Vec<u8> {
    let mut b = BlockBuilder::new(restart_interval);
    for (k, v) in entries {
        b.add(k, v);
    }
    b.finish()
}

/// Builds a table file holding `entries` (sorted) and `tombstones` and returns its bytes.
pub fn build_table(
    entries: &[(Vec<u8>, Vec<u8>)],
    tombstones: &[RangeTombstone],
    opts: TableOptions,
) -> Vec<u8> {
    let fs = FaultFs::new();
    let path = Path::new("/t/000001.sst");
    fs.create_dir_all(Path::new("/t")).expect("in-memory mkdir");
    let mut builder = TableBuilder::new(fs.create(path).expect("in-memory create"), opts);
    for (k, v) in entries {
        builder
            .add(k, v)
            .expect("entries are sorted and within limits");
    }
    for t in tombstones {
        builder.add_range_tombstone(t);
    }
    builder.finish().expect("in-memory finish");
    fs.read_all(path).expect("in-memory read")
}

/// Opens `bytes` as a table through a [`FaultFs`], as the engine opens table files.
pub fn open_table(bytes: &[u8]) -> strata_engine::Result<Arc<Table>> {
    let fs = FaultFs::new();
    let path = Path::new("/t/000001.sst");
    fs.create_dir_all(Path::new("/t"))?;
    let mut f = fs.create(path)?;
    f.append(bytes)?;
    f.sync()?;
    drop(f);
    Ok(Arc::new(Table::open(fs.open_random(path)?, path)?))
}

/// Rewrites the footer's magic, version and checksum and the trailer checksum of every block the
/// footer and index point at (keeping each trailer's compression byte), so that a mutated table
/// gets past the checksums to the block decoders. Best effort: handles that point outside the
/// file, or at overlapping regions, are left as they are.
pub fn fix_table_checksums(bytes: &mut [u8]) {
    let Some(blocks_end) = bytes.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let footer = &mut bytes[blocks_end..];
    footer[68..72].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    footer[72..80].copy_from_slice(&TABLE_MAGIC.to_le_bytes());
    let mut covered = footer[..64].to_vec();
    covered.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    footer[64..68].copy_from_slice(&crc32c::crc32c(&covered).to_le_bytes());
    let handles: Vec<BlockHandle> = (0..4)
        .map(|i| BlockHandle {
            offset: u64::from_le_bytes(footer[i * 16..i * 16 + 8].try_into().unwrap_or_default()),
            size: u64::from_le_bytes(
                footer[i * 16 + 8..i * 16 + 16]
                    .try_into()
                    .unwrap_or_default(),
            ),
        })
        .collect();
    for &h in &handles {
        fix_block(bytes, h, blocks_end);
    }
    // The index is the first handle; its values are the handles of the data blocks.
    let Some(index) = block_contents(bytes, handles[0], blocks_end) else {
        return;
    };
    let Ok(block) = Block::new(index.to_vec(), Arc::from(Path::new("index")), 0) else {
        return;
    };
    let mut it = block.iter();
    let mut n = 0;
    let mut ok = it.seek_to_first().is_ok();
    while ok && it.valid() && n < 4096 {
        if let Some(h) = BlockHandle::decode(it.value()) {
            fix_block(bytes, h, blocks_end);
        }
        n += 1;
        ok = it.next().is_ok();
    }
}

fn block_contents(bytes: &[u8], h: BlockHandle, limit: usize) -> Option<&[u8]> {
    let start = usize::try_from(h.offset).ok()?;
    let end = start.checked_add(usize::try_from(h.size).ok()?)?;
    if end.checked_add(BLOCK_TRAILER_LEN)? > limit {
        return None;
    }
    bytes.get(start..end)
}

fn fix_block(bytes: &mut [u8], h: BlockHandle, limit: usize) {
    let Some(contents) = block_contents(bytes, h, limit) else {
        return;
    };
    let end = h.offset as usize + contents.len();
    let kind = bytes[end];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[h.offset as usize..end]), &[kind]);
    bytes[end + 1..end + 5].copy_from_slice(&crc.to_le_bytes());
}

/// Collects up to `max` entries of an iterator from its first entry. Stops at the first error,
/// after checking that the error left the iterator invalid, as the iterator contract says.
pub fn collect_entries(it: &mut dyn InternalIterator, max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut step = it.seek_to_first();
    while step.is_ok() && it.valid() && out.len() < max {
        out.push((it.key().to_vec(), it.value().to_vec()));
        step = it.next();
    }
    if step.is_err() {
        assert!(!it.valid(), "iterator still valid after an error");
    }
    out
}

/// Seeks `it` to `target` and checks that a failed seek leaves the cursor invalid and, when
/// `ordered` (a single block, where it holds whatever the bytes are, or a table known to be
/// sorted), that a successful one lands on a key at or after the target.
pub fn checked_seek(it: &mut dyn InternalIterator, target: &[u8], ordered: bool) -> bool {
    match it.seek(target) {
        Ok(()) => {
            if ordered && it.valid() {
                assert_ne!(
                    compare_internal(it.key(), target),
                    Ordering::Less,
                    "seek landed before its target"
                );
            }
            it.valid()
        }
        Err(_) => {
            assert!(!it.valid(), "iterator still valid after a failed seek");
            false
        }
    }
}

#[cfg(test)]
mod seeds;
