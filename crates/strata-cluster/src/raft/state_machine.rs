//! [`StateMachine`]: one group's replicated state, its key range in the node's engine (a
//! partition's user data, or the meta group's records: a [`Keyspace`]), and the snapshots that
//! carry it to lagging or new followers.
//!
//! Applying committed entries writes their effects on the group's range together with the
//! new applied log id and membership in one engine batch, so after a crash the range and the
//! applied index always agree. That batch is not synced on its own: the entries are durable in
//! the log, and the engine's ordered WAL makes the batch durable with the next synced write. On a
//! leader, whose own entries may be committed in openraft's view before its log has synced them,
//! no entry is applied before that sync is done ([`UnsyncedTail::wait_synced`]).
//!
//! A snapshot is a scan of the group's range at an engine snapshot, streamed by
//! [`snapshot_codec`] into a file in `app/raft-snapshots` in the store's directory; openraft sends
//! it to a follower in chunks read from that file, and the follower writes them into a file of
//! its own. Installing one replaces the range atomically: a range delete, the snapshot's pairs
//! and the applied state in one synced batch, written only once the whole file checked out.
//! The last snapshot built or installed stays on disk, not in memory, for followers that need
//! it; after a restart openraft rebuilds one when the log has been purged, and the files an
//! earlier run left are removed.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits fix StorageError as the error type; boxing it here would only add a conversion"
)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StoredMembership,
};
use strata_engine::{Db, WriteBatch, WriteOptions};

use crate::partition::{GroupId, Keyspace, raft_key};
use crate::raft::types::{
    Command, IncrError, Node, NodeId, Response, StorageError, TypeConfig, Write, decode, encode,
    storage_error,
};
use crate::raft::unsynced::UnsyncedTail;
use crate::raft::{lock, snapshot_codec};

/// Sub-tag of the applied state (last applied log id and membership).
const APPLIED: u8 = b'a';

type Entry = openraft::Entry<TypeConfig>;
/// The directory, under the store's application directory, of every group's snapshot files.
const SNAPSHOT_DIR: &str = "raft-snapshots";

/// The last snapshot built or installed: its metadata and file.
type StoredSnapshot = (SnapshotMeta<NodeId, Node>, PathBuf);
/// The applied log id and membership, as stored.
type AppliedState = (Option<LogId<NodeId>>, StoredMembership<NodeId, Node>);

/// The state machine of one group. Clones share the engine and the snapshot files.
#[derive(Debug, Clone)]
pub struct StateMachine {
    db: Arc<Db>,
    keyspace: Keyspace,
    group: GroupId,
    /// Where the group's snapshot files go.
    dir: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    /// The file a snapshot from the leader is being received into.
    incoming: Arc<Mutex<Option<PathBuf>>>,
    /// Numbers the snapshot files (and the ids of snapshots built).
    files: Arc<AtomicU64>,
    /// The group's log entries not synced yet: none of them is applied.
    unsynced: UnsyncedTail,
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
    /// The state machine of `keyspace` over `db`, applying no entry of `unsynced` (its log's)
    /// before it is synced. Snapshot files of the group that an earlier run left in the store's
    /// directory are removed: nothing refers to them any more.
    pub fn new(db: Arc<Db>, keyspace: Keyspace, unsynced: UnsyncedTail) -> Self {
        let group = keyspace.group();
        let dir = db.app_dir().join(SNAPSHOT_DIR);
        remove_group_files(&dir, group);
        StateMachine {
            db,
            keyspace,
            group,
            dir,
            current: Arc::new(Mutex::new(None)),
            incoming: Arc::new(Mutex::new(None)),
            files: Arc::new(AtomicU64::new(0)),
            unsynced,
        }
    }

    /// A new file name for this group's snapshot files: `g<group>-<n>.<kind>`.
    fn new_file(&self, kind: &str) -> (u64, PathBuf) {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        (n, self.dir.join(format!("g{}-{n}.{kind}", self.group)))
    }

    /// Makes `path` the current snapshot's file, removing the one it replaces (a follower
    /// still reading that one keeps its open file).
    fn set_current(&self, meta: SnapshotMeta<NodeId, Node>, path: PathBuf) {
        let old = lock(&self.current).replace((meta, path));
        if let Some((_, old)) = old {
            remove_file(&old);
        }
    }

