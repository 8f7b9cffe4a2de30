//! Range tombstones: `delete_range(start, end)` is recorded as one entry covering `[start, end)`
//! at a sequence number, kept beside the point entries of memtables and tables rather than as a
//! tombstone per key, so deleting a range costs the same whatever it holds.

use crate::key::SeqNo;

/// A deletion of every key in `[start, end)` written at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeTombstone {
    /// First key deleted.
    pub start: Vec<u8>,
    /// First key after the range (exclusive).
    pub end: Vec<u8>,
    /// Sequence number of the deletion.
    pub seq: SeqNo,
}

impl RangeTombstone {
    /// True if this tombstone deletes a version of `user_key` written at `entry_seq`, as seen by
    /// a reader at `read_seq`.
    pub fn covers(&self, user_key: &[u8], entry_seq: SeqNo, read_seq: SeqNo) -> bool {
        self.seq > entry_seq
            && self.seq <= read_seq
            && self.start.as_slice() <= user_key
            && user_key < self.end.as_slice()
    }

    /// True if `[start, end)` shares a key with the inclusive user-key range `[lo, hi]`.
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.start.as_slice() <= hi && lo < self.end.as_slice()
    }
}

/// True if any tombstone in `tombstones` deletes `user_key`'s version at `entry_seq`.
pub fn is_covered(
    tombstones: &[RangeTombstone],
    user_key: &[u8],
    entry_seq: SeqNo,
    read_seq: SeqNo,
) -> bool {
    tombstones
        .iter()
        .any(|t| t.covers(user_key, entry_seq, read_seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_only_older_entries_inside_the_range() {
        let t = RangeTombstone {
            start: b"b".to_vec(),
            end: b"d".to_vec(),
            seq: 10,
        };
        assert!(t.covers(b"b", 5, 20));
        assert!(t.covers(b"c", 9, 10));
        assert!(!t.covers(b"d", 5, 20), "end is exclusive");
        assert!(!t.covers(b"a", 5, 20));
        assert!(!t.covers(b"c", 11, 20), "newer write survives");
        assert!(!t.covers(b"c", 5, 9), "snapshot before the tombstone");
        assert!(t.overlaps(b"a", b"b"));
        assert!(!t.overlaps(b"d", b"z"));
    }
}
