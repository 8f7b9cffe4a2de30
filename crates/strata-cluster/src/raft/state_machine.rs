//! [`StateMachine`]: one group's replicated state, its key range in the node's engine (a
//! partition's user data, or the meta group's records: a [`Keyspace`]), and the snapshots that
//! carry it to lagging or new followers.
//!
//! Applying committed entries writes their effects on the group's range together with the
//! new applied log id and membership in one engine batch, so after a crash the range and the
//! applied index always agree. That batch is not synced on its own: the entries are durable in
//! the log, and the engine's ordered WAL makes the batch durable with the next synced write.
//!
//! A snapshot is a scan of the group's range at an engine snapshot, encoded by
//! [`snapshot_codec`]; openraft streams it in chunks. Installing one
//! replaces the range atomically: a range delete, the snapshot's pairs and the applied state in
//! one synced batch. The last snapshot built or installed is kept in memory for followers that
//! need it; after a restart openraft rebuilds one when the log has been purged.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits fix StorageError as the error type; boxing it here would only add a conversion"
)]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StoredMembership,
};
use strata_engine::{Db, WriteBatch, WriteOptions};

use crate::partition::{GroupId, Keyspace, raft_key};
use crate::raft::snapshot_codec;
use crate::raft::types::{
    Command, IncrError, Node, NodeId, Response, StorageError, TypeConfig, Write, decode, encode,
    storage_error,
};

/// Sub-tag of the applied state (last applied log id and membership).
const APPLIED: u8 = b'a';

type Entry = openraft::Entry<TypeConfig>;
/// The last snapshot built or installed: its metadata and bytes.
type StoredSnapshot = (SnapshotMeta<NodeId, Node>, Vec<u8>);
/// The applied log id and membership, as stored.
type AppliedState = (Option<LogId<NodeId>>, StoredMembership<NodeId, Node>);

/// The state machine of one group. Clones share the engine and the current snapshot.
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: Arc<Db>,
    keyspace: Keyspace,
    group: GroupId,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    built: Arc<std::sync::atomic::AtomicU64>,
}

fn io<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
) -> impl FnOnce(E) -> StorageError {
    move |e| storage_error(subject, verb, &e)
}

/// The applied state stored as `bytes`; nothing applied yet when there are none.
fn decode_applied(bytes: Option<Vec<u8>>) -> Result<AppliedState, StorageError> {
    match bytes {
        None => Ok((None, StoredMembership::default())),
        Some(b) => decode(&b).map_err(sm_read),
    }
}

fn sm_read<E: std::error::Error + 'static>(e: E) -> StorageError {
    storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, &e)
}

fn sm_write<E: std::error::Error + 'static>(e: E) -> StorageError {
    storage_error(ErrorSubject::StateMachine, ErrorVerb::Write, &e)
}

