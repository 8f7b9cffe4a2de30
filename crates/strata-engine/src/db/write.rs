//! The write path. Writers queue their batches; the first in line becomes the leader, takes the
//! whole queue as one group, appends every batch to the WAL, syncs once if any of them asked for
//! it (group commit), inserts them into the memtable and publishes the new sequence number. The
//! leader also makes room: it switches to a new memtable and WAL when the current one is full,
//! and slows or stops writers when flushes or L0 compaction fall behind. Async writers queue
//! the same way but never lead: groups that start with one are led by the committer thread.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::waiter::{Notify, PendingWrite, TaskWaiter, ThreadWaiter, Turn};
use super::{DbInner, SuperVersion, lock};
use crate::batch::{BatchOp, MAX_STORED_KEY_LEN, WriteBatch};
use crate::error::{Error, Result};
use crate::key::ValueKind;
use crate::memtable::Memtable;
use crate::options::WriteOptions;
use crate::range_del::RangeTombstone;
use crate::stats::Counters;
use crate::wal::WalWriter;

/// Most bytes of batches one leader commits as a group.
const MAX_GROUP_BYTES: usize = 4 << 20;

struct Request {
    batch: WriteBatch,
    sync: bool,
    /// Switch to a new memtable even if the current one is not full (a flush was asked for).
    force_switch: bool,
    notify: Notify,
}

#[derive(Default)]
struct QueueState {
    pending: VecDeque<Request>,
    /// A leader is committing; while it is, the queue is handed from leader to leader and is
    /// never empty-with-no-leader.
    leader_active: bool,
}

/// The writers' queue, the WAL only its leader touches, and the committer thread that leads
/// on behalf of async writers.
pub(crate) struct WriteQueue {
    queue: Mutex<QueueState>,
    wal: Mutex<WalWriter>,
    committer: OnceLock<Arc<ThreadWaiter>>,
}

impl WriteQueue {
    pub fn new(wal: WalWriter) -> Self {
        WriteQueue {
            queue: Mutex::new(QueueState::default()),
            wal: Mutex::new(wal),
            committer: OnceLock::new(),
        }
    }

    /// Registers the committer thread; until then async writes are refused.
    pub fn set_committer(&self, thread: std::thread::Thread) {
        let _ = self
            .committer
            .set(Arc::new(ThreadWaiter::for_thread(thread)));
    }

    /// Wakes the committer so that it sees the shutdown flag.
    pub fn nudge_committer(&self) {
        if let Some(c) = self.committer.get() {
            c.nudge();
        }
    }

    /// Gives the lead to the writer at the front of the queue (the committer if that is an
    /// async writer), or records that nobody leads when the queue is empty.
    fn hand_over(&self, st: &mut QueueState) {
        match st.pending.front().map(|r| &r.notify) {
            Some(Notify::Thread(t)) => t.tell(Turn::Lead),
            Some(Notify::Task(_)) => match self.committer.get() {
                Some(c) => c.tell(Turn::Lead),
                // Unreachable: async writes are queued only once the committer exists.
                None => st.leader_active = false,
            },
            None => st.leader_active = false,
        }
    }
}

/// Refuses a batch with a key longer than the store takes (its options may reserve room for a
/// key prefix below the engine's own limit).
fn check_keys(inner: &DbInner, batch: &WriteBatch) -> Result<()> {
    let max_key_len = inner.opts.max_key_len();
    if max_key_len < MAX_STORED_KEY_LEN {
        batch.check_key_lengths(max_key_len)?;
    }
    Ok(())
}

pub(crate) fn write(inner: &DbInner, batch: WriteBatch, opts: WriteOptions) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    check_keys(inner, &batch)?;
    submit(inner, batch, opts.sync, false)
}

/// Makes every write acknowledged so far durable, sharing the sync with concurrent writers.
pub(crate) fn sync_wal(inner: &DbInner) -> Result<()> {
    submit(inner, WriteBatch::new(), true, false)
}

