//! Background work: the committer thread leads group commits for async writers (see `write`),
//! one thread flushes immutable memtables to L0 tables, another runs automatic
//! compactions; manual compactions share the compaction machinery. A failure in either thread
//! poisons the store, since what is on disk may no longer match what readers were told.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{DbInner, DbState, SuperVersion};
use crate::cache::BlockCache;
use crate::compaction::job::{self, JobContext};
use crate::compaction::output::OutputWriter;
use crate::compaction::{CompactionProgress, CompactionReport, CompactionTask, picker};
use crate::error::{Error, Result};
use crate::filename;
use crate::fs::FileSystem;
use crate::key::{SeqNo, parse_internal_key};
use crate::memtable::Memtable;
use crate::stats::Counters;
use crate::table::{Table, TableOptions};
use crate::version::{FileDesc, VersionEdit};

const IDLE_WAIT: Duration = Duration::from_millis(500);

pub(crate) fn spawn(inner: &Arc<DbInner>) -> Result<Vec<JoinHandle<()>>> {
    let spawn = |name: &str, f: fn(Arc<DbInner>)| {
        let inner = Arc::clone(inner);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(inner))
            .map_err(|e| Error::io(inner_dir(name), e))
    };
    let committer = spawn("strata-commit", super::write::commit_loop)?;
    inner.writer.set_committer(committer.thread().clone());
    Ok(vec![
        committer,
        spawn("strata-flush", flush_loop)?,
        spawn("strata-compact", compaction_loop)?,
    ])
}

fn inner_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("<thread {name}>"))
}

/// A table a flush wrote: its description for the MANIFEST and the open table.
pub(crate) type FlushedTable = (FileDesc, Arc<Table>);

/// Writes a memtable's entries and range tombstones into one L0 table (none if it is empty),
/// leaving out every version that a newer version of its key hides from all readers: a
/// version is kept only if it is its key's newest or some snapshot in `snapshots` (sorted
/// ascending) reads it, that is lies at or above it and below the next newer version (as
/// RocksDB's flush does). A key overwritten many times between flushes reaches disk once.
/// Returns the tables and the number of versions left out.
pub(crate) fn write_memtable(
    fs: &dyn FileSystem,
    dir: &std::path::Path,
    mem: &Arc<Memtable>,
    snapshots: &[SeqNo],
    table_options: TableOptions,
    cache: &Arc<BlockCache>,
    new_file_number: &mut dyn FnMut() -> u64,
) -> Result<(Vec<FlushedTable>, u64)> {
    let mut writer = OutputWriter::new(
        fs,
        dir,
        0,
        table_options,
        u64::MAX,
        Some(Arc::clone(cache)),
        new_file_number,
    );
    writer.set_range_tombstones(mem.range_tombstones());
    let mut current_key: Option<Bytes> = None;
    let mut newer_seq = SeqNo::MAX;
    let mut dropped = 0;
    for (ikey, value) in mem.entries() {
        let parsed = parse_internal_key(&ikey)
            .ok_or_else(|| Error::corruption(dir, 0, "memtable holds a malformed key"))?;
        if current_key.as_deref() != Some(parsed.user_key) {
            current_key = Some(ikey.slice(..parsed.user_key.len()));
            newer_seq = SeqNo::MAX;
        }
        // Entries of one key come newest first; `newer_seq` is the version just kept above.
        let first_reader = snapshots.get(snapshots.partition_point(|s| *s < parsed.seq));
        let needed = newer_seq == SeqNo::MAX || first_reader.is_some_and(|s| *s < newer_seq);
        if needed {
            writer.add(&ikey, &parsed, &value)?;
        } else {
            dropped += 1;
        }
        newer_seq = parsed.seq;
    }
    Ok((writer.finish()?, dropped))
}

fn wait<'a>(inner: &'a DbInner, st: MutexGuard<'a, DbState>) -> MutexGuard<'a, DbState> {
    inner
        .state_changed
        .wait_timeout(st, IDLE_WAIT)
        .map(|(g, _)| g)
        .unwrap_or_else(|p| p.into_inner().0)
}

fn flush_loop(inner: Arc<DbInner>) {
    loop {
        let imm = {
            let mut st = inner.state();
            loop {
                if inner.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                if inner.check_poison().is_ok()
                    && let Some(m) = inner.super_version().imms.last()
                {
                    break Arc::clone(m);
                }
                st = wait(&inner, st);
            }
        };
        if let Err(e) = flush_memtable(&inner, &imm) {
            inner.poison(&e);
        }
    }
}

