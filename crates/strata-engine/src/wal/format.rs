//! The on-disk format of a write-ahead log file: the file header, the record framing, and their
//! encoders and decoders.
//!
//! A log file is a file header followed by records laid end to end, with no block structure.
//! Every integer is little-endian.
//!
//! ```text
//! file        := file_header record* [zero-filled space]
//!
//! file_header (FILE_HEADER_LEN = 24 bytes)
//!   offset  size  field
//!        0     8  magic       b"STRATWAL"
//!        8     4  version     format version, FORMAT_VERSION (1) today
//!       12     8  log_number  the number of this log
//!       20     4  header_crc  CRC32C of bytes 0..20
//!
//! record
//!   offset  size  field
//!        0     4  crc         CRC32C of bytes 4..16 of the record header, then the payload
//!        4     4  length      payload length in bytes, at most MAX_RECORD_LEN
//!        8     8  log_number  must equal the file header's log number
//!       16     n  payload     opaque bytes (the caller's encoded write batch)
//! ```
//!
//! Why each field is there:
//!
//! - The file header's 24 bytes keep this layout in every future version; a later version may
//!   only add fields after them. So the header checksum is always verifiable, and a header that
//!   passes it but carries a version newer than [`FORMAT_VERSION`] is refused as
//!   [`Error::UnsupportedVersion`] rather than mistaken for corruption.
//! - Each record repeats the log number and its checksum covers it, so when log files are
//!   recycled a stale record left from an earlier log (another log number) is never taken as
//!   part of this one.
//! - A record header of sixteen zero bytes is never valid (its checksum would not match), so
//!   it marks the end of the log when space after the last record was preallocated or never
//!   written.
//! - The length is checked against [`MAX_RECORD_LEN`] and against the bytes left in the file
//!   before anything is read or allocated, so a damaged length can never cause a large
//!   allocation or a read past the end.

use std::path::Path;

use crate::coding::{Reader, get_u32, get_u64, put_u32, put_u64};
use crate::error::{Error, Result};

/// The first eight bytes of every log file.
pub const WAL_MAGIC: [u8; 8] = *b"STRATWAL";

/// The newest log format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Size of the file header in bytes.
pub const FILE_HEADER_LEN: usize = 24;

/// Size of each record's header in bytes.
pub const RECORD_HEADER_LEN: usize = 16;

/// The largest payload a single record may carry (1 GiB).
pub const MAX_RECORD_LEN: usize = 1 << 30;

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Format version the file was written with.
    pub version: u32,
    /// The log's number.
    pub log_number: u64,
}

/// Encodes the file header for log `log_number` in the current format version.
pub fn encode_file_header(log_number: u64) -> Vec<u8> {
    encode_file_header_with_version(log_number, FORMAT_VERSION)
}

/// Encodes a file header with an explicit version (tests use it to write a "future" file).
pub(crate) fn encode_file_header_with_version(log_number: u64, version: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(FILE_HEADER_LEN);
    buf.extend_from_slice(&WAL_MAGIC);
    put_u32(&mut buf, version);
    put_u64(&mut buf, log_number);
    let crc = crc32c::crc32c(&buf);
    put_u32(&mut buf, crc);
    buf
}

/// Decodes and checks the file header at the start of `bytes`; `file` names the log in errors.
pub fn decode_file_header(bytes: &[u8], file: &Path) -> Result<FileHeader> {
    let mut r = Reader::new(bytes);
    let (Some(magic), Some(version), Some(log_number), Some(stored_crc)) =
        (r.take(WAL_MAGIC.len()), r.u32(), r.u64(), r.u32())
    else {
        return Err(Error::corruption(
            file,
            0,
            format!(
                "file header is incomplete: {} of {FILE_HEADER_LEN} bytes",
                bytes.len().min(FILE_HEADER_LEN)
            ),
        ));
    };
    if magic != WAL_MAGIC {
        return Err(Error::corruption(
            file,
            0,
            "bad magic number: not a Strata log file",
        ));
    }
    let covered = bytes.get(..FILE_HEADER_LEN - 4).unwrap_or_default();
    let crc = crc32c::crc32c(covered);
    if crc != stored_crc {
        return Err(Error::ChecksumMismatch {
            file: file.to_path_buf(),
            offset: 0,
            expected: stored_crc,
            got: crc,
        });
    }
    if version > FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: file.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(Error::corruption(
            file,
            8,
            "format version 0 does not exist",
        ));
    }
    Ok(FileHeader {
        version,
        log_number,
    })
}

