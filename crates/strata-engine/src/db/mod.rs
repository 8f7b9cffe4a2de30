//! [`Db`]: the store. This module holds the shared state and the public API; the write path
//! (group commit, memtable switches, stalls) is in `write`, reads and iterators in `read`,
//! opening and WAL replay in `open`, background flushes and compactions in `background`.

mod background;
mod open;
mod read;
mod waiter;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

pub use read::DbIterator;
pub use waiter::PendingWrite;

use crate::batch::WriteBatch;
use crate::cache::BlockCache;
use crate::compaction::{CompactionProgress, CompactionReport};
use crate::error::{Error, Result};
use crate::filename;
use crate::fs::{FileLock, FileSystem};
use crate::key::SeqNo;
use crate::memtable::Memtable;
use crate::options::{Options, WriteOptions};
use crate::stats::{Counters, LevelStats, Stats};
use crate::version::{Version, VersionSet};

/// What a read sees: the active memtable, the immutable ones (newest first) and the tables.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub mem: Arc<Memtable>,
    pub imms: Vec<Arc<Memtable>>,
    pub version: Arc<Version>,
}

/// State changed by flushes, compactions and memtable switches, under one mutex.
#[derive(Debug)]
pub(crate) struct DbState {
    pub versions: VersionSet,
    /// A compaction (automatic or manual) is running.
    pub compacting: bool,
    /// Manual compactions waiting: automatic ones hold back for them.
    pub manual_waiting: usize,
}

pub(crate) struct DbInner {
    pub dir: PathBuf,
    pub opts: Options,
    pub fs: Arc<dyn FileSystem>,
    pub cache: Arc<BlockCache>,
    _lock: Box<dyn FileLock>,
    pub super_version: RwLock<Arc<SuperVersion>>,
    pub state: Mutex<DbState>,
    /// Signalled when a flush or compaction finishes, or when background work appears.
    pub state_changed: Condvar,
    pub writer: write::WriteQueue,
    /// Highest sequence number visible to readers.
    pub last_seq: AtomicU64,
    pub snapshots: Mutex<BTreeMap<SeqNo, usize>>,
    /// Numbers of obsolete WAL files kept for reuse by the next memtable switches.
    pub recyclable_wals: Mutex<Vec<u64>>,
    poison: Mutex<Option<String>>,
    /// Set once `poison` holds a reason: the write path checks this on every write without
    /// taking the mutex.
    poisoned: AtomicBool,
    pub counters: Counters,
    pub shutdown: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock must not take readers down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DbInner {
    pub fn state(&self) -> MutexGuard<'_, DbState> {
        lock(&self.state)
    }

    pub fn super_version(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.super_version.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn set_super_version(&self, sv: SuperVersion) {
        *self
            .super_version
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(sv);
    }

    /// Refuses writes once an earlier failure made the in-memory state untrustworthy.
    pub fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match lock(&self.poison).as_ref() {
            Some(reason) => Err(Error::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    pub fn poison(&self, err: &Error) {
        let mut p = lock(&self.poison);
        if p.is_none() {
            tracing::error!(error = %err, "store poisoned; writes refused until reopened");
            *p = Some(err.to_string());
            self.poisoned.store(true, Ordering::Release);
        }
        drop(p);
        self.state_changed.notify_all();
    }

    /// The sequence numbers of the live snapshots, ascending.
    pub fn snapshot_seqs(&self) -> Vec<SeqNo> {
        lock(&self.snapshots).keys().copied().collect()
    }

    pub fn smallest_snapshot(&self) -> SeqNo {
        lock(&self.snapshots)
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.last_seq.load(Ordering::Acquire))
    }

    /// Deletes files no longer needed: WALs below the MANIFEST's log number, tables no version
    /// references, superseded MANIFESTs and temporary files. Only safe while no flush or
    /// compaction is writing (at open); afterwards each job removes exactly what it obsoleted.
    pub fn delete_orphans(&self, state: &DbState) -> Result<()> {
        let live: std::collections::HashSet<u64> =
            state.versions.live_tables().into_iter().collect();
        let log_number = state.versions.log_number();
        let manifest = state.versions.manifest_number();
        for name in self.fs.list_dir(&self.dir)? {
            let obsolete = match filename::parse(&name) {
                Some(filename::FileKind::Wal(n)) => n < log_number,
                Some(filename::FileKind::Table(n)) => !live.contains(&n),
                Some(filename::FileKind::Manifest(n)) => n != manifest,
                Some(filename::FileKind::Temp) => true,
                _ => false,
            };
            if obsolete {
                self.remove_file(&self.dir.join(&name));
            }
        }
        Ok(())
    }

    /// Keeps WAL `number`, no longer needed, for reuse, or removes it if enough are kept.
    pub fn retire_wal(&self, number: u64) {
        let mut pool = lock(&self.recyclable_wals);
        if pool.len() < self.opts.recycle_log_files {
            pool.push(number);
        } else {
            drop(pool);
            self.remove_file(&filename::wal(&self.dir, number));
        }
    }

    /// Starts WAL `number`, reusing a retired log file when one is kept.
    pub fn new_wal(&self, number: u64) -> Result<crate::wal::WalWriter> {
        let path = filename::wal(&self.dir, number);
        let retired = lock(&self.recyclable_wals).pop();
        if let Some(old) = retired {
            let old_path = filename::wal(&self.dir, old);
            match crate::wal::WalWriter::recycle(self.fs.as_ref(), &old_path, &path, number) {
                Ok(w) => return Ok(w),
                Err(e) => {
                    tracing::warn!(error = %e, "could not reuse a retired log; creating a new one");
                    if self.fs.exists(&old_path) {
                        self.remove_file(&old_path);
                    }
                }
            }
        }
        crate::wal::WalWriter::create(self.fs.as_ref(), &path, number)
    }

    /// Removes a file no longer needed; a failure only wastes space until the next open.
    pub fn remove_file(&self, path: &Path) {
        if let Err(e) = self.fs.remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove obsolete file");
        }
    }
}

/// An embedded LSM-tree key-value store. `Send + Sync`: share it by `Arc`.
///
/// ```
/// # fn main() -> strata_engine::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let db = strata_engine::Db::open(dir.path(), strata_engine::Options::default())?;
/// db.put(b"user:1", b"alice")?;
/// assert_eq!(db.get(b"user:1")?, Some(b"alice".to_vec()));
/// db.delete(b"user:1")?;
/// assert_eq!(db.get(b"user:1")?, None);
/// # Ok(()) }
/// ```
pub struct Db {
    inner: Arc<DbInner>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.inner.dir).finish()
    }
}