    /// The current snapshot, its file opened. [`set_current`](Self::set_current) swaps in a
    /// newer snapshot under the same lock and removes the old file only after letting go of it,
    /// so the file opened here is the current one and stays readable once removed. openraft
    /// must never hear "no snapshot" from a group that has one: a leader whose log is purged
    /// takes that for a fatal storage error.
    fn open_current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = lock(&self.current);
        let Some((meta, path)) = current.as_ref() else {
            return Ok(None);
        };
        let file = File::open(path).map_err(snapshot_io)?;
        Ok(Some(Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
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
        let (n, path) = self.new_file("snap");
        let building = path.with_extension("building");
        let written = (|| -> Result<u64, StorageError> {
            std::fs::create_dir_all(&self.dir).map_err(snapshot_io)?;
            let file = File::create(&building).map_err(snapshot_io)?;
            let mut encoder =
                snapshot_codec::Encoder::new(BufWriter::new(file)).map_err(snapshot_io)?;
            for item in iter {
                let (k, v) = item.map_err(sm_read)?;
                if let Some(user) = self.keyspace.user_key(&k) {
                    encoder.push(user, &v).map_err(snapshot_io)?;
                }
            }
            let mut out = encoder.finish().map_err(snapshot_io)?;
            out.flush().map_err(snapshot_io)?;
            // Not synced: after a crash the file is removed and a new snapshot built.
            let bytes = out.get_ref().metadata().map_err(snapshot_io)?.len();
            std::fs::rename(&building, &path).map_err(snapshot_io)?;
            Ok(bytes)
        })();
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(e) => {
                remove_file(&building);
                return Err(e);
            }
        };
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}-{n}", self.group, id.leader_id, id.index),
            None => format!("{}-none-{n}", self.group),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        tracing::info!(group = self.group, bytes, snapshot = %meta.snapshot_id, "built snapshot");
        let file = File::open(&path).map_err(snapshot_io)?;
        self.set_current(meta.clone(), path);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }

    /// Installs the snapshot received into `file`, then keeps that file (at `path`) as the
    /// snapshot this node offers; a snapshot that does not check out is removed.
    fn install_blocking(
        &self,
        meta: SnapshotMeta<NodeId, Node>,
        file: File,
        path: Option<PathBuf>,
    ) -> Result<(), StorageError> {
        let installed = self.replace_range(&meta, file);
        let Some(path) = path else {
            return installed;
        };
        if installed.is_err() {
            remove_file(&path);
            return installed;
        }
        let (_, current) = self.new_file("snap");
        match std::fs::rename(&path, &current) {
            Ok(()) => self.set_current(meta, current),
            Err(e) => {
                // The range now holds this snapshot and openraft purges the log up to it, so it
                // must stay on offer (see `open_current`): under the name it was received as.
                tracing::warn!(
                    group = self.group,
                    error = %e,
                    "cannot rename the installed snapshot's file; offering it as received"
                );
                self.set_current(meta, path);
            }
        }
        Ok(())
    }

    /// Replaces the group's range with the snapshot in `file`, in one synced batch.
    fn replace_range(
        &self,
        meta: &SnapshotMeta<NodeId, Node>,
        mut file: File,
    ) -> Result<(), StorageError> {
        let sig = Some(meta.signature());
        let snap_err = |e: &dyn std::fmt::Display| {
            storage_error(
                ErrorSubject::Snapshot(sig.clone()),
                ErrorVerb::Write,
                &SnapshotError(e.to_string()),
            )
        };
        let (start, end) = self.keyspace.range();
        let mut batch = WriteBatch::new();
        batch.delete_range(&start, &end).map_err(|e| snap_err(&e))?;
        let len = file
            .seek(SeekFrom::End(0))
            .and_then(|len| file.seek(SeekFrom::Start(0)).map(|_| len))
            .map_err(|e| snap_err(&e))?;
        // The pairs go into the batch as they are read; it is written only if the whole file
        // checks out. Keys and values are within the engine's limits (the reader checks).
        let mut refused = None;
        snapshot_codec::read_pairs(BufReader::new(&file), len, &mut |k, v| {
            if refused.is_none()
                && let Err(e) = batch.put(self.keyspace.key(k), v)
            {
                refused = Some(e);
            }
        })
        .map_err(|e| snap_err(&e))?;
        if let Some(e) = refused {
            return Err(snap_err(&e));
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
        tracing::info!(group = self.group, bytes = len, snapshot = %meta.snapshot_id, "installed snapshot");
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

fn snapshot_io(e: std::io::Error) -> StorageError {
    storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, &e)
}

/// Removes a snapshot file; one that is gone already is not an error.
fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove a snapshot file");
    }
}

