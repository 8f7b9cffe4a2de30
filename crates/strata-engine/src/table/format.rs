//! The table file's framing: block handles, the trailer every block carries (compression type
//! and CRC32C) and the fixed-size footer at the end of the file.
//!
//! # File layout
//!
//! ```text
//! [data block 0][trailer] ... [data block n][trailer]
//! [filter block][trailer]        (absent when filters are disabled)
//! [range-del block][trailer]
//! [properties block][trailer]
//! [index block][trailer]
//! [footer: 4 handles as (u64 offset, u64 size) | u32 crc | u32 version | u64 magic]
//! ```
//!
//! A trailer is one compression-type byte followed by the CRC32C of the block contents and that
//! byte. The footer's CRC covers its handles and version; the magic number comes last so that a
//! truncated or foreign file is recognised before anything else is believed.

use std::path::Path;

use crate::coding::{Reader, put_bytes, put_u32, put_u64, put_varint};
use crate::error::{Error, Result};
use crate::fs::RandomAccessFile;
use crate::range_del::RangeTombstone;

/// The magic number closing every table file (`"STRATAT1"` read as little-endian bytes).
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"STRATAT1");

/// The table format version this build writes and the highest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes in a block trailer: compression type and CRC32C.
pub const BLOCK_TRAILER_LEN: usize = 5;

/// Bytes in the footer.
pub const FOOTER_LEN: usize = 4 * 16 + 4 + 4 + 8;

/// How a block's contents are compressed on disk. Compressed contents start with the
/// uncompressed length (`u32`, little-endian), so a reader can refuse an absurd size before
/// allocating for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum CompressionType {
    /// Stored as is.
    #[default]
    None = 0,
    /// LZ4 block format: fast, modest ratio.
    Lz4 = 1,
    /// Zstandard at level 3: slower, better ratio.
    Zstd = 2,
}

impl CompressionType {
    /// Decodes a trailer's type byte, or `None` for a type this build does not know.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(CompressionType::None),
            1 => Some(CompressionType::Lz4),
            2 => Some(CompressionType::Zstd),
            _ => None,
        }
    }
}

/// Largest uncompressed block a reader accepts: a block holds at most one entry past its
/// target size, and an entry is at most a 64 KiB key and a 16 MiB value.
pub const MAX_BLOCK_LEN: usize = 32 << 20;

const ZSTD_LEVEL: i32 = 3;

/// Compresses `contents` with `kind`, or returns `None` when it would not save at least an
/// eighth of the size (then the block is better stored as is).
pub fn compress_block(contents: &[u8], kind: CompressionType) -> Option<Vec<u8>> {
    let len = u32::try_from(contents.len()).ok()?;
    let mut out = len.to_le_bytes().to_vec();
    match kind {
        CompressionType::None => return None,
        CompressionType::Lz4 => out.extend_from_slice(&lz4_flex::block::compress(contents)),
        CompressionType::Zstd => {
            out.extend_from_slice(&zstd::bulk::compress(contents, ZSTD_LEVEL).ok()?)
        }
    }
    (out.len() < contents.len() - contents.len() / 8).then_some(out)
}

/// Reverses [`compress_block`]; any damage is a corruption error for `path` at `offset`.
pub fn decompress_block(
    stored: &[u8],
    kind: CompressionType,
    path: &Path,
    offset: u64,
) -> Result<Vec<u8>> {
    let corrupt = |reason: &str| Error::corruption(path, offset, reason);
    let mut r = Reader::new(stored);
    let len = r
        .u32()
        .ok_or_else(|| corrupt("compressed block shorter than its length"))? as usize;
    if len > MAX_BLOCK_LEN {
        return Err(corrupt("compressed block claims an impossible size"));
    }
    let body = r.take(r.remaining()).unwrap_or_default();
    let out = match kind {
        CompressionType::None => body.to_vec(),
        CompressionType::Lz4 => lz4_flex::block::decompress(body, len)
            .map_err(|_| corrupt("LZ4 block does not decompress"))?,
        CompressionType::Zstd => zstd::bulk::decompress(body, len)
            .map_err(|_| corrupt("Zstd block does not decompress"))?,
    };
    if out.len() != len {
        return Err(corrupt("decompressed block has the wrong size"));
    }
    Ok(out)
}

/// Where a block sits in the file: its offset and the size of its contents (trailer excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Length of the block's contents, not counting the trailer.
    pub size: u64,
}

impl BlockHandle {
    /// Appends the handle as two varints (the form used in index entries).
    pub fn encode_to(&self, buf: &mut Vec<u8>) {
        put_varint(buf, self.offset);
        put_varint(buf, self.size);
    }

    /// The handle as two varints.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(20);
        self.encode_to(&mut v);
        v
    }

    /// Decodes a handle written by [`BlockHandle::encode`]; the bytes must hold nothing else.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let h = BlockHandle {
            offset: r.varint()?,
            size: r.varint()?,
        };
        r.is_empty().then_some(h)
    }

    /// The offset just past the block's trailer, or `None` on overflow.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }
}

