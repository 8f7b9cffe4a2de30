//! Runs workloads: opens (and, for fill workloads, recreates) the store, starts one thread per
//! client, times every operation into a per-thread histogram, merges them and measures memory.
//! [`run`] returns the results; [`run_and_report`] also prints them, as the CLI does.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::args::BenchArgs;
use crate::backend::{self, Backend};
use crate::dist::{KeyChooser, Rng};
use crate::error::{Error, Result};
use crate::histogram::LatencyHistogram;
use crate::keys::{KeyFormat, ValueGenerator};
use crate::memory;
use crate::probe::{PageCacheEvictor, SyncProbe};
use crate::report::{self, WorkloadResult};
use crate::tasks;
use crate::workload::Workload;

/// A file in the data directory that marks it as ours, so that fill workloads may wipe it.
pub const MARKER: &str = ".strata-bench";

/// The engine name reported for measurements of the disk itself.
pub const DISK: &str = "disk";

/// How often (in operations) a thread reports progress.
const PROGRESS_EVERY: u64 = 1024;

/// Entries read per scan call by readseq, so that `--duration` can stop it.
const READSEQ_CHUNK: usize = 1000;

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// One result per workload, in the order run.
    pub results: Vec<WorkloadResult>,
    /// Settings the engine could not honour, and other remarks for the reader.
    pub notes: Vec<String>,
}

/// How a run shows its progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Draw a progress bar per workload on standard error.
    pub progress: bool,
}

impl RunOptions {
    /// Progress bars only when standard error is a terminal.
    pub fn detect() -> Self {
        RunOptions {
            progress: std::io::stderr().is_terminal(),
        }
    }
}

/// Runs `args`, printing notes to standard error and then the results to `out` (a table, or
/// one JSON object per line with `--json`).
pub fn run_and_report(args: &BenchArgs, out: &mut dyn Write) -> Result<RunOutput> {
    let output = run(args, RunOptions::detect(), &mut |_| {})?;
    for note in &output.notes {
        eprintln!("note: {note}");
    }
    if args.json {
        report::write_json_lines(out, &output.results)?;
    } else {
        writeln!(out, "{}", report::table(&output.results))?;
    }
    Ok(output)
}

/// Runs every workload of `args` in order; `on_result` sees each result as it is measured.
pub fn run(
    args: &BenchArgs,
    opts: RunOptions,
    on_result: &mut dyn FnMut(&WorkloadResult),
) -> Result<RunOutput> {
    args.validate()?;
    let workloads = args.workloads()?;
    let data_dir = args.data_dir();
    let config = args.backend_config();
    let mut output = RunOutput::default();
    let mut store: Option<Arc<dyn Backend>> = None;
    if let Some(target) = &args.target {
        output.notes.push(format!(
            "{target}: the server's store is used as it is: fill workloads write over what it \
             holds, and engine flags (--write-buffer-size, --compression, ...) do not apply"
        ));
    }
    for w in workloads {
        if let (true, Some(target)) = (w.needs_store(), &args.target) {
            if store.is_none() {
                let opened = backend::open_target(
                    target,
                    args.token.as_deref(),
                    backend::conns::Conns::from_arg(args.conns),
                )?;
                output.notes.extend(opened.notes);
                store = Some(opened.backend);
            }
        } else if w.needs_store() {
            let recreate = w.fresh_db() && !args.use_existing_db;
            // coldread starts from a reopened store, so that the engine's own block cache is
            // empty too and data blocks really come from the disk. Flushing first keeps the
            // data in tables rather than in a memtable replayed from the WAL.
            let reopen = w == Workload::ColdRead;
            if reopen && let Some(s) = &store {
                s.flush()?;
            }
            if recreate || reopen || store.is_none() {
                // Close the old store before its files are removed or reopened.
                drop(store.take());
                prepare_data_dir(&data_dir, recreate.then_some(config.data_dir.as_path()))?;
                let opened = backend::open(args.engine, &config)?;
                for note in opened.notes {
                    if !output.notes.contains(&note) {
                        output.notes.push(note);
                    }
                }
                store = Some(opened.backend);
            }
        } else {
            prepare_data_dir(&data_dir, None)?;
        }
        if let Some(s) = &store
            && w.needs_store()
            && let Some(reason) = s.unsupported(w)
        {
            output.notes.push(format!(
                "{} skipped: {} backend: {reason}",
                w.name(),
                s.name()
            ));
            continue;
        }
        let result = run_workload(args, w, store.as_ref(), opts)?;
        on_result(&result);
        output.results.push(result);
    }
    Ok(output)
}