/// Checks a payload length against [`MAX_RECORD_LEN`] and returns it as the stored `u32`.
pub fn record_len(len: usize) -> Result<u32> {
    match u32::try_from(len) {
        Ok(n) if len <= MAX_RECORD_LEN => Ok(n),
        _ => Err(Error::InvalidArgument(format!(
            "log record of {len} bytes is too large: the limit is {MAX_RECORD_LEN} bytes"
        ))),
    }
}

/// Encodes the header of a record carrying `payload` in log `log_number`.
///
/// Fails with [`Error::InvalidArgument`] if the payload is longer than [`MAX_RECORD_LEN`].
pub fn encode_record_header(log_number: u64, payload: &[u8]) -> Result<[u8; RECORD_HEADER_LEN]> {
    let len = record_len(payload.len())?;
    let mut fields = [0u8; RECORD_HEADER_LEN - 4];
    let (len_bytes, log_bytes) = fields.split_at_mut(4);
    len_bytes.copy_from_slice(&len.to_le_bytes());
    log_bytes.copy_from_slice(&log_number.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&fields), payload);
    let mut header = [0u8; RECORD_HEADER_LEN];
    let (crc_bytes, rest) = header.split_at_mut(4);
    crc_bytes.copy_from_slice(&crc.to_le_bytes());
    rest.copy_from_slice(&fields);
    Ok(header)
}

/// How far past the end of a log [`follows_reused_log`] looks for the previous log's records.
const STALE_SCAN_WINDOW: usize = 64 * 1024;

/// True if, within a short window after `offset`, a whole record of another log starts: the
/// bytes after the last record of a reused log file are the previous log's data, not damage.
pub fn follows_reused_log(bytes: &[u8], offset: usize, log_number: u64) -> bool {
    (offset..bytes.len().min(offset.saturating_add(STALE_SCAN_WINDOW)))
        .any(|at| is_stale_record(bytes, at, log_number))
}

/// True if a whole record with a valid checksum, no longer than the scan window, starts at
/// `offset` stamped with a log number other than `log_number`.
fn is_stale_record(bytes: &[u8], offset: usize, log_number: u64) -> bool {
    let (Some(crc), Some(len), Some(log)) = (
        get_u32(bytes, offset),
        get_u32(bytes, offset + 4),
        get_u64(bytes, offset + 8),
    ) else {
        return false;
    };
    let end = (offset + RECORD_HEADER_LEN).checked_add(len as usize);
    match end.and_then(|end| bytes.get(offset + 4..end)) {
        Some(covered) if log != log_number && covered.len() <= STALE_SCAN_WINDOW => {
            crc32c::crc32c(covered) == crc
        }
        _ => false,
    }
}

/// Encodes a whole record (header and payload) into a new vector.
pub fn encode_record(log_number: u64, payload: &[u8]) -> Result<Vec<u8>> {
    let header = encode_record_header(log_number, payload)?;
    let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(payload);
    Ok(buf)
}

/// Why no valid record starts at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Fewer bytes than a record header are left.
    Incomplete {
        /// Bytes left.
        have: usize,
    },
    /// The record header is all zeros: space that was never written.
    Zeroed,
    /// The length is above the limit or runs past the end of the file.
    BadLength {
        /// The stored length.
        len: u32,
        /// Bytes left after the record header.
        left: usize,
    },
    /// The checksum does not match.
    Checksum {
        /// Checksum stored in the record.
        expected: u32,
        /// Checksum computed over the bytes read.
        got: u32,
    },
    /// A record with a valid checksum but another log's number: left over from a recycled file.
    OtherLog {
        /// The log number in the record.
        found: u64,
    },
}