/// Builds the trailer for `contents` stored with `compression`.
pub fn block_trailer(contents: &[u8], compression: CompressionType) -> [u8; BLOCK_TRAILER_LEN] {
    let t = compression as u8;
    let crc = crc32c::crc32c_append(crc32c::crc32c(contents), &[t]);
    let c = crc.to_le_bytes();
    [t, c[0], c[1], c[2], c[3]]
}

/// The fixed-size record at the end of a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footer {
    /// The index block: one entry per data block.
    pub index: BlockHandle,
    /// The bloom filter block; size 0 when the table has no filter.
    pub filter: BlockHandle,
    /// The table's properties.
    pub properties: BlockHandle,
    /// The range tombstones.
    pub range_del: BlockHandle,
    /// The format version the file was written with.
    pub version: u32,
}

impl Footer {
    /// Encodes the footer into exactly [`FOOTER_LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(FOOTER_LEN);
        for h in [self.index, self.filter, self.properties, self.range_del] {
            put_u64(&mut buf, h.offset);
            put_u64(&mut buf, h.size);
        }
        let mut covered = buf.clone();
        put_u32(&mut covered, self.version);
        put_u32(&mut buf, crc32c::crc32c(&covered));
        put_u32(&mut buf, self.version);
        put_u64(&mut buf, TABLE_MAGIC);
        buf
    }

    /// Decodes a footer read from `offset` of `file`. A wrong length or magic number is
    /// corruption; a version above [`FORMAT_VERSION`] is [`Error::UnsupportedVersion`]; a bad
    /// CRC is [`Error::ChecksumMismatch`].
    pub fn decode(b: &[u8], file: &Path, offset: u64) -> Result<Footer> {
        let corrupt = |reason: &str| Error::corruption(file, offset, reason);
        if b.len() != FOOTER_LEN {
            return Err(corrupt("footer has the wrong length"));
        }
        let mut r = Reader::new(b);
        let mut handles = [BlockHandle::default(); 4];
        for h in &mut handles {
            let (Some(o), Some(s)) = (r.u64(), r.u64()) else {
                return Err(corrupt("footer too short"));
            };
            *h = BlockHandle { offset: o, size: s };
        }
        let (Some(crc), Some(version), Some(magic)) = (r.u32(), r.u32(), r.u64()) else {
            return Err(corrupt("footer too short"));
        };
        if magic != TABLE_MAGIC {
            return Err(corrupt("bad magic number: not a Strata table"));
        }
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: file.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(corrupt("format version 0 does not exist"));
        }
        let mut covered = b.get(..64).unwrap_or_default().to_vec();
        put_u32(&mut covered, version);
        let got = crc32c::crc32c(&covered);
        if got != crc {
            return Err(Error::ChecksumMismatch {
                file: file.to_path_buf(),
                offset,
                expected: crc,
                got,
            });
        }
        let [index, filter, properties, range_del] = handles;
        Ok(Footer {
            index,
            filter,
            properties,
            range_del,
            version,
        })
    }
}

/// Reads the block at `handle`, checks that it ends at or before `limit`, verifies its trailer
/// and returns its contents.
pub fn read_block(
    file: &dyn RandomAccessFile,
    path: &Path,
    handle: BlockHandle,
    limit: u64,
) -> Result<Vec<u8>> {
    let corrupt = |reason: &str| Error::corruption(path, handle.offset, reason);
    match handle.end_with_trailer() {
        Some(end) if end <= limit => {}
        _ => {
            return Err(corrupt(
                "block handle points past the end of the block area",
            ));
        }
    }
    let size = usize::try_from(handle.size).map_err(|_| corrupt("block too large"))?;
    let len = size
        .checked_add(BLOCK_TRAILER_LEN)
        .ok_or_else(|| corrupt("block too large"))?;
    let mut buf = file.read_at(handle.offset, len)?;
    let Some(trailer) = buf.get(size..) else {
        return Err(corrupt("short read"));
    };
    let mut r = Reader::new(trailer);
    let (Some(kind), Some(expected)) = (r.u8(), r.u32()) else {
        return Err(corrupt("short read"));
    };
    let contents = buf.get(..size).unwrap_or_default();
    let got = crc32c::crc32c_append(crc32c::crc32c(contents), &[kind]);
    if got != expected {
        return Err(Error::ChecksumMismatch {
            file: path.to_path_buf(),
            offset: handle.offset,
            expected,
            got,
        });
    }
    match CompressionType::from_u8(kind) {
        Some(CompressionType::None) => {
            buf.truncate(size);
            Ok(buf)
        }
        Some(k) => decompress_block(contents, k, path, handle.offset),
        None => Err(corrupt("unknown compression type")),
    }
}