/// Creates `dir` with its marker; with `wipe`, removes that engine directory inside it first,
/// refusing if `dir` holds files and no marker.
fn prepare_data_dir(dir: &Path, wipe: Option<&Path>) -> Result<()> {
    let marker = dir.join(MARKER);
    if dir.exists() && !marker.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        if entries.next().is_some() {
            return Err(Error::ForeignDataDir(dir.to_path_buf()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    std::fs::write(
        &marker,
        b"created by strata bench; fill workloads may wipe this directory\n",
    )
    .map_err(|e| Error::io("writing", &marker, e))?;
    if let Some(engine_dir) = wipe
        && engine_dir.exists()
    {
        std::fs::remove_dir_all(engine_dir).map_err(|e| Error::io("removing", engine_dir, e))?;
    }
    Ok(())
}

/// Everything the threads of one workload share.
pub(crate) struct Shared<'a> {
    pub(crate) workload: Workload,
    store: Option<&'a dyn Backend>,
    pub(crate) keys: KeyFormat,
    pub(crate) value_size: usize,
    pub(crate) num: u64,
    pub(crate) ops: u64,
    batch: usize,
    sync: bool,
    pub(crate) seed: u64,
    chooser: KeyChooser,
    pub(crate) deadline: Option<Instant>,
    pub(crate) bar: ProgressBar,
    data_dir: &'a Path,
}

/// What one client (a thread, or a task with `--async-clients`) measured.
#[derive(Debug, Default)]
pub(crate) struct ThreadOutcome {
    hist: LatencyHistogram,
    pub(crate) ops: u64,
    bytes: u64,
    pub(crate) found: u64,
    pub(crate) start: Option<Instant>,
    pub(crate) end: Option<Instant>,
}

fn run_workload(
    args: &BenchArgs,
    workload: Workload,
    store: Option<&Arc<dyn Backend>>,
    opts: RunOptions,
) -> Result<WorkloadResult> {
    let threads = if workload.single_threaded() {
        1
    } else {
        args.threads
    };
    let ops = workload.ops_per_thread(args.num, args.reads);
    let bar = progress_bar(opts.progress, workload, ops * threads as u64);
    let chooser = match workload.ycsb_read_fraction() {
        Some(_) => KeyChooser::new(args.distribution, args.num),
        None => KeyChooser::new(crate::dist::Distribution::Uniform, args.num),
    };
    let data_dir = args.data_dir();
    let shared = Shared {
        workload,
        store: store.map(|s| s.as_ref()),
        keys: KeyFormat::new(args.key_size),
        value_size: args.value_size,
        num: args.num,
        ops,
        batch: args.batch_size,
        sync: args.sync || workload == Workload::FillSync,
        seed: args.seed,
        chooser,
        deadline: args
            .duration
            .map(|s| Instant::now() + Duration::from_secs(s)),
        bar,
        data_dir: &data_dir,
    };
    if workload == Workload::ColdRead {
        let s = require_store(&shared)?;
        s.flush()?;
        evictor(&shared)?.sync_and_evict()?;
    }
    let outcomes: Vec<Result<ThreadOutcome>> = match (&args.target, args.async_clients) {
        (Some(target), true) => tasks::run(
            target,
            args.token.as_deref(),
            backend::conns::Conns::from_arg(args.conns),
            tasks::Plan::new(&shared),
            threads,
        )?,
        _ => std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|tid| {
                    let shared = &shared;
                    scope.spawn(move || run_thread(shared, tid))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or(Err(Error::ThreadPanicked(workload.name())))
                })
                .collect()
        }),
    };
    shared.bar.finish_and_clear();
    let mut total = ThreadOutcome::default();
    for o in outcomes {
        let o = o?;
        total.hist.merge(&o.hist);
        total.ops += o.ops;
        total.bytes += o.bytes;
        total.found += o.found;
        total.start = match (total.start, o.start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        total.end = match (total.end, o.end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let seconds = match (total.start, total.end) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => 0.0,
    };
    let per_sec = |v: f64| if seconds > 0.0 { v / seconds } else { 0.0 };
    let reads = matches!(
        workload,
        Workload::ReadRandom
            | Workload::ReadMissing
            | Workload::SeekRandom
            | Workload::ColdRead
            | Workload::YcsbA
            | Workload::YcsbB
            | Workload::YcsbC
            | Workload::YcsbF
    );
    Ok(WorkloadResult {
        workload: workload.name().to_string(),
        engine: if workload.needs_store() {
            args.backend_name().to_string()
        } else {
            DISK.to_string()
        },
        threads,
        ops: total.ops,
        found: reads.then_some(total.found),
        seconds,
        ops_per_sec: per_sec(total.ops as f64),
        mb_per_sec: per_sec(total.bytes as f64) / (1 << 20) as f64,
        latency: total.hist.percentiles(),
        memory: memory::current(),
    })
}

fn progress_bar(enabled: bool, workload: Workload, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(workload.name());
    bar
}

fn require_store<'a>(shared: &Shared<'a>) -> Result<&'a dyn Backend> {
    shared.store.ok_or(Error::Unsupported {
        workload: shared.workload.name(),
        backend: "none",
        reason: "no store is open",
    })
}