impl StateMachine {
    /// The state machine of `keyspace` over `db`.
    pub fn new(db: Arc<Db>, keyspace: Keyspace) -> Self {
        StateMachine {
            db,
            keyspace,
            group: keyspace.group(),
            current: Arc::new(Mutex::new(None)),
            built: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The keyspace this machine applies to.
    pub fn keyspace(&self) -> Keyspace {
        self.keyspace
    }

    fn applied_key(&self) -> Vec<u8> {
        raft_key(self.group, APPLIED, &[])
    }

    fn read_applied(
        &self,
        snap: Option<&strata_engine::Snapshot>,
    ) -> Result<AppliedState, StorageError> {
        let key = self.applied_key();
        let bytes = match snap {
            Some(s) => s.get(&key),
            None => self.db.get(&key),
        }
        .map_err(sm_read)?;
        decode_applied(bytes)
    }

    /// The engine batch and the responses of applying `entries`: their effects on the
    /// group's range and the new applied state, for one write. With
    /// [`Reads::CachedOnly`], `None` when a read the entries need is not in memory.
    fn prepare_apply(
        &self,
        entries: &[Entry],
        reads: Reads,
    ) -> Result<Option<(WriteBatch, Vec<Response>)>, StorageError> {
        let mut overlay = Overlay {
            db: &self.db,
            keyspace: self.keyspace,
            reads,
            missed: false,
            cleared: false,
            pending: HashMap::new(),
        };
        let applied_key = self.applied_key();
        let (mut last_applied, mut membership) = decode_applied(overlay.read(&applied_key)?)?;
        if overlay.missed {
            return Ok(None);
        }
        let mut batch = WriteBatch::new();
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => Response::None,
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Response::None
                }
                EntryPayload::Normal(cmd) => overlay.apply(cmd, &mut batch)?,
            };
            responses.push(response);
            if overlay.missed {
                return Ok(None);
            }
        }
        let state: AppliedState = (last_applied, membership);
        batch
            .put(applied_key, encode(&state).map_err(sm_write)?)
            .map_err(sm_write)?;
        Ok(Some((batch, responses)))
    }

    /// Applies `entries` on a blocking thread, reading from disk where needed.
    fn apply_blocking(&self, entries: &[Entry]) -> Result<Vec<Response>, StorageError> {
        let (batch, responses) = self
            .prepare_apply(entries, Reads::Any)?
            .ok_or_else(|| sm_read(SnapshotError("a blocking apply read nothing".into())))?;
        self.db
            .write(batch, WriteOptions::no_sync())
            .map_err(sm_write)?;
        Ok(responses)
    }

    fn build_blocking(&self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snap = self.db.snapshot();
        let (last_applied, membership) = self.read_applied(Some(&snap))?;
        let (start, end) = self.keyspace.range();
        let iter = snap.range(Some(&start), Some(&end)).map_err(sm_read)?;
        let mut encoder = snapshot_codec::Encoder::new();
        for item in iter {
            let (k, v) = item.map_err(sm_read)?;
            if let Some(user) = self.keyspace.user_key(&k) {
                encoder.push(user, &v);
            }
        }
        let data = encoder.finish();
        let n = self
            .built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}-{n}", self.group, id.leader_id, id.index),
            None => format!("{}-none-{n}", self.group),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        tracing::info!(group = self.group, bytes = data.len(), snapshot = %meta.snapshot_id, "built snapshot");
        if let Ok(mut cur) = self.current.lock() {
            *cur = Some((meta.clone(), data.clone()));
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    fn install_blocking(
        &self,
        meta: SnapshotMeta<NodeId, Node>,
        data: Vec<u8>,
    ) -> Result<(), StorageError> {
        let sig = Some(meta.signature());
        let snap_err = |e: &dyn std::fmt::Display| {
            storage_error(
                ErrorSubject::Snapshot(sig.clone()),
                ErrorVerb::Write,
                &SnapshotError(e.to_string()),
            )
        };
        let pairs = snapshot_codec::decode(&data).map_err(|e| snap_err(&e))?;
        let (start, end) = self.keyspace.range();
        let mut batch = WriteBatch::new();
        batch.delete_range(&start, &end).map_err(|e| snap_err(&e))?;
        for (k, v) in pairs {
            batch
                .put(self.keyspace.key(k), v)
                .map_err(|e| snap_err(&e))?;
        }
        let state: AppliedState = (meta.last_log_id, meta.last_membership.clone());
        batch
            .put(
                self.applied_key(),
                encode(&state).map_err(|e| snap_err(&e))?,
            )
            .map_err(|e| snap_err(&e))?;
        self.db
            .write(batch, WriteOptions::default())
            .map_err(|e| snap_err(&e))?;
        tracing::info!(group = self.group, snapshot = %meta.snapshot_id, "installed snapshot");
        if let Ok(mut cur) = self.current.lock() {
            *cur = Some((meta, data));
        }
        Ok(())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateMachine) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(io(ErrorSubject::StateMachine, ErrorVerb::Write))?
    }
}

/// A snapshot that could not be decoded or written.
#[derive(Debug, thiserror::Error)]
#[error("snapshot: {0}")]
struct SnapshotError(String);

/// Which reads an apply may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// Any, from disk if need be (on a blocking thread).
    Any,
    /// Only what the engine answers from memory ([`Db::get_if_cached`]), on an async worker.
    CachedOnly,
}