/// Encodes the range-del block: a varint count, then each tombstone as start and end (varint
/// length and bytes) and a varint sequence number.
pub fn encode_range_tombstones(ts: &[RangeTombstone]) -> Vec<u8> {
    let mut buf = Vec::new();
    put_varint(&mut buf, ts.len() as u64);
    for t in ts {
        put_bytes(&mut buf, &t.start);
        put_bytes(&mut buf, &t.end);
        put_varint(&mut buf, t.seq);
    }
    buf
}

/// Decodes a range-del block; `None` if it is malformed or has bytes left over.
pub fn decode_range_tombstones(b: &[u8]) -> Option<Vec<RangeTombstone>> {
    let mut r = Reader::new(b);
    let n = r.varint()?;
    // The count comes from disk: grow as entries decode rather than trusting it for capacity.
    let mut ts = Vec::new();
    for _ in 0..n {
        ts.push(RangeTombstone {
            start: r.bytes()?.to_vec(),
            end: r.bytes()?.to_vec(),
            seq: r.varint()?,
        });
    }
    r.is_empty().then_some(ts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn compressed_blocks_round_trip_and_damage_is_an_error() {
        let contents: Vec<u8> = (0..4096u32).flat_map(|i| (i % 17).to_le_bytes()).collect();
        let path = std::path::Path::new("t.sst");
        for kind in [CompressionType::Lz4, CompressionType::Zstd] {
            let stored = compress_block(&contents, kind).unwrap();
            assert!(
                stored.len() < contents.len() / 2,
                "{kind:?} compresses repetitive data"
            );
            assert_eq!(decompress_block(&stored, kind, path, 0).unwrap(), contents);
            for cut in [0, 3, 4, stored.len() / 2] {
                assert!(decompress_block(&stored[..cut], kind, path, 0).is_err());
            }
            let mut huge = stored.clone();
            huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(
                decompress_block(&huge, kind, path, 0).is_err(),
                "no giant allocation"
            );
            let mut wrong = stored.clone();
            wrong[..4].copy_from_slice(&7u32.to_le_bytes());
            assert!(decompress_block(&wrong, kind, path, 0).is_err());
        }
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        assert_eq!(
            compress_block(&random, CompressionType::Lz4),
            None,
            "incompressible: stored as is"
        );
    }

    use super::*;

    fn footer() -> Footer {
        Footer {
            index: BlockHandle { offset: 1, size: 2 },
            filter: BlockHandle { offset: 3, size: 4 },
            properties: BlockHandle {
                offset: 5,
                size: u64::MAX,
            },
            range_del: BlockHandle { offset: 7, size: 8 },
            version: FORMAT_VERSION,
        }
    }

    #[test]
    fn handle_round_trip() {
        let h = BlockHandle {
            offset: 123_456,
            size: 4096,
        };
        assert_eq!(BlockHandle::decode(&h.encode()), Some(h));
        let mut long = h.encode();
        long.push(0);
        assert_eq!(BlockHandle::decode(&long), None);
        assert_eq!(BlockHandle::decode(&h.encode()[..2]), None);
    }

    #[test]
    fn range_tombstones_round_trip() {
        let ts = vec![
            RangeTombstone {
                start: b"a".to_vec(),
                end: b"c".to_vec(),
                seq: 7,
            },
            RangeTombstone {
                start: b"k".to_vec(),
                end: b"kz".to_vec(),
                seq: 1 << 40,
            },
        ];
        let enc = encode_range_tombstones(&ts);
        assert_eq!(decode_range_tombstones(&enc), Some(ts));
        for cut in 0..enc.len() {
            assert_eq!(decode_range_tombstones(&enc[..cut]), None);
        }
        assert_eq!(
            decode_range_tombstones(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            None
        );
        assert_eq!(
            decode_range_tombstones(&encode_range_tombstones(&[])),
            Some(vec![])
        );
    }

    #[test]
    fn footer_round_trip() {
        let enc = footer().encode();
        assert_eq!(enc.len(), FOOTER_LEN);
        assert_eq!(Footer::decode(&enc, Path::new("t"), 0).unwrap(), footer());
    }

    #[test]
    fn every_footer_bit_flip_is_an_error() {
        let enc = footer().encode();
        for bit in 0..enc.len() * 8 {
            let mut bad = enc.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = Footer::decode(&bad, Path::new("t"), 0).unwrap_err();
            assert!(
                err.is_corruption() || matches!(err, Error::UnsupportedVersion { .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn newer_version_is_unsupported_and_bad_magic_is_corruption() {
        let mut f = footer();
        f.version = FORMAT_VERSION + 1;
        let err = Footer::decode(&f.encode(), Path::new("t"), 0).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion { found: 2, .. }),
            "{err}"
        );
        let mut enc = footer().encode();
        let n = enc.len();
        enc[n - 1] ^= 0xff;
        let err = Footer::decode(&enc, Path::new("t"), 0).unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
    }
}
