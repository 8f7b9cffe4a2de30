//! Internal keys: a user key followed by an 8-byte trailer holding the sequence number and the
//! kind of entry. Entries sort by user key ascending, then by sequence number descending, so the
//! newest version of a key comes first and a seek at a snapshot lands on the version it sees.

use std::cmp::Ordering;

use crate::coding::get_u64;

/// A write's position in the total order of writes.
pub type SeqNo = u64;

/// The largest sequence number (56 bits: the low byte of the trailer holds the kind).
pub const MAX_SEQNO: SeqNo = (1 << 56) - 1;

/// Size of the trailer appended to every user key.
pub const TRAILER_LEN: usize = 8;

/// What an entry records about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key was deleted at this sequence number.
    Delete = 0,
    /// A value was put at this sequence number.
    Put = 1,
}

impl ValueKind {
    /// Decodes the kind byte, or `None` for an unknown kind.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// The kind used in seek targets: the highest kind, so the target sorts before every entry with
/// the same user key and sequence number.
pub const KIND_FOR_SEEK: ValueKind = ValueKind::Put;

/// Packs a sequence number and a kind into a trailer.
pub fn pack_trailer(seq: SeqNo, kind: ValueKind) -> u64 {
    (seq << 8) | kind as u64
}

/// Appends the encoded internal key for (`user_key`, `seq`, `kind`) to `buf`.
pub fn append_internal_key(buf: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    buf.extend_from_slice(user_key);
    buf.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

/// Encodes an internal key into a new vector.
pub fn make_internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    append_internal_key(&mut v, user_key, seq, kind);
    v
}

/// The seek target that finds the newest version of `user_key` visible at `seq`.
pub fn seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    make_internal_key(user_key, seq, KIND_FOR_SEEK)
}

/// A decoded view of an encoded internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The user's key.
    pub user_key: &'a [u8],
    /// Sequence number of the write.
    pub seq: SeqNo,
    /// Put or delete.
    pub kind: ValueKind,
}

/// Splits an encoded internal key, or returns `None` if it is too short or has an unknown kind.
pub fn parse_internal_key(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let trailer = get_u64(ikey, split)?;
    let kind = ValueKind::from_u8((trailer & 0xff) as u8)?;
    Some(ParsedKey {
        user_key: ikey.get(..split)?,
        seq: trailer >> 8,
        kind,
    })
}

/// The user-key part of an encoded internal key (the whole slice if it is shorter than a trailer).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    let split = ikey.len().saturating_sub(TRAILER_LEN);
    ikey.get(..split).unwrap_or(ikey)
}

fn trailer(ikey: &[u8]) -> u64 {
    get_u64(ikey, ikey.len().saturating_sub(TRAILER_LEN)).unwrap_or(0)
}

/// Orders byte strings like `[u8]::cmp`, eight bytes at a time. Keys are short, so skipping
/// the call into the C library's `memcmp` matters on the memtable's hot comparison path.
#[inline]
pub fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            break;
        };
        let (x, y) = (u64::from_be_bytes(x), u64::from_be_bytes(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    // Both heads were equal for as many whole words as the shorter key has.
    let done = a.len().min(b.len()) / 8 * 8;
    a.get(done..)
        .unwrap_or_default()
        .cmp(b.get(done..).unwrap_or_default())
}

/// Orders encoded internal keys: user key ascending, then trailer (sequence, kind) descending.
#[inline]
pub fn compare_internal(a: &[u8], b: &[u8]) -> Ordering {
    match compare_bytes(user_key(a), user_key(b)) {
        Ordering::Equal => trailer(b).cmp(&trailer(a)),
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first() {
        let a1 = make_internal_key(b"a", 1, ValueKind::Put);
        let a2 = make_internal_key(b"a", 2, ValueKind::Delete);
        let ab = make_internal_key(b"ab", 9, ValueKind::Put);
        assert_eq!(compare_internal(&a2, &a1), Ordering::Less);
        assert_eq!(compare_internal(&a1, &ab), Ordering::Less);
        assert_ne!(compare_internal(&seek_key(b"a", 1), &a1), Ordering::Greater);
        assert_eq!(compare_internal(&seek_key(b"a", 1), &a2), Ordering::Greater);
    }

    #[test]
    fn compare_bytes_agrees_with_slice_order() {
        let keys: Vec<Vec<u8>> = [
            &b""[..],
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghi",
            b"abcdefgi",
            b"abcdefghabcdefgh",
            b"abcdefghabcdefgg",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"\x00\x00\x00\x00\x00\x00\x00\x00",
        ]
        .iter()
        .map(|k| k.to_vec())
        .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(compare_bytes(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn compare_bytes_matches_slice_cmp_on_random_keys(
            a in proptest::collection::vec(0u8..4, 0..40),
            b in proptest::collection::vec(0u8..4, 0..40),
        ) {
            proptest::prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
        }
    }

    #[test]
    fn parse_round_trip_and_rejects_garbage() {
        let k = make_internal_key(b"key", 42, ValueKind::Delete);
        let p = parse_internal_key(&k).unwrap();
        assert_eq!(
            (p.user_key, p.seq, p.kind),
            (&b"key"[..], 42, ValueKind::Delete)
        );
        assert!(parse_internal_key(b"short").is_none());
        let mut bad = k.clone();
        let last = bad.len() - TRAILER_LEN;
        bad[last] = 7;
        assert!(parse_internal_key(&bad).is_none());
    }
}