fn evictor(shared: &Shared<'_>) -> Result<PageCacheEvictor> {
    let s = require_store(shared)?;
    let dir = s.local_dir().ok_or(Error::Unsupported {
        workload: shared.workload.name(),
        backend: s.name(),
        reason: "its files are not on this machine",
    })?;
    Ok(PageCacheEvictor::new(dir))
}

/// One client thread's loop: `shared.ops` operations of the workload, or until the deadline.
fn run_thread(shared: &Shared<'_>, tid: usize) -> Result<ThreadOutcome> {
    let mut t = ThreadState::new(shared.seed, tid, shared.keys, shared.value_size);
    if shared.workload == Workload::RawSync {
        t.out.start = Some(Instant::now());
        raw_sync(shared, &mut t)?;
    } else {
        let shared_store = require_store(shared)?;
        // A remote backend's connection for this thread is opened before the clock starts.
        let own = shared_store.thread_client()?;
        let store = own.as_deref().unwrap_or(shared_store);
        t.out.start = Some(Instant::now());
        if shared.workload == Workload::ReadSeq {
            read_seq(shared, store, &mut t)?;
        } else {
            point_ops(shared, store, &mut t)?;
        }
    }
    t.out.end = Some(Instant::now());
    shared.bar.inc(t.since_progress);
    Ok(t.out)
}

/// One client's random streams, key buffer and measurements.
pub(crate) struct ThreadState {
    pub(crate) rng: Rng,
    pub(crate) values: ValueGenerator,
    pub(crate) key: Vec<u8>,
    pub(crate) out: ThreadOutcome,
    pub(crate) since_progress: u64,
}

impl ThreadState {
    /// The state of client `tid` of a run seeded with `seed` (client i uses seed + i).
    pub(crate) fn new(seed: u64, tid: usize, keys: KeyFormat, value_size: usize) -> ThreadState {
        let seed = seed.wrapping_add(tid as u64);
        ThreadState {
            rng: Rng::new(seed ^ 0x5eed),
            values: ValueGenerator::new(seed, value_size),
            key: Vec::with_capacity(keys.key_size() + 1),
            out: ThreadOutcome::default(),
            since_progress: 0,
        }
    }

