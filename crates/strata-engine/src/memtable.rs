//! The memtable: a concurrent skiplist of internal keys that takes every write after the WAL, plus
//! the range tombstones written since the last flush. One writer inserts while any number of
//! readers search without locks.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use crossbeam_skiplist::base::SkipList;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::{
    SeqNo, TRAILER_LEN, ValueKind, append_internal_key, compare_internal, parse_internal_key,
    seek_key, user_key,
};
use crate::range_del::RangeTombstone;
use crate::table::BloomFilter;

/// Per-entry bookkeeping counted on top of key and value bytes: the skiplist node with its
/// tower, and the allocator's headers for the key and value buffers.
const ENTRY_OVERHEAD: usize = 128;

/// Bloom filter bits per expected entry, and the smallest entry size the sizing assumes.
const BLOOM_BITS_PER_ENTRY: usize = 10;
const BLOOM_MIN_ENTRY_BYTES: usize = ENTRY_OVERHEAD + 16;
const BLOOM_PROBES: u32 = 6;

/// A fixed-size bloom filter over the memtable's user keys, set with atomic ORs so the writer
/// never blocks readers. Lookups of keys the memtable does not hold (most of them, once the
/// data outgrows one memtable) skip the skiplist search entirely.
#[derive(Debug)]
struct MemBloom {
    words: Box<[AtomicU64]>,
}