impl Damage {
    /// The error reporting this damage at `offset` in `file`.
    pub(crate) fn into_error(self, file: &Path, offset: u64) -> Error {
        match self {
            Damage::Checksum { expected, got } => Error::ChecksumMismatch {
                file: file.to_path_buf(),
                offset,
                expected,
                got,
            },
            Damage::Incomplete { have } => Error::corruption(
                file,
                offset,
                format!("record header is incomplete: {have} of {RECORD_HEADER_LEN} bytes"),
            ),
            Damage::Zeroed => Error::corruption(
                file,
                offset,
                "all-zero record header followed by more records",
            ),
            Damage::BadLength { len, left } => Error::corruption(
                file,
                offset,
                format!(
                    "record length {len} is invalid: {left} bytes left, limit {MAX_RECORD_LEN}"
                ),
            ),
            Damage::OtherLog { found } => Error::corruption(
                file,
                offset,
                format!("record belongs to log {found}, not to this log"),
            ),
        }
    }
}

/// Decodes the record starting at `pos` in `bytes`, which belongs to log `log_number`.
///
/// Returns the payload and the offset just past the record, or what is wrong with it. Never
/// panics and never allocates, whatever `bytes` and `pos` are.
pub(crate) fn decode_record(
    bytes: &[u8],
    pos: usize,
    log_number: u64,
) -> std::result::Result<(&[u8], usize), Damage> {
    let rest = bytes.get(pos..).unwrap_or_default();
    let Some(header) = rest.get(..RECORD_HEADER_LEN) else {
        return Err(Damage::Incomplete { have: rest.len() });
    };
    if header.iter().all(|&b| b == 0) {
        return Err(Damage::Zeroed);
    }
    let (Some(expected), Some(len), Some(found)) =
        (get_u32(header, 0), get_u32(header, 4), get_u64(header, 8))
    else {
        return Err(Damage::Incomplete { have: rest.len() });
    };
    let body = rest.get(RECORD_HEADER_LEN..).unwrap_or_default();
    let payload = usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_RECORD_LEN)
        .and_then(|n| body.get(..n))
        .ok_or(Damage::BadLength {
            len,
            left: body.len(),
        })?;
    let fields = header.get(4..).unwrap_or_default();
    let got = crc32c::crc32c_append(crc32c::crc32c(fields), payload);
    if got != expected {
        return Err(Damage::Checksum { expected, got });
    }
    if found != log_number {
        return Err(Damage::OtherLog { found });
    }
    Ok((payload, pos + RECORD_HEADER_LEN + payload.len()))
}

