//! Planning compactions from a [`Version`] alone, with no I/O, so policies can be tested and
//! simulated: L0 by file count into L1, deeper levels by size against targets that grow by the
//! level multiplier, and manual compactions of a key range.

use std::sync::Arc;

use super::{CompactionReason, CompactionTask};
use crate::options::Options;
use crate::version::{FileMeta, NUM_LEVELS, Version};

/// Size target of `level` (L1 and deeper).
pub fn level_target(level: usize, opts: &Options) -> u64 {
    let mut target = opts.max_bytes_for_level_base.max(1);
    for _ in 1..level {
        target = target.saturating_mul(opts.level_size_multiplier.max(2));
    }
    target
}

fn key_range<'a>(files: impl Iterator<Item = &'a Arc<FileMeta>>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut range: Option<(Vec<u8>, Vec<u8>)> = None;
    for f in files {
        range = Some(match range {
            None => (f.desc.smallest.clone(), f.desc.largest.clone()),
            Some((lo, hi)) => (
                lo.min(f.desc.smallest.clone()),
                hi.max(f.desc.largest.clone()),
            ),
        });
    }
    range
}

/// How urgently each level needs compacting: L0 by file count, deeper levels by size over
/// target. A score of 1 or more means "compact now".
pub fn level_scores(v: &Version, opts: &Options) -> Vec<(usize, f64)> {
    let mut scores = vec![(
        0,
        v.levels[0].len() as f64 / opts.l0_compaction_trigger.max(1) as f64,
    )];
    for level in 1..NUM_LEVELS - 1 {
        scores.push((
            level,
            v.level_bytes(level) as f64 / level_target(level, opts) as f64,
        ));
    }
    scores
}

/// Plans the most urgent automatic compaction, if any level needs one.
pub fn pick(v: &Version, opts: &Options) -> Option<CompactionTask> {
    let (level, score) = level_scores(v, opts)
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    if score < 1.0 {
        return None;
    }
    let chosen: Vec<Arc<FileMeta>> = if level == 0 {
        // All of L0: its tables overlap, and taking them all keeps newer versions above older.
        v.levels[0].clone()
    } else {
        // The table whose rewrite costs least per byte moved down.
        let f = v.levels[level].iter().min_by_key(|f| {
            let next: u64 = v
                .overlapping(level + 1, &f.desc.smallest, &f.desc.largest)
                .iter()
                .map(|n| n.desc.size)
                .sum();
            next.saturating_mul(1024) / f.desc.size.max(1)
        })?;
        vec![Arc::clone(f)]
    };
    let (lo, hi) = key_range(chosen.iter())?;
    let mut inputs: Vec<(usize, Arc<FileMeta>)> = chosen.into_iter().map(|f| (level, f)).collect();
    inputs.extend(
        v.overlapping(level + 1, &lo, &hi)
            .into_iter()
            .map(|f| (level + 1, f)),
    );
    Some(CompactionTask {
        inputs,
        output_level: level + 1,
        reason: if level == 0 {
            CompactionReason::L0FileCount
        } else {
            CompactionReason::LevelSize
        },
    })
}

/// Plans a manual compaction of every table that may hold a key in `[start, end]` (unbounded
/// where `None`), widened until no table outside the inputs overlaps their combined range.
/// The output goes to the deepest level among the inputs, or L1 if they are all in L0.
pub fn manual(v: &Version, start: Option<&[u8]>, end: Option<&[u8]>) -> Option<CompactionTask> {
    let all = || {
        v.levels
            .iter()
            .enumerate()
            .flat_map(|(l, fs)| fs.iter().map(move |f| (l, f)))
    };
    let (mut lo, mut hi) = key_range(all().map(|(_, f)| f))?;
    if let Some(s) = start {
        lo = lo.max(s.to_vec());
    }
    if let Some(e) = end {
        hi = hi.min(e.to_vec());
    }
    if lo > hi {
        return None;
    }
    loop {
        let inputs: Vec<(usize, Arc<FileMeta>)> = all()
            .filter(|(_, f)| f.overlaps(&lo, &hi))
            .map(|(l, f)| (l, Arc::clone(f)))
            .collect();
        let (nlo, nhi) = key_range(inputs.iter().map(|(_, f)| f))?;
        let (nlo, nhi) = (nlo.min(lo.clone()), nhi.max(hi.clone()));
        if (nlo.as_slice(), nhi.as_slice()) == (lo.as_slice(), hi.as_slice()) {
            let output_level = inputs.iter().map(|(l, _)| *l).max().unwrap_or(0).max(1);
            return Some(CompactionTask {
                inputs,
                output_level,
                reason: CompactionReason::Manual,
            });
        }
        (lo, hi) = (nlo, nhi);
    }
}
