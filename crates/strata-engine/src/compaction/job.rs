//! Running a [`CompactionTask`]: merge the inputs, keep for each user key the newest version and
//! whatever a live snapshot still needs, drop tombstones (point and range) once nothing older can
//! lie beneath them, and write the rest with an [`OutputWriter`].

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::output::OutputWriter;
use super::{CompactionProgress, CompactionReport, CompactionTask};
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::iter::InternalIterator;
use crate::key::{SeqNo, ValueKind, parse_internal_key};
use crate::level_iter::level_iterators;
use crate::merge::MergingIterator;
use crate::range_del::RangeTombstone;
use crate::table::{Table, TableOptions};
use crate::version::{FileMeta, NUM_LEVELS, Version, VersionEdit};

/// What a compaction needs from the store.
pub struct JobContext<'a, 'p> {
    /// File system.
    pub fs: &'a dyn FileSystem,
    /// Store directory.
    pub dir: &'a Path,
    /// Options for the output tables.
    pub table_options: TableOptions,
    /// Target size of an output table.
    pub target_file_size: u64,
    /// The block cache output tables are opened with.
    pub cache: Option<Arc<BlockCache>>,
    /// The oldest sequence number a reader may still read at.
    pub smallest_snapshot: SeqNo,
    /// The version the task was planned on.
    pub version: &'a Version,
    /// Allocates file numbers.
    pub new_file_number: &'a mut dyn FnMut() -> u64,
    /// Called as the merge advances.
    pub progress: Option<&'p mut dyn FnMut(CompactionProgress)>,
}

/// The result of a compaction, ready to be logged and installed.
pub struct JobOutput {
    /// Removes the inputs and adds the outputs.
    pub edit: VersionEdit,
    /// The opened output tables, in `edit.new_files` order.
    pub tables: Vec<Arc<Table>>,
    /// Figures for stats and the caller.
    pub report: CompactionReport,
}

/// True if a table outside the compaction that may hold older data than the output could
/// hold a key in `[lo, hi]`: any table below the output level, and for an output into L0 (a
/// tiered merge) any L0 run not among the inputs.
fn may_exist_below(v: &Version, task: &CompactionTask, level: usize, lo: &[u8], hi: &[u8]) -> bool {
    let is_input = |f: &FileMeta| {
        task.inputs
            .iter()
            .any(|(_, i)| i.desc.number == f.desc.number)
    };
    let other_l0 = level == 0
        && v.levels[0]
            .iter()
            .any(|f| !is_input(f) && f.overlaps(lo, hi));
    other_l0 || ((level + 1)..NUM_LEVELS).any(|l| v.levels[l].iter().any(|f| f.overlaps(lo, hi)))
}

fn input_iterator(task: &CompactionTask) -> MergingIterator {
    let children = (0..NUM_LEVELS)
        .flat_map(|level| {
            let files = task
                .inputs
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, f)| Arc::clone(f))
                .collect();
            level_iterators(level, files)
        })
        .collect();
    MergingIterator::new(children)
}

/// Runs `task` and returns the edit that installs its result.
pub fn run(task: &CompactionTask, mut ctx: JobContext<'_, '_>) -> Result<JobOutput> {
    let started = Instant::now();
    let out_level = task.output_level;
    let bytes_total = task.input_bytes();
    let snapshot = ctx.smallest_snapshot;

    let input_tombstones: Vec<RangeTombstone> = task
        .inputs
        .iter()
        .flat_map(|(_, f)| f.table.range_tombstones().iter().cloned())
        .collect();
    // Tombstones every reader sees may hide entries now; a tombstone itself may go only when no
    // older table beneath the output level may hold a key it covers.
    let visible_tombstones: Vec<&RangeTombstone> = input_tombstones
        .iter()
        .filter(|t| t.seq <= snapshot)
        .collect();
    let mut kept_tombstones = Vec::new();
    let mut range_tombstones_dropped = 0;
    for t in &input_tombstones {
        if t.seq <= snapshot && !may_exist_below(ctx.version, task, out_level, &t.start, &t.end) {
            range_tombstones_dropped += 1;
        } else {
            kept_tombstones.push(t.clone());
        }
    }
    kept_tombstones.sort();
    kept_tombstones.dedup();

    let mut writer = OutputWriter::new(
        ctx.fs,
        ctx.dir,
        out_level,
        ctx.table_options.clone(),
        ctx.target_file_size,
        ctx.cache.clone(),
        ctx.new_file_number,
    );
    writer.set_range_tombstones(kept_tombstones);

    let mut iter = input_iterator(task);
    iter.seek_to_first()?;
    let mut current_key: Option<Vec<u8>> = None;
    let mut last_seq_for_key = SeqNo::MAX;
    let (mut keys_in, mut keys_dropped, mut bytes_done) = (0u64, 0u64, 0u64);
    while iter.valid() {
        let ikey = iter.key();
        let parsed = parse_internal_key(ikey).ok_or_else(|| {
            Error::corruption(
                ctx.dir,
                0,
                "compaction input holds a malformed internal key",
            )
        })?;
        keys_in += 1;
        bytes_done += (ikey.len() + iter.value().len()) as u64;
        if current_key.as_deref() != Some(parsed.user_key) {
            writer.start_user_key(parsed.user_key)?;
            current_key = Some(parsed.user_key.to_vec());
            last_seq_for_key = SeqNo::MAX;
        }
        let drop = if last_seq_for_key <= snapshot {
            // A newer version of this key is visible to every reader.
            true
        } else if parsed.kind == ValueKind::Delete
            && parsed.seq <= snapshot
            && !may_exist_below(
                ctx.version,
                task,
                out_level,
                parsed.user_key,
                parsed.user_key,
            )
        {
            true
        } else {
            visible_tombstones
                .iter()
                .any(|t| t.covers(parsed.user_key, parsed.seq, snapshot))
        };
        last_seq_for_key = parsed.seq;
        if drop {
            keys_dropped += 1;
        } else {
            writer.add(ikey, &parsed, iter.value())?;
        }
        if keys_in % 4096 == 0
            && let Some(p) = ctx.progress.as_mut()
        {
            p(CompactionProgress {
                bytes_done: bytes_done.min(bytes_total),
                bytes_total,
            });
        }
        iter.next()?;
    }
    let outputs = writer.finish()?;
    if let Some(p) = ctx.progress.as_mut() {
        p(CompactionProgress {
            bytes_done: bytes_total,
            bytes_total,
        });
    }

    let report = CompactionReport {
        files_before: task.inputs.len(),
        bytes_before: bytes_total,
        files_after: outputs.len(),
        bytes_after: outputs.iter().map(|(d, _)| d.size).sum(),
        keys_in,
        keys_dropped,
        range_tombstones_dropped,
        duration: started.elapsed(),
    };
    let (new_files, tables) = outputs.into_iter().unzip();
    let edit = VersionEdit {
        new_files,
        deleted_files: task
            .inputs
            .iter()
            .map(|(l, f)| (*l, f.desc.number))
            .collect(),
        ..VersionEdit::default()
    };
    Ok(JobOutput {
        edit,
        tables,
        report,
    })
}