/// The writes of the entries applied so far in one `apply` call, so a later entry's checks see
/// an earlier entry's writes before the batch reaches the engine.
struct Overlay<'a> {
    db: &'a Db,
    keyspace: Keyspace,
    reads: Reads,
    /// A [`Reads::CachedOnly`] read needed the disk: what was computed since is void.
    missed: bool,
    cleared: bool,
    pending: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay<'_> {
    /// Reads the engine key `key` as the overlay's mode allows; a miss in
    /// [`Reads::CachedOnly`] sets `missed` and reads as absent.
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.reads {
            Reads::Any => self.db.get(key).map_err(sm_read),
            Reads::CachedOnly => match self.db.get_if_cached(key).map_err(sm_read)? {
                Some(value) => Ok(value),
                None => {
                    self.missed = true;
                    Ok(None)
                }
            },
        }
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        if self.cleared {
            return Ok(None);
        }
        self.read(&self.keyspace.key(key))
    }

    fn put(
        &mut self,
        batch: &mut WriteBatch,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StorageError> {
        batch.put(self.keyspace.key(key), value).map_err(sm_write)?;
        self.pending.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, batch: &mut WriteBatch, key: &[u8]) -> Result<(), StorageError> {
        batch.delete(self.keyspace.key(key)).map_err(sm_write)?;
        self.pending.insert(key.to_vec(), None);
        Ok(())
    }

    /// Applies one command. Commands were validated by the proposer, but a log entry is applied
    /// on every replica, so anything that could still fail here (a check, a counter that is not
    /// an integer) is a deterministic outcome in the response, never an error.
    fn apply(&mut self, cmd: &Command, batch: &mut WriteBatch) -> Result<Response, StorageError> {
        match cmd {
            Command::Batch { checks, writes } => {
                for (i, check) in checks.iter().enumerate() {
                    if !check.holds(self.get(check.key())?.as_deref()) {
                        return Ok(Response::Batch {
                            applied: false,
                            failed_check: u32::try_from(i).ok(),
                            deleted: 0,
                        });
                    }
                }
                let mut deleted = 0;
                for w in writes {
                    match w {
                        Write::Put(k, v) => self.put(batch, k, v)?,
                        Write::Delete(k) => {
                            if self.get(k)?.is_some() {
                                deleted += 1;
                            }
                            self.delete(batch, k)?;
                        }
                    }
                }
                Ok(Response::Batch {
                    applied: true,
                    failed_check: None,
                    deleted,
                })
            }
            Command::Incr { key, delta } => {
                let current = match self.get(key)? {
                    None => 0,
                    Some(bytes) => match parse_counter(&bytes) {
                        Some(n) => n,
                        None => return Ok(Response::Incr(Err(IncrError::NotAnInteger))),
                    },
                };
                let Some(next) = current.checked_add(*delta) else {
                    return Ok(Response::Incr(Err(IncrError::Overflow)));
                };
                self.put(batch, key, next.to_string().as_bytes())?;
                Ok(Response::Incr(Ok(next)))
            }
            Command::Clear => {
                let (start, end) = self.keyspace.range();
                batch.delete_range(&start, &end).map_err(sm_write)?;
                self.pending.clear();
                self.cleared = true;
                Ok(Response::Cleared)
            }
            Command::Multi(cmds) => cmds
                .iter()
                .map(|cmd| self.apply(cmd, batch))
                .collect::<Result<Vec<_>, _>>()
                .map(Response::Multi),
        }
    }
}

/// Parses a counter the way Redis does: optional `-`, decimal digits, no `+`, no spaces.
fn parse_counter(bytes: &[u8]) -> Option<i64> {
    if bytes.first() == Some(&b'+') {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        self.blocking(|sm| sm.build_blocking()).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<AppliedState, StorageError> {
        self.read_applied(None)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Most entries read nothing (blind writes) or what is in memory: apply them here and
        // queue the batch through the engine's async path; the rest go to the blocking pool.
        if let Some((batch, responses)) = self.prepare_apply(&entries, Reads::CachedOnly)? {
            self.db
                .write_queued(batch, WriteOptions::no_sync())
                .await
                .map_err(sm_write)?;
            return Ok(responses);
        }
        self.blocking(move |sm| sm.apply_blocking(&entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let meta = meta.clone();
        let data = snapshot.into_inner();
        self.blocking(move |sm| sm.install_blocking(meta, data))
            .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let cur = self.current.lock().ok().and_then(|c| c.clone());
        Ok(cur.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};

    use super::*;
    use crate::raft::types::Write;

    fn entry(index: u64, cmd: Command) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(cmd),
        }
    }

    fn put(key: &[u8], value: &[u8]) -> Command {
        Command::Batch {
            checks: Vec::new(),
            writes: vec![Write::Put(key.to_vec(), value.to_vec())],
        }
    }

    fn incr(key: &[u8], delta: i64) -> Command {
        Command::Incr {
            key: key.to_vec(),
            delta,
        }
    }

    fn open(dir: &std::path::Path) -> StateMachine {
        let db = Db::open(dir, strata_engine::Options::default()).unwrap();
        StateMachine::new(Arc::new(db), Keyspace::Partition(3))
    }

    /// Entries whose reads are in memory apply on the async worker; one whose read needs the
    /// disk (a counter flushed to a table before a restart, so nothing is cached) falls back to
    /// the blocking pool and reads the same value.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn applies_from_memory_or_from_disk_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let responses = sm
            .apply(vec![
                entry(1, put(b"n", b"5")),
                entry(2, incr(b"n", 1)),
                entry(3, put(b"other", b"x")),
            ])
            .await
            .unwrap();
        assert!(matches!(responses[1], Response::Incr(Ok(6))));
        sm.db.flush().unwrap();
        drop(sm);

        let mut sm = open(dir.path());
        let probe = Keyspace::Partition(3).key(b"n");
        assert_eq!(sm.db.get_if_cached(&probe).unwrap(), None, "cache is cold");
        let responses = sm.apply(vec![entry(4, incr(b"n", 10))]).await.unwrap();
        assert!(matches!(responses[0], Response::Incr(Ok(16))));
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|id| id.index), Some(4));
        assert_eq!(sm.db.get(&probe).unwrap(), Some(b"16".to_vec()));
    }
}
