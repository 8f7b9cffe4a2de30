//! [`LogStore`]: one Raft group's log, vote, committed id and purge point, kept in the node's
//! engine under the group's reserved prefix ([`raft_key`]).
//!
//! Durability contract: `save_vote`, `append` and `truncate` return (and `append` signals its
//! callback) only after a synced engine write, so a vote or an entry reported durable survives a
//! crash, with one exception: a leader's own entries after the first of its term are reported
//! at once and synced while they replicate, held back meanwhile by [`UnsyncedTail`] (see there
//! why that is safe). Every group on a node shares the engine's write-ahead log, so concurrent
//! appends of different groups share one `fdatasync` through the engine's group commit. `purge`
//! is written without a sync of its own: the WAL is ordered, so it becomes durable with the next
//! synced write. `save_committed` writes nothing at once: openraft awaits it on its core task at
//! every commit, and a write there would wait for whatever sync is in flight. The committed id is
//! kept in memory and rides in the next append's batch (and `purge`'s); losing the latest one
//! only makes a restarted node learn it again from the leader. A restarted node never resumes a
//! leadership it held (see [`not_resumed`]).

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
use crate::raft::lock;
use crate::raft::types::{NodeId, StorageError, TypeConfig, decode, encode, storage_error};
use crate::raft::unsynced::UnsyncedTail;

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
    /// This node's id: entries of its own leadership may be written ahead of their sync.
    node: NodeId,
    tail: Arc<Mutex<Tail>>,
    unsynced: UnsyncedTail,
}

/// What is cached in memory so `get_log_state` needs no scan.
#[derive(Debug, Clone)]
struct Tail {
    last_purged: Option<LogId<NodeId>>,
    last: Option<LogId<NodeId>>,
    /// The latest committed id openraft saved, and whether it is newer than the stored one.
    committed: Option<LogId<NodeId>>,
    committed_dirty: bool,
    /// The vote last saved, or as loaded at open ([`not_resumed`]).
    vote: Option<Vote<NodeId>>,
    /// Numbers the writes that change the log, in the order they are queued.
    tickets: u64,
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
    /// Opens group `group`'s log in `db` on node `node`, scanning its entries once to find the
    /// tail.
    pub fn open(db: Arc<Db>, group: GroupId, node: NodeId) -> Result<Self, StorageError> {
        let vote = read_value::<Vote<NodeId>>(&db, &raft_key(group, VOTE, &[]))
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, &Boxed(e)))?
            .map(|v| not_resumed(v, node));
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
            node,
            tail: Arc::new(Mutex::new(Tail {
                last_purged,
                last,
                committed,
                committed_dirty: false,
                vote,
                tickets: 0,
            })),
            unsynced: UnsyncedTail::default(),
        })
    }

    /// The group's entries written ahead of their sync, for its state machine and network.
    pub fn unsynced(&self) -> UnsyncedTail {
        self.unsynced.clone()
    }

    fn tail(&self) -> Tail {
        lock(&self.tail).clone()
    }

    fn set_tail(&self, f: impl FnOnce(&mut Tail)) {
        f(&mut lock(&self.tail));
    }

    /// The next write's ticket.
    fn ticket(&self) -> u64 {
        let mut t = lock(&self.tail);
        t.tickets += 1;
        t.tickets
    }

    /// Whether `entries` are this node's own as the leader of its current vote, appended after
    /// one of its own already in the log: they may be written ahead of their sync.
    fn own_entries_after_the_first(&self, entries: &[Entry]) -> bool {
        let t = lock(&self.tail);
        let Some(leader) = t.vote.as_ref().and_then(|v| own_leadership(v, self.node)) else {
            return false;
        };
        t.last.is_some_and(|l| l.leader_id == *leader)
            && entries.iter().all(|e| e.log_id.leader_id == *leader)
    }

    /// Adds the committed id saved since the last write, if any, to `batch`.
    fn add_committed(&self, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let Some(committed) = ({
            let mut t = lock(&self.tail);
            std::mem::take(&mut t.committed_dirty).then_some(t.committed)
        }) else {
            return Ok(());
        };
        let bytes = encode(&committed).map_err(io(ErrorSubject::Store, ErrorVerb::Write))?;
        batch
            .put(raft_key(self.group, COMMITTED, &[]), bytes)
            .map_err(io(ErrorSubject::Store, ErrorVerb::Write))?;
        Ok(())
    }

    /// Writes `entries` to the log, returning once openraft may be told they are flushed: after
    /// their synced write, or at once for a leader's own entries after the first of its term
    /// (synced in the background meanwhile, held back by [`UnsyncedTail`] until then).
    async fn write_entries(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(());
        };
        let mut batch = WriteBatch::new();
        for entry in &entries {
            let bytes = encode(entry).map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
            batch
                .put(entry_key(self.group, entry.log_id.index), bytes)
                .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
        }
        self.add_committed(&mut batch)?;
        let ahead_of_sync = self.own_entries_after_the_first(&entries);
        let ticket = self.ticket();
        let written = self.db.write_queued(batch, WriteOptions::default());
        if !ahead_of_sync {
            written
                .await
                .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
            self.unsynced.synced(ticket);
            self.set_tail(|t| t.last = Some(last));
            return Ok(());
        }
        let prev = lock(&self.tail).last.replace(last);
        self.unsynced.push(ticket, prev, entries);
        let unsynced = self.unsynced.clone();
        let group = self.group;
        tokio::spawn(async move {
            match written.await {
                Ok(()) => unsynced.synced(ticket),
                Err(e) => {
                    tracing::error!(group, error = %e, "syncing the leader's log failed");
                    unsynced.failed(e.to_string());
                }
            }
        });
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

