//! The byte format of a partition snapshot: the partition's user keys and values in key order.
//!
//! ```text
//! magic "SSNP" | version u8 | { key_len u32 BE | key | value_len u32 BE | value }* |
//! pair count u64 BE | CRC32C of everything before it u32 BE
//! ```
//!
//! The decoder checks every length against the bytes left and the trailer's count and checksum,
//! so a damaged snapshot is refused before it replaces a partition's data.

/// The first bytes of every snapshot.
const MAGIC: &[u8; 4] = b"SSNP";
/// The format version written.
const VERSION: u8 = 1;
/// Bytes of the trailer: count and checksum.
const TRAILER: usize = 12;

/// Why a snapshot could not be decoded.
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
    /// A length runs past the end, or the pair count disagrees with the trailer.
    #[error("snapshot is truncated or malformed at byte {offset}")]
    Malformed {
        /// Where decoding stopped.
        offset: usize,
    },
}

/// A decoded key and value, borrowed from the snapshot bytes.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// Builds a snapshot from pairs pushed in key order.
#[derive(Debug)]
pub struct Encoder {
    buf: Vec<u8>,
    count: u64,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// An empty snapshot.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        Encoder { buf, count: 0 }
    }

    /// Appends a pair. Keys and values are bounded by the engine's limits, far below 4 GiB.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        for part in [key, value] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            self.buf.extend_from_slice(&len.to_be_bytes());
            self.buf.extend_from_slice(part);
        }
        self.count += 1;
    }

    /// The encoded snapshot.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        self.buf
    }
}

/// Decodes a snapshot into its pairs (borrowing from `data`).
pub fn decode(data: &[u8]) -> Result<Vec<Pair<'_>>, SnapshotFormatError> {
    if data.len() < MAGIC.len() + 1 + TRAILER
        || data.get(..4) != Some(&MAGIC[..])
        || data.get(4) != Some(&VERSION)
    {
        return Err(SnapshotFormatError::BadHeader);
    }
    let body_end = data.len() - 4;
    let (body, crc_bytes) = data.split_at(body_end);
    let stored = u32::from_be_bytes(
        crc_bytes
            .try_into()
            .map_err(|_| SnapshotFormatError::BadHeader)?,
    );
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(SnapshotFormatError::ChecksumMismatch { stored, computed });
    }
    let pairs_end = body.len() - 8;
    let count = body
        .get(pairs_end..)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(SnapshotFormatError::BadHeader)?;
    let mut pos = 5;
    let mut pairs = Vec::new();
    let take = |pos: &mut usize| -> Result<&[u8], SnapshotFormatError> {
        let malformed = SnapshotFormatError::Malformed { offset: *pos };
        let len_bytes = body.get(*pos..*pos + 4).ok_or(malformed.clone())?;
        let len = u32::from_be_bytes(len_bytes.try_into().map_err(|_| malformed.clone())?) as usize;
        let start = *pos + 4;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= pairs_end)
            .ok_or(malformed)?;
        *pos = end;
        body.get(start..end)
            .ok_or(SnapshotFormatError::Malformed { offset: start })
    };
    while pos < pairs_end {
        let k = take(&mut pos)?;
        let v = take(&mut pos)?;
        pairs.push((k, v));
    }
    if pairs.len() as u64 != count {
        return Err(SnapshotFormatError::Malformed { offset: pos });
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut e = Encoder::new();
        e.push(b"a", b"1");
        e.push(b"bb", b"");
        e.push(b"c", &[7u8; 300]);
        e.finish()
    }

    #[test]
    fn round_trip() {
        let data = sample();
        let pairs = decode(&data).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0], (&b"a"[..], &b"1"[..]));
        assert_eq!(pairs[1], (&b"bb"[..], &b""[..]));
        assert_eq!(pairs[2].1.len(), 300);
        assert!(decode(&Encoder::new().finish()).unwrap().is_empty());
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
}
