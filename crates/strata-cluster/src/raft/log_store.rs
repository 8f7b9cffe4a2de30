//! [`LogStore`]: one Raft group's log, vote, committed id and purge point, kept in the node's
//! engine under the group's reserved prefix ([`raft_key`]).
//!
//! Durability contract: `save_vote`, `append` and `truncate` return (and `append` signals its
//! callback) only after a synced engine write, so a vote or an entry reported durable survives a
//! crash. Every group on a node shares the engine's write-ahead log, so concurrent appends of
//! different groups share one `fdatasync` through the engine's group commit. `purge` is written
//! without a sync of its own: the WAL is ordered, so it becomes durable with the next synced
//! write. `save_committed` writes nothing at once: openraft awaits it on its core task at every
//! commit, and a write there would wait for whatever sync is in flight. The committed id is kept
//! in memory and rides in the next append's batch (and `purge`'s); losing the latest one only
//! makes a restarted node learn it again from the leader.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits fix StorageError as the error type; boxing it here would only add a conversion"
)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, Vote};
use strata_engine::{Db, WriteBatch, WriteOptions};

use crate::partition::{GroupId, raft_key};
use crate::raft::types::{NodeId, StorageError, TypeConfig, decode, encode, storage_error};

/// Sub-tag of log entries (followed by the index, u64 big-endian).
const ENTRY: u8 = b'e';
/// Sub-tag of the vote.
const VOTE: u8 = b'v';
/// Sub-tag of the committed log id.
const COMMITTED: u8 = b'c';
/// Sub-tag of the last purged log id.
const PURGED: u8 = b'p';

type Entry = openraft::Entry<TypeConfig>;

/// The log of one Raft group. Clones share the engine and the cached log tail, so the log
/// reader openraft asks for is a clone.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Db>,
    group: GroupId,
    tail: Arc<Mutex<Tail>>,
}

/// What is cached in memory so `get_log_state` needs no scan.
#[derive(Debug, Default, Clone)]
struct Tail {
    last_purged: Option<LogId<NodeId>>,
    last: Option<LogId<NodeId>>,
    /// The latest committed id openraft saved, and whether it is newer than the stored one.
    committed: Option<LogId<NodeId>>,
    committed_dirty: bool,
}

fn entry_key(group: GroupId, index: u64) -> Vec<u8> {
    raft_key(group, ENTRY, &index.to_be_bytes())
}

/// The first key after every log entry of the group.
fn entries_end(group: GroupId) -> Vec<u8> {
    raft_key(group, ENTRY + 1, &[])
}

fn io<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
) -> impl FnOnce(E) -> StorageError {
    move |e| storage_error(subject, verb, &e)
}

impl LogStore {
    /// Opens group `group`'s log in `db`, scanning its entries once to find the tail.
    pub fn open(db: Arc<Db>, group: GroupId) -> Result<Self, StorageError> {
        let last_purged = read_value::<LogId<NodeId>>(&db, &raft_key(group, PURGED, &[]))
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, &Boxed(e)))?;
        let committed = read_value::<Option<LogId<NodeId>>>(&db, &raft_key(group, COMMITTED, &[]))
            .map(Option::flatten)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Read, &Boxed(e)))?;
        let mut last = last_purged;
        let iter = db
            .range(Some(&entry_key(group, 0)), Some(&entries_end(group)))
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
        for item in iter {
            let (_, v) = item.map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
            let entry: Entry = decode(&v).map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
            last = Some(entry.log_id);
        }
        Ok(LogStore {
            db,
            group,
            tail: Arc::new(Mutex::new(Tail {
                last_purged,
                last,
                committed,
                committed_dirty: false,
            })),
        })
    }

    fn tail(&self) -> Tail {
        self.tail.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn set_tail(&self, f: impl FnOnce(&mut Tail)) {
        if let Ok(mut t) = self.tail.lock() {
            f(&mut t);
        }
    }

    /// Adds the committed id saved since the last write, if any, to `batch`.
    fn add_committed(&self, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let Some(committed) = self
            .tail
            .lock()
            .ok()
            .and_then(|mut t| std::mem::take(&mut t.committed_dirty).then_some(t.committed))
        else {
            return Ok(());
        };
        let bytes = encode(&committed).map_err(io(ErrorSubject::Store, ErrorVerb::Write))?;
        batch
            .put(raft_key(self.group, COMMITTED, &[]), bytes)
            .map_err(io(ErrorSubject::Store, ErrorVerb::Write))?;
        Ok(())
    }

    /// Writes through the engine's async path: queued in order with every other write, its
    /// group commit (shared with the other groups' appends) led by the engine's committer.
    async fn write(
        &self,
        batch: WriteBatch,
        opts: WriteOptions,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        self.db
            .write_queued(batch, opts)
            .await
            .map_err(io(subject, ErrorVerb::Write))
    }
}