/// Switches to a new memtable and waits until it and every older one are flushed.
pub(crate) fn flush(inner: &DbInner) -> Result<()> {
    let target = inner.super_version().mem.log_number();
    submit(inner, WriteBatch::new(), false, true)?;
    let mut st = inner.state();
    loop {
        inner.check_poison()?;
        if inner.shutdown.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        if inner
            .super_version()
            .imms
            .iter()
            .all(|m| m.log_number() > target)
        {
            return Ok(());
        }
        st = inner
            .state_changed
            .wait_timeout(st, Duration::from_millis(50))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

fn submit(inner: &DbInner, batch: WriteBatch, sync: bool, force_switch: bool) -> Result<()> {
    inner.check_poison()?;
    let q = &inner.writer;
    let me = Arc::new(ThreadWaiter::current());
    let mut st = lock(&q.queue);
    st.pending.push_back(Request {
        batch,
        sync,
        force_switch,
        notify: Notify::Thread(Arc::clone(&me)),
    });
    if st.leader_active {
        drop(st);
        match me.wait() {
            Turn::Done(r) => return r,
            Turn::Lead => {}
        }
    } else {
        st.leader_active = true;
        drop(st);
    }
    // This writer leads: its request is at the front of the queue, so the group includes it.
    lead(inner, Some(&me))
}

/// Queues `batch` for the committer thread and returns at once; see [`PendingWrite`].
pub(crate) fn write_queued(inner: &DbInner, batch: WriteBatch, opts: WriteOptions) -> PendingWrite {
    if batch.is_empty() && !opts.sync {
        return PendingWrite::ready(Ok(()));
    }
    if let Err(e) = check_keys(inner, &batch).and_then(|()| inner.check_poison()) {
        return PendingWrite::ready(Err(e));
    }
    let q = &inner.writer;
    let Some(committer) = q.committer.get() else {
        return PendingWrite::ready(Err(Error::Closed));
    };
    let waiter = Arc::new(TaskWaiter::default());
    let mut st = lock(&q.queue);
    if inner.shutdown.load(Ordering::SeqCst) {
        return PendingWrite::ready(Err(Error::Closed));
    }
    st.pending.push_back(Request {
        batch,
        sync: opts.sync,
        force_switch: false,
        notify: Notify::Task(Arc::clone(&waiter)),
    });
    if !st.leader_active {
        st.leader_active = true;
        committer.tell(Turn::Lead);
    }
    drop(st);
    PendingWrite::queued(waiter)
}

/// Returns once every write queued before the call has been applied and is visible to reads.
/// Async writes are acknowledged to nobody before that, but a read-modify-write that locked
/// its keys after such a write was queued must not read around it.
pub(crate) fn wait_queued(inner: &DbInner) -> Result<()> {
    if !lock(&inner.writer.queue).leader_active {
        // Nothing is queued or being committed: every write is applied.
        return Ok(());
    }
    submit(inner, WriteBatch::new(), false, false)
}

/// The committer thread: leads every group that starts with an async writer, until the store
/// shuts down and nothing is left queued.
pub(crate) fn commit_loop(inner: Arc<DbInner>) {
    // `Db::open` registers this thread right after spawning it.
    let me = loop {
        if let Some(me) = inner.writer.committer.get() {
            break Arc::clone(me);
        }
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    };
    loop {
        if let Some(Turn::Lead) = me.take() {
            // The committer never queues a request of its own: the outcome is all others'.
            let _ = lead(&inner, None);
            continue;
        }
        if inner.shutdown.load(Ordering::SeqCst) {
            let st = lock(&inner.writer.queue);
            if !st.leader_active && st.pending.is_empty() {
                return;
            }
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Commits the group at the front of the queue, tells its writers the outcome and hands the
/// lead on. `me` is the blocking writer leading, whose outcome is returned rather than told;
/// `None` for the committer thread.
fn lead(inner: &DbInner, me: Option<&Arc<ThreadWaiter>>) -> Result<()> {
    let q = &inner.writer;
    let mut st = lock(&q.queue);
    let mut group = Vec::new();
    let mut bytes = 0;
    while let Some(r) = st.pending.front() {
        if !group.is_empty() && bytes + r.batch.encoded_len() > MAX_GROUP_BYTES {
            break;
        }
        bytes += r.batch.encoded_len();
        group.extend(st.pending.pop_front());
    }
    drop(st);
    let result = commit_group(inner, &mut group);
    for r in &group {
        if !me.is_some_and(|me| r.notify.is(me)) {
            r.notify.done(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(clone_error(e)),
            });
        }
    }
    q.hand_over(&mut lock(&q.queue));
    result
}

/// Errors are not `Clone` (they carry `io::Error`); the group's other writers get the kind
/// where it can be kept.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::io(
            path.clone(),
            std::io::Error::new(source.kind(), source.to_string()),
        ),
        Error::Poisoned(s) => Error::Poisoned(s.clone()),
        Error::Closed => Error::Closed,
        other => Error::Poisoned(other.to_string()),
    }
}

fn commit_group(inner: &DbInner, group: &mut [Request]) -> Result<()> {
    inner.check_poison()?;
    let mut wal = lock(&inner.writer.wal);
    let force = group.iter().any(|r| r.force_switch);
    make_room(inner, &mut wal, force)?;
    let sv = inner.super_version();

    let first_seq = inner.last_seq.load(Ordering::Acquire) + 1;
    let mut seq = first_seq;
    let mut sync = false;
    let mut wal_bytes = 0;
    let io = (|| {
        for r in group.iter_mut() {
            // An empty request asks only for a sync (or a memtable switch).
            sync |= r.sync;
            if r.batch.is_empty() {
                continue;
            }
            let n = r.batch.len() as u64;
            let record = r.batch.encode_with_seq(seq);
            wal_bytes += record.len() as u64;
            wal.add_record(record)?;
            seq += n;
        }
        if sync { wal.sync() } else { wal.flush() }
    })();
    if let Err(e) = io {
        // The WAL's contents past the last good sync are unknown: refuse writes until reopened.
        inner.poison(&e);
        return Err(e);
    }
    drop(wal);

    let c = &inner.counters;
    Counters::add(&c.wal_bytes_written, wal_bytes);
    if sync {
        Counters::add(&c.wal_syncs, 1);
    }
    let (written, user_bytes) = insert_group(&sv.mem, first_seq, group);
    Counters::add(&c.keys_written, written);
    Counters::add(&c.user_bytes_written, user_bytes);
    inner
        .last_seq
        .store(first_seq + written - 1, Ordering::Release);
    Ok(())
}

/// Inserts the group's operations into `mem`, numbered from `first_seq` in order; returns how
/// many there were and the user bytes they carried.
///
/// A point write that a later write of the same key in the same group supersedes is left out
/// of the memtable (the WAL has it): readers see the group only once its last sequence number
/// is published, and every snapshot is taken at a published number, so no reader could ever
/// see that version. Clients overwriting a hot key (counters, sessions, `redis-benchmark`'s one
/// key) then cost one memtable entry per group instead of one per write.
fn insert_group(mem: &Memtable, first_seq: u64, group: &[Request]) -> (u64, u64) {
    let mut user_bytes = 0;
    let mut seq = first_seq;
    if group.iter().map(|r| r.batch.len()).sum::<usize>() < 2 {
        // One write supersedes nothing: no need to look for overwrites.
        for op in group.iter().flat_map(|r| r.batch.iter().flatten()) {
            user_bytes += apply_op(mem, seq, op);
            seq += 1;
        }
        return (seq - first_seq, user_bytes);
    }
    let mut ops = Vec::new();
    for op in group.iter().flat_map(|r| r.batch.iter().flatten()) {
        ops.push((seq, op));
        seq += 1;
    }
    let written = seq - first_seq;
    let mut later: HashSet<&[u8], BuildXxh3> =
        HashSet::with_capacity_and_hasher(ops.len(), BuildXxh3);
    for &(seq, op) in ops.iter().rev() {
        let superseded = match op {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => !later.insert(key),
            BatchOp::DeleteRange { .. } => false,
        };
        user_bytes += if superseded {
            op_user_bytes(op)
        } else {
            apply_op(mem, seq, op)
        };
    }
    (written, user_bytes)
}

/// The user bytes `op` carries.
fn op_user_bytes(op: BatchOp<'_>) -> u64 {
    match op {
        BatchOp::Put { key, value } => (key.len() + value.len()) as u64,
        BatchOp::Delete { key } => key.len() as u64,
        BatchOp::DeleteRange { start, end } => (start.len() + end.len()) as u64,
    }
}

/// Hashes a group's keys with XXH3 (the default SipHash costs more than it needs to here: the
/// keys come from the store's own writers, not from an adversary choosing collisions in a
/// table that lives for one group).
#[derive(Clone, Copy, Default)]
struct BuildXxh3;

impl std::hash::BuildHasher for BuildXxh3 {
    type Hasher = xxhash_rust::xxh3::Xxh3;

    fn build_hasher(&self) -> Self::Hasher {
        xxhash_rust::xxh3::Xxh3::new()
    }
}

/// Inserts one operation into `mem`; returns the user bytes it carried.
pub(crate) fn apply_op(mem: &Memtable, seq: u64, op: BatchOp<'_>) -> u64 {
    match op {
        BatchOp::Put { key, value } => mem.add(seq, ValueKind::Put, key, value),
        BatchOp::Delete { key } => mem.add(seq, ValueKind::Delete, key, &[]),
        BatchOp::DeleteRange { start, end } => mem.add_range_tombstone(RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            seq,
        }),
    }
    op_user_bytes(op)
}