/// A consistent read view: reads through it see the store as it was when it was taken, and
/// compaction keeps the versions it needs until it is dropped.
pub struct Snapshot {
    inner: Arc<DbInner>,
    seq: SeqNo,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq).finish()
    }
}

impl Snapshot {
    /// The sequence number this snapshot reads at.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }

    /// Reads `key` as of the snapshot.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        read::get(&self.inner, key, self.seq)
    }

    /// Iterates `[start, end)` as of the snapshot (`None` for unbounded).
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<DbIterator> {
        read::iter(&self.inner, start, end, self.seq)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut snaps = lock(&self.inner.snapshots);
        if let Some(n) = snaps.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                snaps.remove(&self.seq);
            }
        }
    }
}

/// The first key after every key that starts with `prefix`, or `None` if there is none.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Db {
    /// Opens the store in `path`, creating it if allowed and missing, and replays its WAL.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let inner = Arc::new(open::open(path.as_ref(), opts)?);
        let threads = background::spawn(&inner)?;
        Ok(Db { inner, threads })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The directory inside the store left to the embedding application
    /// ([`filename::APP_DIR`]); not created by the engine.
    pub fn app_dir(&self) -> PathBuf {
        self.inner.dir.join(filename::APP_DIR)
    }

    /// Reads the newest value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        read::get(
            &self.inner,
            key,
            self.inner.last_seq.load(Ordering::Acquire),
        )
    }

    /// Reads the newest value of `key` if that needs no file read: from the memtables, the
    /// pinned filters and indexes and the block cache (RocksDB's `kBlockCacheTier`). `Ok(None)`
    /// means a data block the lookup needs is not cached; [`Db::get`] then reads it. For async
    /// callers, which can answer most reads on their own thread and send only the rest to a
    /// blocking pool.
    pub fn get_if_cached(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        let seq = self.inner.last_seq.load(Ordering::Acquire);
        Ok(match read::lookup(&self.inner, key, seq, false)? {
            read::Lookup::Value(v) => Some(v),
            read::Lookup::NeedsIo => None,
        })
    }

    /// Sets `key` to `value`, synced.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value)?;
        self.write(b, WriteOptions::default())
    }

    /// Deletes `key`, synced.
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key)?;
        self.write(b, WriteOptions::default())
    }

    /// Deletes every key in `[start, end)` with one range tombstone, synced.
    pub fn delete_range(&self, start: &[u8], end: &[u8]) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_range(start, end)?;
        self.write(b, WriteOptions::default())
    }

    /// Applies `batch` atomically: after a crash either all of it is there or none.
    pub fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<()> {
        write::write(&self.inner, batch, opts)
    }

    /// Queues `batch` like [`Db::write`] but returns at once: the returned future resolves to
    /// the outcome once the batch is committed (and synced, with `opts.sync`), without ever
    /// blocking the thread that polls it. The store's committer thread leads the group commits
    /// of such writes, so an async runtime's workers never wait in `fdatasync`. The batch's
    /// place in the order of writes is fixed by this call: a write queued later, from any
    /// thread, applies after it. An empty batch with `opts.sync` makes every earlier write
    /// durable, like [`Db::sync_wal`].
    pub fn write_queued(&self, batch: WriteBatch, opts: WriteOptions) -> PendingWrite {
        write::write_queued(&self.inner, batch, opts)
    }

    /// Waits until every write queued before the call (by [`Db::write_queued`] or a
    /// concurrent [`Db::write`]) is applied and visible to reads. A read-modify-write that
    /// excluded other writers of its keys calls this before reading, since an async writer may
    /// have queued its batch just before being excluded.
    pub fn wait_queued_writes(&self) -> Result<()> {
        write::wait_queued(&self.inner)
    }

    /// Makes every write acknowledged so far durable (one WAL sync, shared with concurrent
    /// writers through group commit). A server can apply a pipeline of writes with
    /// `sync = false`, then call this once before answering them all.
    pub fn sync_wal(&self) -> Result<()> {
        write::sync_wal(&self.inner)
    }

    /// Takes a snapshot of the current state.
    pub fn snapshot(&self) -> Snapshot {
        let mut snaps = lock(&self.inner.snapshots);
        let seq = self.inner.last_seq.load(Ordering::Acquire);
        *snaps.entry(seq).or_insert(0) += 1;
        Snapshot {
            inner: Arc::clone(&self.inner),
            seq,
        }
    }

    /// Iterates the keys in `[start, end)` (`None` for unbounded) at the current state.
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<DbIterator> {
        read::iter(
            &self.inner,
            start,
            end,
            self.inner.last_seq.load(Ordering::Acquire),
        )
    }

    /// Iterates every key that starts with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> Result<DbIterator> {
        let end = prefix_successor(prefix);
        self.range(Some(prefix), end.as_deref())
    }

    /// Writes the memtable to a table and waits until every full memtable is flushed.
    pub fn flush(&self) -> Result<()> {
        write::flush(&self.inner)
    }

    /// Compacts every table that may hold a key in `[start, end]` (unbounded where `None`) into
    /// one level, dropping shadowed versions and tombstones no snapshot needs. The memtable is
    /// flushed first. `progress` is called as the merge advances.
    pub fn compact_range(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        progress: &mut dyn FnMut(CompactionProgress),
    ) -> Result<CompactionReport> {
        self.flush()?;
        background::manual_compaction(&self.inner, start, end, progress)
    }

    /// Writes a consistent copy of the store to `dir` (which must not exist or be empty) by hard
    /// links: it holds every write acknowledged before the call. Open it like any store.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.flush()?;
        let dir = dir.as_ref();
        let fs = &self.inner.fs;
        if fs.exists(dir) && !fs.list_dir(dir)?.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "checkpoint directory {} is not empty",
                dir.display()
            )));
        }
        fs.create_dir_all(dir)?;
        let state = self.inner.state();
        state.versions.write_checkpoint(dir)
    }

    /// Counters and the shape of the tree.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let sv = self.inner.super_version();
        let g = Counters::get;
        let last_compaction = g(&c.last_compaction_micros);
        Stats {
            keys_written: g(&c.keys_written),
            keys_read: g(&c.keys_read),
            bloom_negatives: g(&c.bloom_negatives),
            bloom_false_positives: g(&c.bloom_false_positives),
            bloom_positives: g(&c.bloom_positives),
            flushes: g(&c.flushes),
            compactions: g(&c.compactions),
            compaction_bytes_read: g(&c.compaction_bytes_read),
            compaction_bytes_written: g(&c.compaction_bytes_written),
            flush_bytes_written: g(&c.flush_bytes_written),
            keys_removed: g(&c.keys_removed),
            bytes_reclaimed: g(&c.bytes_reclaimed),
            write_stalls: g(&c.write_stalls),
            write_slowdowns: g(&c.write_slowdowns),
            wal_bytes_written: g(&c.wal_bytes_written),
            wal_syncs: g(&c.wal_syncs),
            wal_records_skipped: g(&c.wal_records_skipped),
            user_bytes_written: g(&c.user_bytes_written),
            last_compaction: (last_compaction > 0)
                .then(|| std::time::Duration::from_micros(last_compaction)),
            memtable_bytes: std::iter::once(&sv.mem)
                .chain(sv.imms.iter())
                .map(|m| m.approximate_size() as u64)
                .sum(),
            immutable_memtables: sv.imms.len(),
            levels: sv
                .version
                .levels
                .iter()
                .map(|files| LevelStats {
                    files: files.len(),
                    bytes: files.iter().map(|f| f.desc.size).sum(),
                })
                .collect(),
            last_sequence: self.inner.last_seq.load(Ordering::Acquire),
            block_cache_hits: self.inner.cache.hits(),
            block_cache_misses: self.inner.cache.misses(),
            block_cache_bytes: self.inner.cache.usage() as u64,
            block_cache_capacity: self.inner.cache.capacity() as u64,
            pinned_table_bytes: sv
                .version
                .levels
                .iter()
                .flatten()
                .map(|f| f.table.pinned_bytes() as u64)
                .sum(),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        {
            // Take the lock so no background thread misses the wake-up between check and wait.
            let _state = self.inner.state();
            self.inner.state_changed.notify_all();
        }
        self.inner.writer.nudge_committer();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
