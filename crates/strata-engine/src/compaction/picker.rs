//! Planning compactions from a [`Version`] alone, with no I/O, so policies can be tested and
//! simulated: L0 by file count into L1, deeper levels by size against targets that grow by the
//! level multiplier, and manual compactions of a key range.

use std::sync::Arc;

use super::{CompactionReason, CompactionTask};
use crate::options::{CompactionStyle, Options};
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

/// Plans the most urgent automatic compaction for the store's compaction style, if any.
pub fn pick(v: &Version, opts: &Options) -> Option<CompactionTask> {
    match opts.compaction_style {
        CompactionStyle::Leveled => pick_leveled(v, opts),
        CompactionStyle::Tiered => pick_tiered(v, opts),
    }
}

/// Space amplification (bytes of all runs but the oldest over the oldest) that triggers a
/// merge of every run, in percent.
const TIERED_MAX_SPACE_AMP_PERCENT: u64 = 200;

/// Size-tiered planning over the sorted runs in L0, newest first: merge every run when the
/// newer runs take more than twice the space of the oldest; otherwise merge the newest runs
/// while each next run is no larger than all the ones before it together, if that gathers at
/// least `l0_compaction_trigger` runs.
fn pick_tiered(v: &Version, opts: &Options) -> Option<CompactionTask> {
    let runs = &v.levels[0];
    let min_width = opts.l0_compaction_trigger.max(2);
    if runs.len() < min_width {
        return None;
    }
    let task = |files: &[Arc<FileMeta>]| CompactionTask {
        inputs: files.iter().map(|f| (0, Arc::clone(f))).collect(),
        output_level: 0,
        reason: CompactionReason::L0FileCount,
    };
    let (oldest, newer) = runs.split_last()?;
    let newer_bytes: u64 = newer.iter().map(|f| f.desc.size).sum();
    if newer_bytes.saturating_mul(100)
        > oldest
            .desc
            .size
            .saturating_mul(TIERED_MAX_SPACE_AMP_PERCENT)
    {
        return Some(task(runs));
    }
    let mut total = 0u64;
    let mut width = 0;
    for f in runs {
        if width > 0 && f.desc.size > total {
            break;
        }
        total += f.desc.size;
        width += 1;
    }
    if width >= min_width {
        return Some(task(&runs[..width]));
    }
    // Too many runs of very different sizes: merge the newest few to bound read cost.
    (runs.len() >= opts.l0_slowdown_trigger.max(min_width)).then(|| task(&runs[..min_width]))
}

/// Leveled planning: the level with the highest score, merged into the next one.
fn pick_leveled(v: &Version, opts: &Options) -> Option<CompactionTask> {
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
/// The output goes to the deepest level among the inputs, or L1 if they are all in L0 under
/// leveled compaction; tiered compaction keeps its single run in L0.
pub fn manual(
    v: &Version,
    style: CompactionStyle,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Option<CompactionTask> {
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
            let deepest = inputs.iter().map(|(l, _)| *l).max().unwrap_or(0);
            let output_level = match style {
                CompactionStyle::Tiered => deepest,
                CompactionStyle::Leveled => deepest.max(1),
            };
            return Some(CompactionTask {
                inputs,
                output_level,
                reason: CompactionReason::Manual,
            });
        }
        (lo, hi) = (nlo, nhi);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::fs::{FaultFs, FileSystem};
    use crate::key::{ValueKind, make_internal_key};
    use crate::table::{Table, TableBuilder, TableOptions};
    use crate::version::FileDesc;

    /// A version whose L0 holds runs of the given sizes (in entries), newest first.
    fn l0_runs(sizes: &[u64]) -> Version {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/p")).unwrap();
        let mut v = Version::default();
        let n = sizes.len() as u64;
        for (i, entries) in sizes.iter().enumerate() {
            let path = Path::new("/p").join(format!("{i}.sst"));
            let mut b = TableBuilder::new(fs.create(&path).unwrap(), TableOptions::default());
            b.add(&make_internal_key(b"k", 1, ValueKind::Put), b"v")
                .unwrap();
            b.finish().unwrap();
            let table = Arc::new(Table::open(fs.open_random(&path).unwrap(), &path).unwrap());
            let desc = FileDesc {
                level: 0,
                number: n - i as u64,
                size: entries * 100,
                smallest: b"a".to_vec(),
                largest: b"z".to_vec(),
                largest_seq: (n - i as u64) * 10,
                ..FileDesc::default()
            };
            v.levels[0].push(Arc::new(FileMeta { desc, table }));
        }
        v
    }

    fn tiered() -> Options {
        Options {
            compaction_style: CompactionStyle::Tiered,
            l0_compaction_trigger: 4,
            ..Options::default()
        }
    }

    fn picked(v: &Version, opts: &Options) -> Option<Vec<u64>> {
        pick(v, opts).map(|t| {
            assert_eq!(t.output_level, 0);
            t.inputs.iter().map(|(_, f)| f.desc.number).collect()
        })
    }

    #[test]
    fn tiered_merges_the_newest_runs_of_similar_size() {
        // Four fresh flushes on top of one large old run: merge the four.
        let v = l0_runs(&[10, 10, 10, 10, 1000]);
        assert_eq!(picked(&v, &tiered()), Some(vec![5, 4, 3, 2]));
    }

    #[test]
    fn tiered_waits_for_enough_similar_runs() {
        let v = l0_runs(&[10, 10, 10, 1000]);
        assert_eq!(picked(&v, &tiered()), None);
    }

    #[test]
    fn tiered_merges_everything_when_space_amplification_passes_200_percent() {
        let v = l0_runs(&[300, 200, 150, 100]);
        assert_eq!(picked(&v, &tiered()).map(|n| n.len()), Some(4));
    }

    #[test]
    fn leveled_and_tiered_plan_differently_for_the_same_runs() {
        let v = l0_runs(&[10, 10, 10, 10, 1000]);
        let leveled = pick(&v, &Options::default()).unwrap();
        assert_eq!(leveled.output_level, 1);
        assert_eq!(leveled.inputs.len(), 5, "leveled takes all of L0");
    }
}