/// `vote` as a restarting `node` loads it: a leadership of its own comes back uncommitted, so
/// openraft starts the node as a follower and it must win a new term before it leads again.
///
/// openraft 0.9 would resume such a leadership at once, in the same term, from the commit index
/// its state machine had applied. After a power loss both are wrong: the leader may have lost
/// entries it had sent to followers ahead of their sync ([`UnsyncedTail`]), and would give their
/// log ids to other entries, which breaks Raft's log matching; and since applies are not synced
/// (the log is) the commit index it starts from may lie below writes it acknowledged, so its
/// reads would miss them. A new term starts with an entry the leader must commit first.
fn not_resumed(vote: Vote<NodeId>, node: NodeId) -> Vote<NodeId> {
    match own_leadership(&vote, node) {
        Some(leader) => Vote::new(leader.term, node),
        None => vote,
    }
}

/// The leader id of `vote` if it is `node`'s own leadership, granted by a quorum.
fn own_leadership(vote: &Vote<NodeId>, node: NodeId) -> Option<&openraft::LeaderId<NodeId>> {
    let leader = vote.leader_id();
    (vote.is_committed() && leader.voted_for() == Some(node)).then_some(leader)
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
        // The first index past the range; `None`: unbounded.
        let end_index = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        let end = end_index.map_or_else(|| entries_end(self.group), |e| entry_key(self.group, e));
        let start_key = entry_key(self.group, start);
        if start_key >= end {
            return Ok(Vec::new());
        }
        // Taken before the engine is read: an entry leaves the unsynced tail only once the
        // engine shows it, so each entry of the range is in one or the other (or both).
        let unsynced = self.unsynced.entries(start, end_index.unwrap_or(u64::MAX));
        let iter = self
            .db
            .range(Some(&start_key), Some(&end))
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
        let mut entries: Vec<Entry> = Vec::new();
        for item in iter {
            let (_, v) = item.map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?;
            entries.push(decode(&v).map_err(io(ErrorSubject::Logs, ErrorVerb::Read))?);
        }
        let last = entries.last().map(|e| e.log_id.index);
        entries.extend(unsynced.into_iter().filter(|e| Some(e.log_id.index) > last));
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
        let ticket = self.ticket();
        self.write(batch, WriteOptions::default(), ErrorSubject::Vote)
            .await?;
        self.unsynced.synced(ticket);
        self.set_tail(|t| t.vote = Some(*vote));
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.tail().vote)
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
        let result = self.write_entries(entries.into_iter().collect()).await;
        callback.log_io_completed(match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        });
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        tracing::debug!(group = self.group, %log_id, "truncating log");
        let mut batch = WriteBatch::new();
        batch
            .delete_range(entry_key(self.group, log_id.index), entries_end(self.group))
            .map_err(io(ErrorSubject::Logs, ErrorVerb::Write))?;
        self.unsynced.truncate_from(log_id.index);
        let ticket = self.ticket();
        self.write(batch, WriteOptions::default(), ErrorSubject::Logs)
            .await?;
        self.unsynced.synced(ticket);
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on the first broken assumption"
    )]

    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, EntryPayload};
    use strata_engine::fs::FaultFs;

    use super::*;
    use crate::partition::Keyspace;
    use crate::raft::state_machine::StateMachine;

    /// Partition 0's group.
    const GROUP: GroupId = 1;

    /// Node 1's store and its log of partition 0 on `disk`.
    fn open(disk: &FaultFs) -> (Arc<Db>, LogStore) {
        let opts = strata_engine::Options {
            fs: Arc::new(disk.clone()),
            ..Default::default()
        };
        let db = Arc::new(Db::open("/store", opts).unwrap());
        let log = LogStore::open(Arc::clone(&db), GROUP, 1).unwrap();
        (db, log)
    }

    fn log_id(term: u64, leader: NodeId, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, leader), index)
    }

    fn blank(term: u64, leader: NodeId, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, leader, index),
            payload: EntryPayload::Blank,
        }
    }

    async fn indexes(log: &mut LogStore) -> Vec<u64> {
        let entries = log.try_get_log_entries(..).await.unwrap();
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn a_leaders_own_entries_are_reported_before_their_sync_and_held_back_until_it() {
        let disk = FaultFs::new();
        let (db, mut log) = open(&disk);
        let mut sm = StateMachine::new(Arc::clone(&db), Keyspace::Partition(0), log.unsynced());
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        // The first entry of the term is reported once synced; it applies at once.
        log.write_entries(vec![blank(2, 1, 1)]).await.unwrap();
        sm.apply(vec![blank(2, 1, 1)]).await.unwrap();

        // The disk stops syncing. The leader's next entries are still reported at once...
        disk.set_fail_syncs(true);
        log.write_entries(vec![blank(2, 1, 2), blank(2, 1, 3)])
            .await
            .unwrap();
        // ... read back (from memory: the engine shows nothing it has not synced)...
        assert_eq!(indexes(&mut log).await, [1, 2, 3]);
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 1, 3)));
        // ... but followers hear of no commit past the synced entry, and none of them applies.
        assert_eq!(
            log.unsynced().commit_bound(Some(log_id(2, 1, 3))),
            Some(log_id(2, 1, 1))
        );
        let err = sm.apply(vec![blank(2, 1, 2)]).await.unwrap_err();
        assert!(
            err.to_string().contains("the leader's log sync failed"),
            "held back, not tried: {err}"
        );

        // A power loss takes them; nobody had acted on them.
        drop((sm, log, db));
        disk.power_loss();
        disk.set_fail_syncs(false);
        let (_db, mut log) = open(&disk);
        assert_eq!(indexes(&mut log).await, [1]);
    }

    #[tokio::test]
    async fn held_back_entries_apply_once_synced_and_are_then_read_from_the_engine() {
        let disk = FaultFs::new();
        let (db, mut log) = open(&disk);
        let mut sm = StateMachine::new(Arc::clone(&db), Keyspace::Partition(0), log.unsynced());
        log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        log.write_entries(vec![blank(3, 1, 1)]).await.unwrap();
        log.write_entries(vec![blank(3, 1, 2)]).await.unwrap();
        sm.apply(vec![blank(3, 1, 1), blank(3, 1, 2)])
            .await
            .unwrap();
        assert!(log.unsynced().entries(0, u64::MAX).is_empty());
        assert_eq!(
            log.unsynced().commit_bound(Some(log_id(3, 1, 2))),
            Some(log_id(3, 1, 2))
        );
        drop((sm, log, db));
        disk.power_loss();
        let (_db, mut log) = open(&disk);
        assert_eq!(indexes(&mut log).await, [1, 2]);
    }

    #[tokio::test]
    async fn a_restarted_leader_loads_its_vote_uncommitted_and_a_follower_its_own() {
        let disk = FaultFs::new();
        let (db, mut log) = open(&disk);
        log.save_vote(&Vote::new_committed(4, 1)).await.unwrap();
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(4, 1))
        );
        drop((log, db));
        let (db, mut log) = open(&disk);
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 1)));
        // Nor are its entries written ahead of their sync until it leads again.
        disk.set_fail_syncs(true);
        assert!(log.write_entries(vec![blank(4, 1, 1)]).await.is_err());
        drop((log, db));
        disk.power_loss();
        disk.set_fail_syncs(false);

        let (db, mut log) = open(&disk);
        log.save_vote(&Vote::new_committed(5, 2)).await.unwrap();
        drop((log, db));
        let (_db, mut log) = open(&disk);
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(5, 2))
        );
    }

    #[tokio::test]
    async fn a_followers_entries_and_a_leaders_first_are_synced_before_they_are_reported() {
        let disk = FaultFs::new();
        let (_db, mut log) = open(&disk);
        // A follower of node 2.
        log.save_vote(&Vote::new_committed(2, 2)).await.unwrap();
        disk.set_fail_syncs(true);
        assert!(log.write_entries(vec![blank(2, 2, 1)]).await.is_err());

        let disk = FaultFs::new();
        let (_db, mut log) = open(&disk);
        // This node's leadership, whose first entry is not in the log yet.
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        disk.set_fail_syncs(true);
        assert!(log.write_entries(vec![blank(2, 1, 1)]).await.is_err());
    }
}