    /// Puts the key the next point read of `workload` asks for in `self.key`: a missing one
    /// for readmissing, else a present one.
    pub(crate) fn next_read_key(&mut self, workload: Workload, keys: KeyFormat, num: u64) {
        let k = self.rng.below(num);
        if workload == Workload::ReadMissing {
            keys.missing(k, &mut self.key);
        } else {
            keys.present(k, &mut self.key);
        }
    }

    /// Counts the answer of a point read of `workload` (the length of the value found, if
    /// any) and returns the bytes it moved.
    pub(crate) fn read_answered(
        &mut self,
        workload: Workload,
        key_len: u64,
        value_len: Option<usize>,
    ) -> u64 {
        if value_len.is_some() {
            self.out.found += 1;
        }
        match (workload, value_len) {
            (Workload::ReadMissing, _) => key_len + 1,
            (_, Some(n)) => key_len + n as u64,
            (_, None) => key_len,
        }
    }

    /// Records one timed call of `ops` operations and `bytes` bytes that began at `started`.
    pub(crate) fn finished(&mut self, bar: &ProgressBar, started: Instant, ops: u64, bytes: u64) {
        self.out.hist.record(started.elapsed());
        self.out.ops += ops;
        self.out.bytes += bytes;
        self.since_progress += ops;
        if self.since_progress >= PROGRESS_EVERY {
            bar.inc(self.since_progress);
            self.since_progress = 0;
        }
    }
}

