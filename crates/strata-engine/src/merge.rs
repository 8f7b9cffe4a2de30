//! [`MergingIterator`]: merges sorted sources (memtables, tables, levels) into one stream in
//! internal-key order. Sources are few (memtables, a handful of L0 tables, one per deeper level),
//! so the smallest head is found by a linear scan rather than a heap.

use std::cmp::Ordering;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::compare_internal;

/// Merges several internal iterators.
pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    current: Option<usize>,
}

impl MergingIterator {
    /// Merges `children`; for equal keys the earlier child comes first.
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergingIterator {
            children,
            current: None,
        }
    }

    fn find_smallest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if compare_internal(c.key(), self.children[b].key()) != Ordering::Less => {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        for c in &mut self.children {
            c.seek_to_first()?;
        }
        self.find_smallest();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.find_smallest();
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(i) = self.current
            && let Some(c) = self.children.get_mut(i)
        {
            c.next()?;
        }
        self.find_smallest();
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.current
            .and_then(|i| self.children.get(i))
            .map_or(&[], |c| c.key())
    }

    fn value(&self) -> &[u8] {
        self.current
            .and_then(|i| self.children.get(i))
            .map_or(&[], |c| c.value())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::key::{ValueKind, parse_internal_key, seek_key};
    use crate::memtable::Memtable;

    #[test]
    fn merges_in_order_across_sources() {
        let a = Arc::new(Memtable::new(1, 1 << 20));
        let b = Arc::new(Memtable::new(2, 1 << 20));
        a.add(1, ValueKind::Put, b"a", b"");
        a.add(4, ValueKind::Put, b"c", b"");
        b.add(2, ValueKind::Put, b"b", b"");
        b.add(3, ValueKind::Put, b"c", b"");
        let mut m = MergingIterator::new(vec![Box::new(a.iter()), Box::new(b.iter())]);
        m.seek_to_first().unwrap();
        let mut got = Vec::new();
        while m.valid() {
            let p = parse_internal_key(m.key()).unwrap();
            got.push((p.user_key.to_vec(), p.seq));
            m.next().unwrap();
        }
        let want = [(b"a", 1), (b"b", 2), (b"c", 4), (b"c", 3)];
        assert_eq!(got, want.map(|(k, s)| (k.to_vec(), s)));
        m.seek(&seek_key(b"c", 3)).unwrap();
        assert_eq!(parse_internal_key(m.key()).unwrap().seq, 3);
    }
}
