//! [`BlockCache`]: a sharded LRU cache of decoded data blocks with a byte budget, shared by
//! every table of a store. A read that finds its block here skips the file read, the checksum
//! and the decompression. Shards keep lookups from different threads off one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::table::block::Block;

const SHARDS: usize = 16;
/// Bookkeeping charged per cached block on top of its contents.
const ENTRY_OVERHEAD: usize = 96;

/// Identifies a block: the table's cache id and the block's offset in the file.
pub type CacheKey = (u64, u64);

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<CacheKey, (Block, usize, u64)>,
    /// Recency order: tick of last use -> key; the smallest tick is evicted first.
    order: BTreeMap<u64, CacheKey>,
    tick: u64,
    used: usize,
}

impl Shard {
    fn touch(&mut self, key: CacheKey) -> Option<Block> {
        self.tick += 1;
        let tick = self.tick;
        let (block, _, last) = self.entries.get_mut(&key)?;
        self.order.remove(last);
        *last = tick;
        self.order.insert(tick, key);
        Some(block.clone())
    }

    fn insert(&mut self, key: CacheKey, block: Block, charge: usize, capacity: usize) {
        if charge > capacity {
            return;
        }
        if let Some((_, old_charge, old_tick)) = self.entries.remove(&key) {
            self.order.remove(&old_tick);
            self.used -= old_charge;
        }
        while self.used + charge > capacity {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, c, _)) = self.entries.remove(&victim) {
                self.used -= c;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key);
        self.entries.insert(key, (block, charge, self.tick));
        self.used += charge;
    }
}

/// A shared cache of data blocks, bounded in bytes.
#[derive(Debug)]
pub struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    next_id: AtomicU64,
}

impl BlockCache {
    /// A cache holding at most `capacity` bytes of blocks (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        BlockCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: capacity / SHARDS,
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    /// A fresh id for a table's blocks, unique for the cache's lifetime.
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn shard(&self, key: CacheKey) -> Option<MutexGuard<'_, Shard>> {
        let h = key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.1.rotate_left(17);
        self.shards
            .get((h >> 32) as usize % SHARDS)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The cached block for `key`, marking it recently used.
    pub fn get(&self, key: CacheKey) -> Option<Block> {
        let found = self.shard(key).and_then(|mut s| s.touch(key));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Caches `block` under `key`, evicting the least recently used blocks to stay in budget.
    pub fn insert(&self, key: CacheKey, block: Block) {
        if self.shard_capacity == 0 {
            return;
        }
        let charge = block.size() + ENTRY_OVERHEAD;
        if let Some(mut s) = self.shard(key) {
            s.insert(key, block, charge, self.shard_capacity);
        }
    }

    /// The byte budget.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held now.
    pub fn usage(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).used)
            .sum()
    }

    /// Lookups that found their block.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::table::block::BlockBuilder;

    fn block(n: usize) -> Block {
        let mut b = BlockBuilder::new(16);
        b.add(
            &crate::key::make_internal_key(b"k", 1, crate::key::ValueKind::Put),
            &vec![0; n],
        );
        Block::new(b.finish(), Arc::from(Path::new("t")), 0).unwrap()
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let cache = BlockCache::new(SHARDS * 4 * (1000 + ENTRY_OVERHEAD + 64));
        let id = cache.new_id();
        for off in 0..1000u64 {
            cache.insert((id, off), block(1000));
        }
        assert!(cache.usage() <= cache.capacity());
        assert!(cache.get((id, 999)).is_some(), "the newest block stays");
        assert!(cache.get((id, 0)).is_none(), "the oldest block was evicted");
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
    }

    #[test]
    fn a_hit_protects_a_block_from_eviction() {
        let cache = BlockCache::new(SHARDS * 3 * (100 + ENTRY_OVERHEAD + 64));
        // Keys that land in one shard, so the recency order is shared.
        let id = cache.new_id();
        let shard_of = |k: CacheKey| {
            let h = k.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k.1.rotate_left(17);
            (h >> 32) as usize % SHARDS
        };
        let same: Vec<u64> = (0..10_000u64)
            .filter(|o| shard_of((id, *o)) == shard_of((id, 0)))
            .take(4)
            .collect();
        for o in &same[..3] {
            cache.insert((id, *o), block(100));
        }
        assert!(cache.get((id, same[0])).is_some());
        cache.insert((id, same[3]), block(100));
        assert!(cache.get((id, same[0])).is_some(), "recently used");
        assert!(
            cache.get((id, same[1])).is_none(),
            "least recently used went first"
        );
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = BlockCache::new(0);
        cache.insert((1, 0), block(10));
        assert!(cache.get((1, 0)).is_none());
    }
}
