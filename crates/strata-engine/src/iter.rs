//! The one iterator trait shared by memtables, blocks, tables and merges, over encoded internal
//! keys in [`compare_internal`](crate::key::compare_internal) order.

use crate::error::Result;

/// A cursor over (internal key, value) entries in internal-key order.
///
/// `key` and `value` may only be called while `valid` is true. An error leaves the iterator
/// invalid and is reported by the call that met it.
pub trait InternalIterator: Send {
    /// True while the cursor is on an entry.
    fn valid(&self) -> bool;
    /// Moves to the first entry.
    fn seek_to_first(&mut self) -> Result<()>;
    /// Moves to the first entry whose internal key is at or after `target`.
    fn seek(&mut self, target: &[u8]) -> Result<()>;
    /// Moves to the next entry.
    fn next(&mut self) -> Result<()>;
    /// The current encoded internal key.
    fn key(&self) -> &[u8];
    /// The current value (empty for tombstones).
    fn value(&self) -> &[u8];
}