/// Waits while L0 or the flush queue is over its limits, and switches memtables when full.
fn make_room(inner: &DbInner, wal: &mut WalWriter, force: bool) -> Result<()> {
    let opts = &inner.opts;
    let mut slowed = false;
    let mut stalled = false;
    loop {
        inner.check_poison()?;
        if inner.shutdown.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let sv = inner.super_version();
        let l0 = sv.version.levels[0].len();
        let full = sv.mem.approximate_size() >= opts.write_buffer_size;
        let wait = if opts.auto_compaction && l0 >= opts.l0_stop_trigger {
            true
        } else if opts.auto_compaction && l0 >= opts.l0_slowdown_trigger && !slowed {
            // Let compaction catch up a little before L0 reaches the stop trigger.
            slowed = true;
            Counters::add(&inner.counters.write_slowdowns, 1);
            std::thread::sleep(Duration::from_millis(1));
            continue;
        } else if !full && (!force || sv.mem.is_empty()) {
            return Ok(());
        } else {
            sv.imms.len() >= opts.max_immutable_memtables.max(1)
        };
        if wait {
            if !stalled {
                stalled = true;
                Counters::add(&inner.counters.write_stalls, 1);
            }
            let st = inner.state();
            inner.state_changed.notify_all();
            let _ = inner
                .state_changed
                .wait_timeout(st, Duration::from_millis(20));
            continue;
        }
        return switch_memtable(inner, wal);
    }
}

fn switch_memtable(inner: &DbInner, wal: &mut WalWriter) -> Result<()> {
    let st_result = (|| {
        let mut st = inner.state();
        let number = st.versions.new_file_number();
        let new_wal = inner.new_wal(number)?;
        // Sync the old log before writes move on: a later synced write then also makes every
        // earlier write durable, so a power loss always leaves a prefix of the history.
        wal.sync()?;
        *wal = new_wal;
        // Read the super version under the state lock: one read before it may still list a
        // memtable the flush thread has since retired, which would then be flushed twice.
        let sv = inner.super_version();
        let mut imms = vec![Arc::clone(&sv.mem)];
        imms.extend(sv.imms.iter().cloned());
        inner.set_super_version(SuperVersion {
            mem: Arc::new(Memtable::new(number, inner.opts.write_buffer_size)),
            imms,
            version: Arc::clone(&sv.version),
        });
        inner.state_changed.notify_all();
        Ok(())
    })();
    if let Err(e) = &st_result {
        inner.poison(e);
    }
    st_result
}
