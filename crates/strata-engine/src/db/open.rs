//! Opening a store: lock the directory, load or create the version set, replay the WALs the
//! MANIFEST still needs into a memtable, write that memtable to an L0 table, start a fresh WAL,
//! and remove whatever an interrupted flush or compaction left behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::background::write_memtable;
use super::write::{WriteQueue, apply_op};
use super::{DbInner, DbState, SuperVersion};
use crate::batch::WriteBatch;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::filename::{self, FileKind};
use crate::memtable::Memtable;
use crate::options::Options;
use crate::stats::Counters;
use crate::version::{VersionEdit, VersionSet};
use crate::wal::{RecoveryMode, WalWriter, read_wal};

pub(crate) fn open(dir: &Path, opts: Options) -> Result<DbInner> {
    if opts.key_prefix_room > crate::MAX_KEY_PREFIX_ROOM {
        return Err(Error::InvalidArgument(format!(
            "key_prefix_room is {}; at most {} bytes",
            opts.key_prefix_room,
            crate::MAX_KEY_PREFIX_ROOM
        )));
    }
    let fs = Arc::clone(&opts.fs);
    if !fs.exists(dir) {
        if !opts.create_if_missing {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                reason: "the directory does not exist".into(),
            });
        }
        fs.create_dir_all(dir)?;
    }
    let names = fs.list_dir(dir)?;
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| filename::parse(n).is_none())
        .collect();
    if !foreign.is_empty() {
        return Err(Error::NotAStore {
            path: dir.to_path_buf(),
            reason: format!(
                "it holds {} file(s) Strata did not write, such as {:?}",
                foreign.len(),
                foreign[0]
            ),
        });
    }
    let lock = fs.lock(&filename::lock(dir))?;

    let cache = Arc::new(BlockCache::new(opts.block_cache_size));
    let mut versions = if fs.exists(&filename::current(dir)) {
        VersionSet::recover(Arc::clone(&fs), dir, Arc::clone(&cache))?
    } else {
        let holds_data = names.iter().any(|n| {
            matches!(
                filename::parse(n),
                Some(FileKind::Wal(_) | FileKind::Table(_))
            )
        });
        if holds_data {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                reason: "CURRENT is missing but logs or tables are present".into(),
            });
        }
        if !opts.create_if_missing {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
                reason: "no store here and create_if_missing is off".into(),
            });
        }
        VersionSet::create(Arc::clone(&fs), dir, Arc::clone(&cache))?
    };

    let counters = Counters::default();
    let mem = Arc::new(Memtable::new(0, opts.write_buffer_size));
    let mut last_seq = versions.last_seq();
    let mode = if opts.skip_damaged_wal_records {
        RecoveryMode::SkipDamaged
    } else {
        RecoveryMode::TolerateTornTail
    };
    let mut wals: Vec<u64> = fs
        .list_dir(dir)?
        .iter()
        .filter_map(|n| match filename::parse(n) {
            Some(FileKind::Wal(n)) if n >= versions.log_number() => Some(n),
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    for n in &wals {
        let path = filename::wal(dir, *n);
        if fs.file_size(&path)? < crate::wal::format::FILE_HEADER_LEN as u64 {
            // Cut short while being created: the header is synced before any record is
            // written, so such a log never held an acknowledged write.
            continue;
        }
        let contents = read_wal(fs.as_ref(), &path, mode)?;
        if contents.log_number != *n {
            // A reused log stamped for another number: written before its rename, so it holds
            // nothing of this log.
            tracing::warn!(log = %path.display(), header = contents.log_number, "log header names another log; ignored");
            continue;
        }
        Counters::add(&counters.wal_records_skipped, contents.skipped as u64);
        for (i, record) in contents.records.iter().enumerate() {
            let Some((seq, batch)) = WriteBatch::decode(record) else {
                if mode == RecoveryMode::SkipDamaged {
                    Counters::add(&counters.wal_records_skipped, 1);
                    continue;
                }
                return Err(Error::corruption(
                    &path,
                    i as u64,
                    "WAL record (index given as offset) is not a valid write batch",
                ));
            };
            let mut s = seq;
            for op in batch.iter().flatten() {
                apply_op(&mem, s, op);
                s += 1;
            }
            last_seq = last_seq.max(s.saturating_sub(1));
        }
    }

    let table_options = opts.table_options();
    let outputs = if mem.is_empty() {
        Vec::new()
    } else {
        let mut alloc = || versions.new_file_number();
        // No snapshot exists yet: only each key's newest version is needed.
        write_memtable(
            fs.as_ref(),
            dir,
            &mem,
            &[],
            table_options,
            &cache,
            &mut alloc,
        )?
        .0
    };
    let new_log = versions.new_file_number();
    let wal = WalWriter::create(fs.as_ref(), &filename::wal(dir, new_log), new_log)?;
    let (new_files, tables) = outputs.into_iter().unzip();
    let version = versions.log_and_apply(
        VersionEdit {
            log_number: Some(new_log),
            last_seq: Some(last_seq),
            new_files,
            ..VersionEdit::default()
        },
        tables,
    )?;

    let inner = DbInner {
        dir: dir.to_path_buf(),
        fs,
        cache,
        _lock: lock,
        super_version: RwLock::new(Arc::new(SuperVersion {
            mem: Arc::new(Memtable::new(new_log, opts.write_buffer_size)),
            imms: Vec::new(),
            version,
        })),
        state: Mutex::new(DbState {
            versions,
            compacting: false,
            manual_waiting: 0,
        }),
        state_changed: Condvar::new(),
        writer: WriteQueue::new(wal),
        last_seq: AtomicU64::new(last_seq),
        snapshots: Mutex::new(BTreeMap::new()),
        recyclable_wals: Mutex::new(Vec::new()),
        poison: Mutex::new(None),
        poisoned: AtomicBool::new(false),
        counters,
        shutdown: AtomicBool::new(false),
        opts,
    };
    inner.delete_orphans(&inner.state())?;
    Ok(inner)
}