/// Reads and decodes the value at `key`, `None` when absent.
fn read_value<T: serde::de::DeserializeOwned>(
    db: &Db,
    key: &[u8],
) -> Result<Option<T>, Box<dyn std::error::Error + Send + Sync>> {
    match db.get(key)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(decode(&bytes)?)),
    }
}

/// A boxed error as a `std::error::Error` that [`storage_error`] accepts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Boxed(Box<dyn std::error::Error + Send + Sync>);

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1).map(|e| entry_key(self.group, e)),
            Bound::Excluded(&i) => Some(entry_key(self.group, i)),
            Bound::Unbounded => None,
        }
        .unwrap_or_else(|| entries_end(self.group));
        let start = entry_key(self.group, start);
        if start >= end {
            return Ok(Vec::new());
        }
        let iter = self
            .db
            .range(Some(&start), Some(&end))
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
        let mut entries = Vec::new();
        for item in iter {
            let (_, v) = item.map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
            entries.push(decode(&v).map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let tail = self.tail();
        Ok(LogState {
            last_purged_log_id: tail.last_purged,
            last_log_id: tail.last.or(tail.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        let bytes = encode(vote).map_err(io(ErrorSubject::Vote, ErrorVerb::Write))?;
        batch
            .put(raft_key(self.group, VOTE, &[]), bytes)
            .map_err(io(ErrorSubject::Vote, ErrorVerb::Write))?;
        self.write(batch, WriteOptions::default(), ErrorSubject::Vote)
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        read_value(&self.db, &raft_key(self.group, VOTE, &[]))
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, &Boxed(e)))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        self.set_tail(|t| {
            t.committed = committed;
            t.committed_dirty = true;
        });
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.tail().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::new();
        let mut last = None;
        for entry in entries {
            let bytes = encode(&entry).map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
            batch
                .put(entry_key(self.group, entry.log_id.index), bytes)
                .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
            last = Some(entry.log_id);
        }
        if batch.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        self.add_committed(&mut batch)?;
        let result = self
            .db
            .write_queued(batch, WriteOptions::default())
            .await
            .map_err(std::io::Error::other);
        match result {
            Ok(()) => {
                self.set_tail(|t| t.last = last);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = storage_error(ErrorSubject::Logs, ErrorVerb::Write, &e);
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        tracing::debug!(group = self.group, %log_id, "truncating log");
        let mut batch = WriteBatch::new();
        batch
            .delete_range(entry_key(self.group, log_id.index), entries_end(self.group))
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
        self.write(batch, WriteOptions::default(), ErrorSubject::Logs)
            .await?;
        // The new tail is the entry before the cut, or the purge point.
        let prev = match log_id.index.checked_sub(1) {
            Some(i) => self
                .try_get_log_entries(i..=i)
                .await?
                .pop()
                .map(|e| e.log_id),
            None => None,
        };
        self.set_tail(|t| t.last = prev.or(t.last_purged));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        tracing::debug!(group = self.group, %log_id, "purging log");
        let mut batch = WriteBatch::new();
        let bytes = encode(&log_id).map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
        batch
            .put(raft_key(self.group, PURGED, &[]), bytes)
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
        let end = match log_id.index.checked_add(1) {
            Some(i) => entry_key(self.group, i),
            None => entries_end(self.group),
        };
        batch
            .delete_range(entry_key(self.group, 0), end)
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
        self.add_committed(&mut batch)?;
        self.write(batch, WriteOptions::no_sync(), ErrorSubject::Logs)
            .await?;
        self.set_tail(|t| {
            t.last_purged = Some(log_id);
            if t.last.is_none_or(|l| l.index <= log_id.index) {
                t.last = Some(log_id);
            }
        });
        Ok(())
    }
}