/// The offset of the first valid record of log `log_number` at or after `from`, if any.
///
/// Used to tell damage in the middle of a log (valid records follow it) from a torn tail
/// (nothing valid follows), and to resynchronise after damage. Only offsets whose log-number
/// field matches are checksummed, so the scan costs little more than one pass over the bytes.
pub(crate) fn next_valid_record(bytes: &[u8], from: usize, log_number: u64) -> Option<usize> {
    let last = bytes.len().checked_sub(RECORD_HEADER_LEN)?;
    (from..=last).find(|&q| {
        q.checked_add(8).and_then(|at| get_u64(bytes, at)) == Some(log_number)
            && decode_record(bytes, q, log_number).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/db/000007.log";

    #[test]
    fn file_header_round_trip() {
        let h = encode_file_header(7);
        assert_eq!(h.len(), FILE_HEADER_LEN);
        let d = decode_file_header(&h, Path::new(FILE)).unwrap();
        assert_eq!(
            d,
            FileHeader {
                version: FORMAT_VERSION,
                log_number: 7
            }
        );
    }

    #[test]
    fn every_bit_flip_in_the_file_header_is_caught() {
        let h = encode_file_header(7);
        for byte in 0..FILE_HEADER_LEN {
            for bit in 0..8 {
                let mut bad = h.clone();
                bad[byte] ^= 1 << bit;
                let err = decode_file_header(&bad, Path::new(FILE)).unwrap_err();
                assert!(err.is_corruption(), "byte {byte} bit {bit}: {err}");
                if byte < WAL_MAGIC.len() {
                    assert!(matches!(err, Error::Corruption { offset: 0, .. }), "{err}");
                } else {
                    assert!(
                        matches!(err, Error::ChecksumMismatch { offset: 0, .. }),
                        "{err}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_header_is_corruption() {
        let h = encode_file_header(7);
        for cut in 0..FILE_HEADER_LEN {
            let err = decode_file_header(&h[..cut], Path::new(FILE)).unwrap_err();
            assert!(matches!(err, Error::Corruption { offset: 0, .. }), "{err}");
            assert!(err.to_string().contains("incomplete"), "{err}");
        }
    }

    #[test]
    fn newer_version_is_refused_and_zero_is_corrupt() {
        let h = encode_file_header_with_version(7, FORMAT_VERSION + 1);
        let err = decode_file_header(&h, Path::new(FILE)).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion { found, supported, .. }
                if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
            "{err}"
        );
        let h = encode_file_header_with_version(7, 0);
        let err = decode_file_header(&h, Path::new(FILE)).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }

    #[test]
    fn record_round_trip_and_damage() {
        let rec = encode_record(3, b"hello").unwrap();
        assert_eq!(rec.len(), RECORD_HEADER_LEN + 5);
        assert_eq!(decode_record(&rec, 0, 3), Ok((&b"hello"[..], rec.len())));
        assert_eq!(
            decode_record(&rec, 0, 4),
            Err(Damage::OtherLog { found: 3 })
        );
        assert_eq!(
            decode_record(&rec, rec.len(), 3),
            Err(Damage::Incomplete { have: 0 })
        );
        assert_eq!(
            decode_record(&rec, usize::MAX, 3),
            Err(Damage::Incomplete { have: 0 })
        );
        assert_eq!(decode_record(&[0; 40], 0, 3), Err(Damage::Zeroed));
        assert!(matches!(
            decode_record(&rec[..rec.len() - 1], 0, 3),
            Err(Damage::BadLength { len: 5, left: 4 })
        ));
        for byte in 0..rec.len() {
            let mut bad = rec.clone();
            bad[byte] ^= 0x10;
            assert!(
                decode_record(&bad, 0, 3).is_err(),
                "flip in byte {byte} not caught"
            );
        }
    }

    #[test]
    fn oversized_lengths_are_refused_without_allocating() {
        assert_eq!(record_len(MAX_RECORD_LEN).unwrap(), 1 << 30);
        assert!(matches!(
            record_len(MAX_RECORD_LEN + 1),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            record_len(usize::MAX),
            Err(Error::InvalidArgument(_))
        ));
        // A header claiming u32::MAX bytes, with a checksum computed as if they were there.
        let mut rec = encode_record(1, b"").unwrap();
        rec[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_record(&rec, 0, 1),
            Err(Damage::BadLength {
                len: u32::MAX,
                left: 0
            })
        ));
    }

    #[test]
    fn resync_finds_the_next_record_of_this_log_only() {
        let mut bytes = vec![0xAB; 5];
        bytes.extend(encode_record(9, b"stale").unwrap());
        let at = bytes.len();
        bytes.extend(encode_record(2, b"mine").unwrap());
        assert_eq!(next_valid_record(&bytes, 0, 2), Some(at));
        assert_eq!(next_valid_record(&bytes, at + 1, 2), None);
        assert_eq!(next_valid_record(&bytes, usize::MAX, 2), None);
        assert_eq!(next_valid_record(&[], 0, 2), None);
    }
}