impl MemBloom {
    fn new(capacity_bytes: usize) -> Self {
        let entries = (capacity_bytes / BLOOM_MIN_ENTRY_BYTES).max(64);
        let words = (entries * BLOOM_BITS_PER_ENTRY).div_ceil(64);
        MemBloom {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn positions(&self, hash: u64) -> impl Iterator<Item = (usize, u64)> + use<> {
        let nbits = (self.words.len() * 64) as u64;
        let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        (0..u64::from(BLOOM_PROBES)).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % nbits;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn insert(&self, hash: u64) {
        for (word, mask) in self.positions(hash) {
            // A plain load first: a bit already set (a key written before, a shared bit)
            // needs no locked read-modify-write.
            if let Some(w) = self.words.get(word)
                && w.load(AtomicOrdering::Relaxed) & mask == 0
            {
                w.fetch_or(mask, AtomicOrdering::Relaxed);
            }
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        self.positions(hash).all(|(word, mask)| {
            self.words
                .get(word)
                .is_none_or(|w| w.load(AtomicOrdering::Relaxed) & mask != 0)
        })
    }
}

/// Bytes of the user key held inline in a [`MemKey`]. Engine keys often open with a long
/// shared prefix (a cluster's partition tag before the user key, a Raft group's prefix before a
/// big-endian log index whose high bytes are zero): 16 bytes left the log indexes and the
/// last digits of typical keys outside, so a search followed a pointer at nearly every step.
const PREFIX_LEN: usize = 32;

/// A memtable entry: the encoded internal key and the value in one buffer (one allocation per
/// write besides the skiplist node), ordered by [`compare_internal`] on the key. The first
/// [`PREFIX_LEN`] bytes of the user key are also held inline, big-endian and zero-padded, so
/// that most comparisons during a search are decided in the skiplist node itself without
/// following the pointer to the buffer (a cache miss per step in a large memtable).
#[derive(Debug, Clone)]
struct MemKey {
    prefix: [u128; 2],
    /// The internal key, then the value.
    data: Bytes,
    key_len: usize,
}

impl MemKey {
    /// The entry of `user_key`'s version `seq` of `kind` with `value`.
    fn new(user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Self {
        let key_len = user_key.len() + TRAILER_LEN;
        let mut data = Vec::with_capacity(key_len + value.len());
        append_internal_key(&mut data, user_key, seq, kind);
        data.extend_from_slice(value);
        MemKey {
            prefix: prefix_of(user_key),
            data: Bytes::from(data),
            key_len,
        }
    }

    /// A search target for the internal key `ikey`.
    fn target(ikey: Bytes) -> Self {
        MemKey {
            prefix: prefix_of(user_key(&ikey)),
            key_len: ikey.len(),
            data: ikey,
        }
    }

    fn ikey(&self) -> &[u8] {
        self.data.get(..self.key_len).unwrap_or_default()
    }

    fn value(&self) -> &[u8] {
        self.data.get(self.key_len..).unwrap_or_default()
    }

    fn key_bytes(&self) -> Bytes {
        self.data.slice(..self.key_len)
    }

    fn value_bytes(&self) -> Bytes {
        self.data.slice(self.key_len..)
    }
}

/// The first [`PREFIX_LEN`] bytes of `user_key` as big-endian numbers, zero-padded. Padding
/// sorts below every byte, so a shorter key that is a prefix of a longer one never compares
/// above it: when two prefixes differ they order the keys, and when they are equal the keys
/// must be compared in full.
fn prefix_of(user_key: &[u8]) -> [u128; 2] {
    let mut buf = [0u8; PREFIX_LEN];
    let n = user_key.len().min(PREFIX_LEN);
    if let (Some(dst), Some(src)) = (buf.get_mut(..n), user_key.get(..n)) {
        dst.copy_from_slice(src);
    }
    let (hi, lo) = buf.split_at(PREFIX_LEN / 2);
    let word = |half: &[u8]| u128::from_be_bytes(half.try_into().unwrap_or_default());
    [word(hi), word(lo)]
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MemKey {}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| compare_internal(self.ikey(), other.ikey()))
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The newest version of a key found in a memtable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemGet {
    /// Sequence number of the version.
    pub seq: SeqNo,
    /// Put or delete.
    pub kind: ValueKind,
    /// The value (empty for a delete).
    pub value: Bytes,
}

/// A sorted in-memory table of recent writes.
#[derive(Debug)]
pub struct Memtable {
    /// The entries, used through crossbeam's guard-based API: a lookup pins the epoch once
    /// and reads the node it finds without taking a reference count on it.
    map: SkipList<MemKey, ()>,
    /// Range tombstones recorded, so lookups skip the lock when there are none.
    range_tombstone_count: AtomicUsize,
    bloom: MemBloom,
    range_tombstones: RwLock<Vec<RangeTombstone>>,
    size: AtomicUsize,
    log_number: u64,
}

impl Memtable {
    /// An empty memtable whose writes are logged in WAL `log_number`, expected to grow to about
    /// `capacity_bytes` (this sizes its bloom filter).
    pub fn new(log_number: u64, capacity_bytes: usize) -> Self {
        Memtable {
            map: SkipList::new(crossbeam_epoch::default_collector().clone()),
            range_tombstone_count: AtomicUsize::new(0),
            bloom: MemBloom::new(capacity_bytes),
            range_tombstones: RwLock::new(Vec::new()),
            size: AtomicUsize::new(0),
            log_number,
        }
    }

    /// The WAL that holds this memtable's writes.
    pub fn log_number(&self) -> u64 {
        self.log_number
    }

    /// Inserts a put or delete.
    pub fn add(&self, seq: SeqNo, kind: ValueKind, key: &[u8], value: &[u8]) {
        self.bloom.insert(BloomFilter::hash(key));
        let entry = MemKey::new(key, seq, kind, value);
        self.size
            .fetch_add(entry.data.len() + ENTRY_OVERHEAD, AtomicOrdering::Relaxed);
        let guard = crossbeam_epoch::pin();
        self.map.insert(entry, (), &guard).release(&guard);
    }

    /// Records a range deletion.
    pub fn add_range_tombstone(&self, t: RangeTombstone) {
        self.size.fetch_add(
            t.start.len() + t.end.len() + ENTRY_OVERHEAD,
            AtomicOrdering::Relaxed,
        );
        self.range_tombstones
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(t);
        self.range_tombstone_count
            .fetch_add(1, AtomicOrdering::Release);
    }

    /// The range tombstones recorded so far.
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_tombstones
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True if a range tombstone here deletes `user_key`'s version at `entry_seq` for a reader at
    /// `read_seq`.
    pub fn covers(&self, user_key: &[u8], entry_seq: SeqNo, read_seq: SeqNo) -> bool {
        if !self.has_range_tombstones() {
            return false;
        }
        crate::range_del::is_covered(
            &self
                .range_tombstones
                .read()
                .unwrap_or_else(|p| p.into_inner()),
            user_key,
            entry_seq,
            read_seq,
        )
    }

    /// True if any range tombstone was recorded.
    pub fn has_range_tombstones(&self) -> bool {
        self.range_tombstone_count.load(AtomicOrdering::Acquire) > 0
    }

    /// The newest version of `user_key` with a sequence number at or below `seq`.
    pub fn get(&self, user_key: &[u8], seq: SeqNo) -> Option<MemGet> {
        self.get_hashed(user_key, BloomFilter::hash(user_key), seq)
    }

    /// [`Memtable::get`] with the key's [`BloomFilter::hash`] already computed, so one hash
    /// serves every memtable and table a lookup visits.
    pub fn get_hashed(&self, user_key: &[u8], hash: u64, seq: SeqNo) -> Option<MemGet> {
        if !self.bloom.may_contain(hash) {
            return None;
        }
        let target = MemKey::target(Bytes::from(seek_key(user_key, seq)));
        let guard = crossbeam_epoch::pin();
        let entry = self.map.lower_bound(Bound::Included(&target), &guard)?;
        let found = entry.key();
        let parsed = parse_internal_key(found.ikey())?;
        (parsed.user_key == user_key).then(|| MemGet {
            seq: parsed.seq,
            kind: parsed.kind,
            value: found.value_bytes(),
        })
    }

    /// Approximate bytes used.
    pub fn approximate_size(&self) -> usize {
        self.size.load(AtomicOrdering::Relaxed)
    }

    /// Number of point entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && !self.has_range_tombstones()
    }

    /// The first entry from `start` on.
    fn first_from(&self, start: Bound<&MemKey>) -> Option<MemKey> {
        let guard = crossbeam_epoch::pin();
        let entry = self.map.lower_bound(start, &guard)?;
        Some(entry.key().clone())
    }

    /// Up to `max` entries from `start` on, in order, read under one epoch pin.
    fn collect_from(&self, start: Bound<&MemKey>, max: usize) -> Vec<MemKey> {
        let guard = crossbeam_epoch::pin();
        let mut out = Vec::with_capacity(max);
        let mut entry = self.map.lower_bound(start, &guard);
        while let Some(e) = entry {
            if out.len() >= max {
                break;
            }
            out.push(e.key().clone());
            entry = e.next();
        }
        out
    }

    /// Walks every point entry in order as (encoded internal key, value), for a flush: it
    /// follows the skiplist's links a chunk at a time rather than searching for each successor.
    pub fn entries(&self) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
        const CHUNK: usize = 1024;
        let mut chunk = self.collect_from(Bound::Unbounded, CHUNK).into_iter();
        let mut last: Option<MemKey> = None;
        std::iter::from_fn(move || {
            let next = match chunk.next() {
                Some(k) => k,
                None => {
                    let from = last.as_ref()?;
                    chunk = self.collect_from(Bound::Excluded(from), CHUNK).into_iter();
                    chunk.next()?
                }
            };
            let item = (next.key_bytes(), next.value_bytes());
            last = Some(next);
            Some(item)
        })
    }

    /// An iterator over the point entries.
    pub fn iter(self: &Arc<Self>) -> MemtableIterator {
        MemtableIterator {
            mem: Arc::clone(self),
            current: None,
        }
    }
}

/// Iterates a memtable in internal-key order; it keeps the memtable alive.
#[derive(Debug)]
pub struct MemtableIterator {
    mem: Arc<Memtable>,
    current: Option<MemKey>,
}

impl MemtableIterator {
    fn set(&mut self, bound: Bound<&MemKey>) {
        self.current = self.mem.first_from(bound);
    }
}

impl InternalIterator for MemtableIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.set(Bound::Unbounded);
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let t = MemKey::target(Bytes::copy_from_slice(target));
        self.set(Bound::Included(&t));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(k) = self.current.take() {
            self.set(Bound::Excluded(&k));
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], MemKey::ikey)
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], MemKey::value)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn get_sees_the_newest_version_at_a_sequence() {
        let m = Memtable::new(1, 1 << 20);
        m.add(1, ValueKind::Put, b"k", b"v1");
        m.add(3, ValueKind::Put, b"k", b"v3");
        m.add(5, ValueKind::Delete, b"k", b"");
        m.add(2, ValueKind::Put, b"ka", b"x");
        assert_eq!(m.get(b"k", 0), None);
        assert_eq!(m.get(b"k", 2).unwrap().value, Bytes::from_static(b"v1"));
        assert_eq!(m.get(b"k", 4).unwrap().value, Bytes::from_static(b"v3"));
        assert_eq!(m.get(b"k", 9).unwrap().kind, ValueKind::Delete);
        assert_eq!(m.get(b"j", 9), None);
        assert!(m.approximate_size() > 0);
    }

    #[test]
    fn bloom_rules_out_absent_keys_without_false_negatives() {
        let m = Memtable::new(1, 1 << 20);
        for i in 0..5000u32 {
            m.add(
                u64::from(i),
                ValueKind::Put,
                format!("present{i}").as_bytes(),
                b"v",
            );
        }
        for i in 0..5000u32 {
            assert!(
                m.get(format!("present{i}").as_bytes(), u64::MAX >> 8)
                    .is_some()
            );
        }
        let passed = (0..5000u32)
            .filter(|i| {
                m.bloom
                    .may_contain(BloomFilter::hash(format!("absent{i}").as_bytes()))
            })
            .count();
        assert!(
            passed < 100,
            "{passed} of 5000 absent keys passed the filter"
        );
    }

    #[test]
    fn iterator_walks_in_internal_order() {
        let m = Arc::new(Memtable::new(1, 1 << 20));
        m.add(1, ValueKind::Put, b"b", b"1");
        m.add(2, ValueKind::Put, b"a", b"2");
        m.add(3, ValueKind::Put, b"b", b"3");
        let mut it = m.iter();
        it.seek_to_first().unwrap();
        let mut seen = Vec::new();
        while it.valid() {
            let p = parse_internal_key(it.key()).unwrap();
            seen.push((p.user_key.to_vec(), p.seq));
            it.next().unwrap();
        }
        assert_eq!(
            seen,
            vec![(b"a".to_vec(), 2), (b"b".to_vec(), 3), (b"b".to_vec(), 1)]
        );
        it.seek(&seek_key(b"b", 2)).unwrap();
        assert_eq!(parse_internal_key(it.key()).unwrap().seq, 1);
    }

    /// Keys built from a long shared head and short tails of 0x00, 0x01 and 0xff bytes, so they
    /// straddle both inline words and often end in bytes that look like the zero padding.
    fn tricky_key() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..40,
            proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff)], 0..6),
        )
            .prop_map(|(head, tail)| {
                let mut k = vec![7u8; head];
                k.extend(tail);
                k
            })
    }

    proptest! {
        /// Iteration yields user keys in byte order (newest version first within a key) and
        /// `get` finds each key's latest value, whatever the inline prefix holds of them.
        #[test]
        fn order_and_lookups_match_a_sorted_model(
            writes in proptest::collection::vec((tricky_key(), any::<u8>()), 1..200),
        ) {
            let m = Arc::new(Memtable::new(1, 1 << 20));
            let mut model = std::collections::BTreeMap::new();
            for (seq, (key, value)) in writes.iter().enumerate() {
                let seq = seq as u64 + 1;
                m.add(seq, ValueKind::Put, key, &[*value]);
                model.insert(key.clone(), *value);
            }
            let mut it = m.iter();
            it.seek_to_first().unwrap();
            let mut seen: Vec<(Vec<u8>, u64)> = Vec::new();
            while it.valid() {
                let p = parse_internal_key(it.key()).unwrap();
                seen.push((p.user_key.to_vec(), p.seq));
                it.next().unwrap();
            }
            let mut expected: Vec<(Vec<u8>, u64)> = writes
                .iter()
                .enumerate()
                .map(|(seq, (key, _))| (key.clone(), seq as u64 + 1))
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            prop_assert_eq!(seen, expected);
            for (key, value) in &model {
                let got = m.get(key, u64::MAX >> 8).unwrap();
                prop_assert_eq!(got.value.as_ref(), &[*value][..]);
            }
        }
    }
}
