//! The byte format of a partition snapshot: the partition's user keys and values in key order.
//!
//! ```text
//! magic "SSNP" | version u8 | { key_len u32 BE | key | value_len u32 BE | value }* |
//! pair count u64 BE | CRC32C of everything before it u32 BE
//! ```
//!
//! Both directions stream: the [`Encoder`] writes pairs as a scan yields them and
//! [`read_pairs`] hands them over one by one, so neither holds a whole partition. The reader
//! checks every length against the bytes left (and the engine's key and value limits) and, at
//! the end, the trailer's count and checksum; a caller keeps what it was handed only once the
//! whole snapshot checked out.

use std::io::{self, Read, Write};

use strata_engine::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// The first bytes of every snapshot.
const MAGIC: &[u8; 4] = b"SSNP";
/// The format version written.
const VERSION: u8 = 1;
/// Bytes of the header: magic and version.
const HEADER: u64 = 5;
/// Bytes of the trailer: count and checksum.
const TRAILER: u64 = 12;

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotFormatError {
    /// Too short, or a wrong magic number or version.
    #[error("not a partition snapshot (bad header or too short)")]
    BadHeader,
    /// The checksum in the trailer does not match the contents.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// The checksum in the trailer.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// A length runs past the end or over the engine's limits, or the pair count disagrees
    /// with the trailer.
    #[error("snapshot is truncated or malformed at byte {offset}")]
    Malformed {
        /// Where reading stopped.
        offset: u64,
    },
    /// The bytes could not be read.
    #[error("reading the snapshot failed: {0}")]
    Io(String),
}

/// Writes a snapshot to `W` from pairs pushed in key order.
#[derive(Debug)]
pub struct Encoder<W: Write> {
    out: W,
    crc: u32,
    count: u64,
}

impl<W: Write> Encoder<W> {
    /// Starts a snapshot in `out` (writes the header).
    pub fn new(out: W) -> io::Result<Self> {
        let mut e = Encoder {
            out,
            crc: 0,
            count: 0,
        };
        e.write(MAGIC)?;
        e.write(&[VERSION])?;
        Ok(e)
    }

    /// Appends a pair. Keys and values are bounded by the engine's limits, far below 4 GiB.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        for part in [key, value] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            self.write(&len.to_be_bytes())?;
            self.write(part)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer; returns the writer (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.write(&self.count.to_be_bytes())?;
        let crc = self.crc;
        self.out.write_all(&crc.to_be_bytes())?;
        Ok(self.out)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.out.write_all(bytes)
    }
}

/// Reads a snapshot of `len` bytes from `input`, handing each pair to `visit` in order, and
/// returns the number of pairs once the trailer's count and checksum agree with them. On an
/// error, the pairs handed over so far must be thrown away.
pub fn read_pairs<R: Read>(
    input: R,
    len: u64,
    visit: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<u64, SnapshotFormatError> {
    if len < HEADER + TRAILER {
        return Err(SnapshotFormatError::BadHeader);
    }
    let mut r = Checked {
        input,
        crc: 0,
        pos: 0,
    };
    let mut header = [0u8; HEADER as usize];
    r.read(&mut header)?;
    if header.get(..4) != Some(&MAGIC[..]) || header.get(4) != Some(&VERSION) {
        return Err(SnapshotFormatError::BadHeader);
    }
    let pairs_end = len - TRAILER;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut count = 0u64;
    while r.pos < pairs_end {
        r.read_part(&mut key, MAX_KEY_LEN, pairs_end)?;
        r.read_part(&mut value, MAX_VALUE_LEN, pairs_end)?;
        visit(&key, &value);
        count += 1;
    }
    let mut stored_count = [0u8; 8];
    r.read(&mut stored_count)?;
    let computed = r.crc;
    let mut stored = [0u8; 4];
    r.input
        .read_exact(&mut stored)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotFormatError::Malformed { offset: r.pos },
            _ => SnapshotFormatError::Io(e.to_string()),
        })?;
    let stored = u32::from_be_bytes(stored);
    if stored != computed {
        return Err(SnapshotFormatError::ChecksumMismatch { stored, computed });
    }
    if u64::from_be_bytes(stored_count) != count {
        return Err(SnapshotFormatError::Malformed { offset: r.pos });
    }
    Ok(count)
}

/// A reader that checksums what it reads and knows where it is.
struct Checked<R> {
    input: R,
    crc: u32,
    pos: u64,
}

impl<R: Read> Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<(), SnapshotFormatError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotFormatError::Malformed { offset: self.pos },
            _ => SnapshotFormatError::Io(e.to_string()),
        })?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads one length-prefixed part into `out`, refusing one longer than `max` or running
    /// past `end`.
    fn read_part(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
        end: u64,
    ) -> Result<(), SnapshotFormatError> {
        let malformed = SnapshotFormatError::Malformed { offset: self.pos };
        let mut len = [0u8; 4];
        self.read(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > max || self.pos + len as u64 > end {
            return Err(malformed);
        }
        out.resize(len, 0);
        self.read(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut e = Encoder::new(Vec::new()).unwrap();
        e.push(b"a", b"1").unwrap();
        e.push(b"bb", b"").unwrap();
        e.push(b"c", &[7u8; 300]).unwrap();
        e.finish().unwrap()
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode(data: &[u8]) -> Result<Pairs, SnapshotFormatError> {
        let mut pairs = Vec::new();
        read_pairs(data, data.len() as u64, &mut |k, v| {
            pairs.push((k.to_vec(), v.to_vec()));
        })?;
        Ok(pairs)
    }

    #[test]
    fn round_trip() {
        let data = sample();
        let pairs = decode(&data).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0], (b"a".to_vec(), b"1".to_vec()));
        assert_eq!(pairs[1], (b"bb".to_vec(), Vec::new()));
        assert_eq!(pairs[2].1.len(), 300);
        let empty = Encoder::new(Vec::new()).unwrap().finish().unwrap();
        assert!(decode(&empty).unwrap().is_empty());
    }

    #[test]
    fn every_bit_flip_and_truncation_is_refused() {
        let data = sample();
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} bit {bit} accepted");
            }
        }
        for len in 0..data.len() {
            assert!(
                decode(&data[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
    }

    #[test]
    fn a_length_over_the_limits_is_refused_before_anything_is_allocated() {
        let mut data = sample();
        // The first key's length: 4 GiB - 1, far past the bytes left and MAX_KEY_LEN.
        data[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode(&data),
            Err(SnapshotFormatError::Malformed { offset: 5 })
        );
    }

    #[test]
    fn a_length_that_disagrees_with_the_size_given_is_refused() {
        let data = sample();
        let mut visit = |_: &[u8], _: &[u8]| {};
        assert!(read_pairs(&data[..], data.len() as u64 + 1, &mut visit).is_err());
        assert!(read_pairs(&data[..], data.len() as u64 - 1, &mut visit).is_err());
    }
}