/// Whether `deadline` has passed at `now`.
pub(crate) fn past(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// Every workload made of independent point operations.
fn point_ops(shared: &Shared<'_>, store: &dyn Backend, t: &mut ThreadState) -> Result<()> {
    let evict = if shared.workload == Workload::ColdRead {
        Some(evictor(shared)?)
    } else {
        None
    };
    let key_len = shared.keys.key_size() as u64;
    let value_len = shared.value_size as u64;
    let mut batch_keys: Vec<Vec<u8>> = Vec::new();
    let mut seq_next = 0u64;
    while t.out.ops < shared.ops {
        if let Some(ev) = &evict {
            // Outside the timed region: only the GET that follows is measured.
            ev.evict()?;
        }
        let started = Instant::now();
        if past(shared.deadline, started) {
            break;
        }
        match shared.workload {
            Workload::FillSeq | Workload::FillRandom | Workload::Overwrite | Workload::FillSync => {
                let n = shared.batch.min((shared.ops - t.out.ops) as usize).max(1);
                if n == 1 {
                    let k = next_write_key(shared, t, &mut seq_next);
                    shared.keys.present(k, &mut t.key);
                    store.put(&t.key, t.values.next(shared.value_size), shared.sync)?;
                } else {
                    batch_keys.resize_with(n, Vec::new);
                    for bk in batch_keys.iter_mut() {
                        let k = next_write_key(shared, t, &mut seq_next);
                        shared.keys.present(k, bk);
                    }
                    let value = t.values.next(shared.value_size).to_vec();
                    let entries: Vec<(&[u8], &[u8])> = batch_keys
                        .iter()
                        .map(|k| (k.as_slice(), value.as_slice()))
                        .collect();
                    store.put_batch(&entries, shared.sync)?;
                }
                t.finished(
                    &shared.bar,
                    started,
                    n as u64,
                    n as u64 * (key_len + value_len),
                );
            }
            Workload::DeleteRandom => {
                let k = t.rng.below(shared.num);
                shared.keys.present(k, &mut t.key);
                store.delete(&t.key, shared.sync)?;
                t.finished(&shared.bar, started, 1, key_len);
            }
            Workload::ReadRandom | Workload::ColdRead | Workload::ReadMissing => {
                t.next_read_key(shared.workload, shared.keys, shared.num);
                let value = store.get(&t.key)?;
                let bytes = t.read_answered(shared.workload, key_len, value.map(|v| v.len()));
                t.finished(&shared.bar, started, 1, bytes);
            }
            Workload::SeekRandom => {
                let k = t.rng.below(shared.num);
                shared.keys.present(k, &mut t.key);
                let mut bytes = 0u64;
                let mut exact = false;
                let wanted = &t.key;
                store.scan(wanted, 1, &mut |k, v| {
                    exact = k == wanted.as_slice();
                    bytes = (k.len() + v.len()) as u64;
                })?;
                if exact {
                    t.out.found += 1;
                }
                t.finished(&shared.bar, started, 1, bytes);
            }
            Workload::YcsbA | Workload::YcsbB | Workload::YcsbC | Workload::YcsbF => {
                let k = shared.chooser.next(&mut t.rng);
                shared.keys.present(k, &mut t.key);
                let read_fraction = shared.workload.ycsb_read_fraction().unwrap_or(1.0);
                let bytes = if t.rng.unit() < read_fraction {
                    match store.get(&t.key)? {
                        Some(v) => {
                            t.out.found += 1;
                            key_len + v.len() as u64
                        }
                        None => key_len,
                    }
                } else if shared.workload == Workload::YcsbF {
                    // Read-modify-write: one operation made of a read and a write.
                    let old = store.get(&t.key)?;
                    if old.is_some() {
                        t.out.found += 1;
                    }
                    store.put(&t.key, t.values.next(shared.value_size), shared.sync)?;
                    2 * key_len + old.map_or(0, |v| v.len() as u64) + value_len
                } else {
                    store.put(&t.key, t.values.next(shared.value_size), shared.sync)?;
                    key_len + value_len
                };
                t.finished(&shared.bar, started, 1, bytes);
            }
            Workload::ReadSeq | Workload::RawSync => {
                return Err(Error::Unsupported {
                    workload: shared.workload.name(),
                    backend: store.name(),
                    reason: "not a point workload",
                });
            }
        }
    }
    Ok(())
}

fn next_write_key(shared: &Shared<'_>, t: &mut ThreadState, seq_next: &mut u64) -> u64 {
    write_key(shared.workload, shared.num, &mut t.rng, seq_next)
}

/// The number of the next key a fill workload writes: in order for fillseq, else at random.
pub(crate) fn write_key(workload: Workload, num: u64, rng: &mut Rng, seq_next: &mut u64) -> u64 {
    if workload == Workload::FillSeq {
        let k = *seq_next % num;
        *seq_next += 1;
        k
    } else {
        rng.below(num)
    }
}

/// A forward scan from the first key; each entry returned is one timed operation.
fn read_seq(shared: &Shared<'_>, store: &dyn Backend, t: &mut ThreadState) -> Result<()> {
    let mut start: Vec<u8> = Vec::new();
    let bar = &shared.bar;
    loop {
        let remaining = shared.ops - t.out.ops;
        if remaining == 0 {
            break;
        }
        let mut mark = Instant::now();
        if past(shared.deadline, mark) {
            break;
        }
        let limit = (remaining as usize).min(READSEQ_CHUNK);
        let mut last: Option<Vec<u8>> = None;
        let visited = store.scan(&start, limit, &mut |k, v| {
            t.finished(bar, mark, 1, (k.len() + v.len()) as u64);
            mark = Instant::now();
            if last.is_none() {
                last = Some(Vec::with_capacity(k.len() + 1));
            }
            if let Some(l) = last.as_mut() {
                l.clear();
                l.extend_from_slice(k);
            }
        })?;
        match last {
            // The next chunk starts just after the last key seen.
            Some(mut l) if visited == limit => {
                l.push(0);
                start = l;
            }
            _ => break,
        }
    }
    Ok(())
}

/// The disk's raw rate: 100-byte appends to a file in the data directory, each synced.
fn raw_sync(shared: &Shared<'_>, t: &mut ThreadState) -> Result<()> {
    let mut probe = SyncProbe::create(shared.data_dir, "rawsync.probe")?;
    while t.out.ops < shared.ops {
        let started = Instant::now();
        if past(shared.deadline, started) {
            break;
        }
        probe.append_synced()?;
        t.finished(&shared.bar, started, 1, crate::probe::PROBE_RECORD as u64);
    }
    Ok(())
}
