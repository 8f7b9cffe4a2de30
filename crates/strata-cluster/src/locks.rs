//! A striped table of reader-writer locks over keys. Read-modify-write requests (preconditions,
//! increments, counted deletes) lock their keys' stripes exclusively for the read, the check and
//! the write; blind writes lock them shared, so they still run side by side and share the
//! engine's group-commit fsync, yet never slip between a conditional request's read and write.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use xxhash_rust::xxh3::xxh3_64;

/// Stripes in the default table: enough that unrelated keys rarely share one.
pub const DEFAULT_STRIPES: usize = 1024;

/// The lock table.
#[derive(Debug)]
pub struct KeyLocks {
    stripes: Vec<RwLock<()>>,
}

/// Guards held for a set of keys; the locks are released when it is dropped.
#[derive(Debug)]
pub enum KeyGuards<'a> {
    /// Shared guards (blind writes).
    Shared(Vec<RwLockReadGuard<'a, ()>>),
    /// Exclusive guards (read-modify-write).
    Exclusive(Vec<RwLockWriteGuard<'a, ()>>),
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self::new(DEFAULT_STRIPES)
    }
}

impl KeyLocks {
    /// A table of `stripes` locks (at least one).
    pub fn new(stripes: usize) -> Self {
        KeyLocks {
            stripes: (0..stripes.max(1)).map(|_| RwLock::new(())).collect(),
        }
    }

    /// The stripe indexes of `keys`, sorted and without duplicates, so that every caller takes
    /// locks in the same order and none can deadlock.
    fn stripe_ids<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<usize> {
        let n = self.stripes.len() as u64;
        let mut ids: Vec<usize> = keys
            .into_iter()
            .map(|k| (xxh3_64(k) % n) as usize)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Locks the stripes of `keys` shared. Blocks the calling thread.
    pub fn shared<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> KeyGuards<'_> {
        KeyGuards::Shared(
            self.stripe_ids(keys)
                .into_iter()
                .filter_map(|i| self.stripes.get(i))
                .map(|l| l.read().unwrap_or_else(std::sync::PoisonError::into_inner))
                .collect(),
        )
    }

    /// Locks the stripes of `keys` shared if none is held exclusively; never blocks. For async
    /// callers, which must not wait for a read-modify-write on their thread.
    pub fn try_shared<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Option<KeyGuards<'_>> {
        let mut guards = Vec::new();
        for i in self.stripe_ids(keys) {
            let stripe = self.stripes.get(i)?;
            guards.push(match stripe.try_read() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            });
        }
        Some(KeyGuards::Shared(guards))
    }

    /// Locks the stripes of `keys` exclusively. Blocks the calling thread.
    pub fn exclusive<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> KeyGuards<'_> {
        KeyGuards::Exclusive(
            self.stripe_ids(keys)
                .into_iter()
                .filter_map(|i| self.stripes.get(i))
                .map(|l| l.write().unwrap_or_else(std::sync::PoisonError::into_inner))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_sorted_and_unique() {
        let locks = KeyLocks::new(4);
        let keys: Vec<&[u8]> = vec![b"a", b"b", b"a", b"c", b"d", b"e"];
        let ids = locks.stripe_ids(keys);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn exclusive_then_shared_on_other_thread_waits() {
        let locks = std::sync::Arc::new(KeyLocks::new(8));
        let g = locks.exclusive([b"k".as_slice()]);
        let l2 = std::sync::Arc::clone(&locks);
        let t = std::thread::spawn(move || {
            let _g = l2.shared([b"k".as_slice()]);
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!t.is_finished());
        drop(g);
        t.join().unwrap();
    }
}