fn flush_memtable(inner: &DbInner, imm: &Arc<Memtable>) -> Result<()> {
    let mut alloc = || inner.state().versions.new_file_number();
    // Every entry of the immutable memtable is published, so a snapshot taken from here on
    // is above all of them and needs only their newest versions.
    let snapshots = inner.snapshot_seqs();
    let (outputs, dropped) = write_memtable(
        inner.fs.as_ref(),
        &inner.dir,
        imm,
        &snapshots,
        inner.opts.table_options(),
        &inner.cache,
        &mut alloc,
    )?;
    Counters::add(&inner.counters.keys_removed, dropped);
    let written: u64 = outputs.iter().map(|(d, _)| d.size).sum();
    let mut st = inner.state();
    let sv = inner.super_version();
    let pos = sv
        .imms
        .iter()
        .position(|m| Arc::ptr_eq(m, imm))
        .ok_or_else(|| Error::InvalidArgument("flushed memtable is no longer queued".into()))?;
    // The oldest WAL still needed is the one of the next newer memtable.
    let next_log = match pos.checked_sub(1) {
        Some(newer) => sv
            .imms
            .get(newer)
            .map_or(sv.mem.log_number(), |m| m.log_number()),
        None => sv.mem.log_number(),
    };
    let (new_files, tables) = outputs.into_iter().unzip();
    let edit = VersionEdit {
        log_number: Some(next_log),
        last_seq: Some(inner.last_seq.load(Ordering::Acquire)),
        new_files,
        ..VersionEdit::default()
    };
    let version = st.versions.log_and_apply(edit, tables)?;
    let mut imms = sv.imms.clone();
    imms.remove(pos);
    inner.set_super_version(SuperVersion {
        mem: Arc::clone(&sv.mem),
        imms,
        version,
    });
    Counters::add(&inner.counters.flushes, 1);
    Counters::add(&inner.counters.flush_bytes_written, written);
    inner.state_changed.notify_all();
    drop(st);
    inner.retire_wal(imm.log_number());
    Ok(())
}

fn compaction_loop(inner: Arc<DbInner>) {
    loop {
        let task = {
            let mut st = inner.state();
            loop {
                if inner.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                if inner.opts.auto_compaction
                    && !st.compacting
                    && st.manual_waiting == 0
                    && inner.check_poison().is_ok()
                    && let Some(t) = picker::pick(&inner.super_version().version, &inner.opts)
                {
                    st.compacting = true;
                    break t;
                }
                st = wait(&inner, st);
            }
        };
        let result = run_compaction(&inner, &task, None);
        inner.state().compacting = false;
        inner.state_changed.notify_all();
        if let Err(e) = result {
            inner.poison(&e);
        }
    }
}

/// Runs a planned compaction and installs its result.
fn run_compaction(
    inner: &DbInner,
    task: &CompactionTask,
    progress: Option<&mut dyn FnMut(CompactionProgress)>,
) -> Result<CompactionReport> {
    let version = inner.super_version().version.clone();
    let mut alloc = || inner.state().versions.new_file_number();
    let out = job::run(
        task,
        JobContext {
            fs: inner.fs.as_ref(),
            dir: &inner.dir,
            table_options: inner.opts.table_options(),
            // A merge into L0 (tiered) writes one sorted run: one table.
            target_file_size: if task.output_level == 0 {
                u64::MAX
            } else {
                inner.opts.target_file_size
            },
            cache: Some(Arc::clone(&inner.cache)),
            smallest_snapshot: inner.smallest_snapshot(),
            version: &version,
            new_file_number: &mut alloc,
            progress,
        },
    )?;
    let mut st = inner.state();
    let installed = st.versions.log_and_apply(out.edit, out.tables);
    let version = match installed {
        Ok(v) => v,
        Err(e) => {
            // The MANIFEST may or may not hold the edit: only a reopen can tell.
            inner.poison(&e);
            return Err(e);
        }
    };
    let sv = inner.super_version();
    inner.set_super_version(SuperVersion {
        mem: Arc::clone(&sv.mem),
        imms: sv.imms.clone(),
        version,
    });
    inner.state_changed.notify_all();
    drop(st);
    for (_, f) in &task.inputs {
        inner.remove_file(&filename::table(&inner.dir, f.desc.number));
    }
    let r = &out.report;
    let c = &inner.counters;
    Counters::add(&c.compactions, 1);
    Counters::add(&c.compaction_bytes_read, r.bytes_before);
    Counters::add(&c.compaction_bytes_written, r.bytes_after);
    Counters::add(&c.keys_removed, r.keys_dropped);
    Counters::add(&c.bytes_reclaimed, r.bytes_reclaimed());
    c.last_compaction_micros
        .store(r.duration.as_micros().max(1) as u64, Ordering::Relaxed);
    tracing::debug!(
        files_before = r.files_before,
        files_after = r.files_after,
        keys_dropped = r.keys_dropped,
        "compaction finished"
    );
    Ok(out.report)
}

/// Runs a manual compaction of `[start, end]`, waiting for any running compaction first.
pub(crate) fn manual_compaction(
    inner: &DbInner,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
    progress: &mut dyn FnMut(CompactionProgress),
) -> Result<CompactionReport> {
    let started = Instant::now();
    {
        let mut st = inner.state();
        st.manual_waiting += 1;
        while st.compacting {
            st = wait(inner, st);
        }
        st.manual_waiting -= 1;
        st.compacting = true;
    }
    let result = (|| {
        inner.check_poison()?;
        let version = inner.super_version().version.clone();
        match picker::manual(&version, inner.opts.compaction_style, start, end) {
            Some(task) => run_compaction(inner, &task, Some(progress)),
            None => Ok(CompactionReport {
                duration: started.elapsed(),
                ..CompactionReport::default()
            }),
        }
    })();
    inner.state().compacting = false;
    inner.state_changed.notify_all();
    result
}