/// Removes every snapshot file of `group` in `dir` (files `g<group>-*`).
fn remove_group_files(dir: &Path, group: GroupId) {
    let prefix = format!("g{group}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_file(&entry.path());
        }
    }
}

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
        let Some(last) = entries.last().map(|e| e.log_id.index) else {
            return Ok(Vec::new());
        };
        self.unsynced
            .wait_synced(last)
            .await
            .map_err(|e| sm_write(std::io::Error::other(e)))?;
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let (_, path) = self.new_file("incoming");
        let file = self
            .blocking({
                let path = path.clone();
                move |sm| {
                    std::fs::create_dir_all(&sm.dir).map_err(snapshot_io)?;
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(snapshot_io)
                }
            })
            .await?;
        // A transfer that was given up on leaves its file: the new one replaces it.
        let abandoned = lock(&self.incoming).replace(path);
        if let Some(old) = abandoned {
            remove_file(&old);
        }
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let meta = meta.clone();
        let mut snapshot = *snapshot;
        // Writes openraft made through the async file may still be buffered.
        tokio::io::AsyncWriteExt::flush(&mut snapshot)
            .await
            .map_err(snapshot_io)?;
        let file = snapshot.into_std().await;
        let path = lock(&self.incoming).take();
        self.blocking(move |sm| sm.install_blocking(meta, file, path))
            .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.blocking(StateMachine::open_current).await
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

    /// Every file of the store's snapshot directory.
    fn snapshot_files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(
            dir.join(strata_engine::filename::APP_DIR)
                .join(SNAPSHOT_DIR),
        )
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
        names.sort();
        names
    }

    async fn read_all(mut file: tokio::fs::File) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        file.seek(SeekFrom::Start(0)).await.unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    /// A snapshot is built into a file, received into another through the async file
    /// openraft writes its chunks to, and installed: the receiver's range is replaced, its
    /// own copy becomes the snapshot it offers, and no other file is left. A damaged transfer
    /// is refused and changes nothing; a restart removes the files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn snapshots_travel_as_files_and_replace_the_range() {
        use tokio::io::AsyncWriteExt;
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = open(dir_a.path());
        let entries = (1..=200u64)
            .map(|i| entry(i, put(format!("k{i:03}").as_bytes(), &[b'v'; 50])))
            .collect::<Vec<_>>();
        a.apply(entries).await.unwrap();
        let built = a.build_snapshot().await.unwrap();
        assert_eq!(snapshot_files(dir_a.path()).len(), 1);
        let bytes = read_all(*built.snapshot).await;

        let mut b = open(dir_b.path());
        b.apply(vec![entry(1, put(b"stale", b"x"))]).await.unwrap();
        let mut rx = b.begin_receiving_snapshot().await.unwrap();
        for chunk in bytes.chunks(1000) {
            rx.write_all(chunk).await.unwrap();
        }
        b.install_snapshot(&built.meta, rx).await.unwrap();
        let key = |k: &[u8]| Keyspace::Partition(3).key(k);
        assert_eq!(b.db.get(&key(b"k001")).unwrap(), Some(vec![b'v'; 50]));
        assert_eq!(b.db.get(&key(b"k200")).unwrap(), Some(vec![b'v'; 50]));
        assert_eq!(b.db.get(&key(b"stale")).unwrap(), None);
        let (applied, _) = b.applied_state().await.unwrap();
        assert_eq!(applied, built.meta.last_log_id);
        let offered = b.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(offered.meta, built.meta);
        assert_eq!(read_all(*offered.snapshot).await, bytes);
        let files = snapshot_files(dir_b.path());
        assert!(files.len() == 1 && files[0].ends_with(".snap"), "{files:?}");

        let mut rx = b.begin_receiving_snapshot().await.unwrap();
        let mut damaged = bytes.clone();
        damaged[bytes.len() / 2] ^= 1;
        rx.write_all(&damaged).await.unwrap();
        assert!(b.install_snapshot(&built.meta, rx).await.is_err());
        assert_eq!(b.db.get(&key(b"k100")).unwrap(), Some(vec![b'v'; 50]));
        assert_eq!(
            snapshot_files(dir_b.path()),
            files,
            "the damaged file is removed"
        );

        drop((a, b));
        let _a = open(dir_a.path());
        assert!(snapshot_files(dir_a.path()).is_empty());
    }

    /// While new snapshots replace the current one (each removing the file before it), a
    /// reader asking for the current snapshot always gets one, and it reads in full. openraft
    /// takes "no snapshot" from a leader whose log is purged for a fatal storage error: before
    /// the snapshot's file was opened under the lock, this reader got none in each of three runs,
    /// and a soak of the membership simulation saw a partition's leader stop that way as it
    /// went to send a snapshot to a joining node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_current_snapshot_is_always_there_while_newer_ones_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        let entries = (1..=50u64)
            .map(|i| entry(i, put(format!("k{i:03}").as_bytes(), &[b'v'; 20])))
            .collect::<Vec<_>>();
        sm.apply(entries).await.unwrap();
        let expected = read_all(*sm.build_snapshot().await.unwrap().snapshot).await;
        let built = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let builds = tokio::spawn({
            let (mut builder, built, stop) = (sm.clone(), Arc::clone(&built), Arc::clone(&stop));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    builder.build_snapshot().await.unwrap();
                    built.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Both sides go on until each has done its share, so they overlap however the two
        // tasks are scheduled.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut asked = 0;
        while asked < 100 || built.load(Ordering::Relaxed) < 100 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{asked} reads, {built:?} builds"
            );
            let current = sm.get_current_snapshot().await.unwrap();
            let snapshot = current.expect("a snapshot was built, so there is a current one");
            assert_eq!(read_all(*snapshot.snapshot).await, expected);
            asked += 1;
        }
        stop.store(true, Ordering::Relaxed);
        builds.await.unwrap();
    }

    fn open(dir: &std::path::Path) -> StateMachine {
        let db = Db::open(dir, strata_engine::Options::default()).unwrap();
        StateMachine::new(
            Arc::new(db),
            Keyspace::Partition(3),
            UnsyncedTail::default(),
        )
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
