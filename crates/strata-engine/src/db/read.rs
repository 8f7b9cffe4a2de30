//! The read path: point lookups search the memtables, then L0 newest first, then one table per
//! deeper level, asking each table's bloom filter before reading a block; range tombstones from
//! every source are checked against the version found. [`DbIterator`] merges all sources and
//! yields each visible key once.

use std::iter::once;
use std::sync::Arc;

use super::{DbInner, SuperVersion};
use crate::batch::check_key_len;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{SeqNo, ValueKind, parse_internal_key, seek_key};
use crate::level_iter::level_iterators;
use crate::merge::MergingIterator;
use crate::range_del::{RangeTombstone, is_covered};
use crate::stats::Counters;
use crate::table::{BloomFilter, TableGet};

fn covered(sv: &SuperVersion, key: &[u8], entry_seq: SeqNo, read_seq: SeqNo) -> bool {
    once(&sv.mem)
        .chain(sv.imms.iter())
        .any(|m| m.covers(key, entry_seq, read_seq))
        || is_covered(&sv.version.range_tombstones, key, entry_seq, read_seq)
}

/// The answer of a point lookup that may not be allowed to read files.
pub(crate) enum Lookup {
    /// The newest visible value, or `None` if the key has none.
    Value(Option<Vec<u8>>),
    /// Answering needs a data block that is not in the block cache.
    NeedsIo,
}

/// Reads the newest value of `key` visible at `seq`.
pub(crate) fn get(inner: &DbInner, key: &[u8], seq: SeqNo) -> Result<Option<Vec<u8>>> {
    match lookup(inner, key, seq, true)? {
        Lookup::Value(v) => Ok(v),
        // Unreachable: only a lookup without I/O answers this.
        Lookup::NeedsIo => Err(Error::InvalidArgument(
            "a lookup allowed to read files asked for file reads".into(),
        )),
    }
}

/// Looks `key` up at `seq`, from the memtables, the pinned filters and indexes and the block
/// cache only unless `allow_io`.
pub(crate) fn lookup(inner: &DbInner, key: &[u8], seq: SeqNo, allow_io: bool) -> Result<Lookup> {
    check_key_len(key, inner.opts.max_key_len())?;
    let sv = inner.super_version();
    let hash = BloomFilter::hash(key);
    let mut found = once(&sv.mem)
        .chain(sv.imms.iter())
        .find_map(|m| m.get_hashed(key, hash, seq))
        .map(|g| (g.seq, g.kind, g.value.to_vec()));
    // Counted once the lookup is answered, so a lookup retried with I/O counts once.
    let (mut negatives, mut positives, mut false_positives) = (0, 0, 0);
    if found.is_none() {
        for f in sv.version.tables_for_key(key) {
            match f.table.get_hashed(key, hash, seq, allow_io)? {
                TableGet::NotCached => return Ok(Lookup::NeedsIo),
                TableGet::FilteredOut => negatives += 1,
                TableGet::NotFound => {
                    if inner.opts.bloom_bits_per_key > 0 {
                        positives += 1;
                        false_positives += 1;
                    }
                }
                TableGet::Found {
                    seq: s,
                    kind,
                    value,
                } => {
                    positives += 1;
                    found = Some((s, kind, value));
                    break;
                }
            }
        }
    }
    let c = &inner.counters;
    Counters::add(&c.keys_read, 1);
    for (counter, n) in [
        (&c.bloom_negatives, negatives),
        (&c.bloom_positives, positives),
        (&c.bloom_false_positives, false_positives),
    ] {
        if n > 0 {
            Counters::add(counter, n);
        }
    }
    Ok(Lookup::Value(match found {
        Some((s, ValueKind::Put, value)) if !covered(&sv, key, s, seq) => Some(value),
        _ => None,
    }))
}

pub(crate) fn iter(
    inner: &DbInner,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    seq: SeqNo,
) -> Result<DbIterator> {
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(Error::InvalidArgument(
            "range start is after its end".into(),
        ));
    }
    let sv = inner.super_version();
    let lo = start.unwrap_or_default();
    let in_range =
        |smallest: &[u8], largest: &[u8]| largest >= lo && end.is_none_or(|e| smallest < e);
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    let mut tombstones: Vec<RangeTombstone> = Vec::new();
    for m in once(&sv.mem).chain(sv.imms.iter()) {
        children.push(Box::new(m.iter()));
        tombstones.extend(m.range_tombstones());
    }
    for (level, files) in sv.version.levels.iter().enumerate() {
        let files = files
            .iter()
            .filter(|f| in_range(&f.desc.smallest, &f.desc.largest))
            .cloned()
            .collect();
        children.extend(level_iterators(level, files));
    }
    tombstones.extend(sv.version.range_tombstones.iter().cloned());
    tombstones.retain(|t| {
        t.seq <= seq && end.is_none_or(|e| t.start.as_slice() < e) && t.end.as_slice() > lo
    });

    let mut merged = MergingIterator::new(children);
    let positioned = match start {
        Some(s) => merged.seek(&seek_key(s, seq)),
        None => merged.seek_to_first(),
    };
    Ok(DbIterator {
        iter: merged,
        read_seq: seq,
        end: end.map(<[u8]>::to_vec),
        tombstones,
        last_key: None,
        pending_error: positioned.err(),
        done: false,
        _sv: sv,
    })
}

/// Iterates the visible keys of a range in order, yielding `(key, value)` pairs.
pub struct DbIterator {
    iter: MergingIterator,
    read_seq: SeqNo,
    end: Option<Vec<u8>>,
    tombstones: Vec<RangeTombstone>,
    last_key: Option<Vec<u8>>,
    pending_error: Option<Error>,
    done: bool,
    _sv: Arc<SuperVersion>,
}

impl std::fmt::Debug for DbIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIterator")
            .field("read_seq", &self.read_seq)
            .finish()
    }
}

impl DbIterator {
    fn step(&mut self) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        loop {
            if !self.iter.valid() {
                return None;
            }
            let Some(p) = parse_internal_key(self.iter.key()) else {
                return Some(Err(Error::corruption(
                    "iterator",
                    0,
                    "malformed internal key",
                )));
            };
            let skip = p.seq > self.read_seq || self.last_key.as_deref() == Some(p.user_key);
            if !skip {
                if self.end.as_deref().is_some_and(|e| p.user_key >= e) {
                    return None;
                }
                self.last_key = Some(p.user_key.to_vec());
                if p.kind == ValueKind::Put
                    && !is_covered(&self.tombstones, p.user_key, p.seq, self.read_seq)
                {
                    let item = (p.user_key.to_vec(), self.iter.value().to_vec());
                    if let Err(e) = self.iter.next() {
                        self.pending_error = Some(e);
                    }
                    return Some(Ok(item));
                }
            }
            if let Err(e) = self.iter.next() {
                return Some(Err(e));
            }
        }
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        let item = self.step();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
