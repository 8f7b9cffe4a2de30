//! [`VersionSet`]: the current version and its persistence. Every change is appended to the
//! MANIFEST (a log of [`VersionEdit`]s framed like the WAL) and synced before it takes effect;
//! `CURRENT` names the live MANIFEST and is replaced atomically. Each open writes a fresh
//! MANIFEST holding one snapshot edit, so the log never grows without bound across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileDesc, FileMeta, NUM_LEVELS, Version, VersionEdit};
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::filename::{self, FileKind};
use crate::fs::{FileSystem, write_file_atomic};
use crate::key::SeqNo;
use crate::table::Table;
use crate::wal::{RecoveryMode, WalWriter, read_wal};

/// The store format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The current version plus the counters and MANIFEST that persist it.
#[derive(Debug)]
pub struct VersionSet {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    cache: Arc<BlockCache>,
    manifest: WalWriter,
    next_file_number: u64,
    log_number: u64,
    last_seq: SeqNo,
    current: Arc<Version>,
}

fn open_table(
    fs: &dyn FileSystem,
    dir: &Path,
    number: u64,
    cache: &Arc<BlockCache>,
) -> Result<Arc<Table>> {
    let path = filename::table(dir, number);
    if !fs.exists(&path) {
        return Err(Error::corruption(
            &path,
            0,
            "table listed in the MANIFEST is missing",
        ));
    }
    Ok(Arc::new(Table::open_with_cache(
        fs.open_random(&path)?,
        &path,
        Some(Arc::clone(cache)),
    )?))
}

impl VersionSet {
    /// Initialises a new, empty store in `dir`.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        cache: Arc<BlockCache>,
    ) -> Result<VersionSet> {
        Self::install_manifest(fs, dir, cache, 2, 1, 0, Arc::new(Version::default()))
    }

    /// Loads the store in `dir` from `CURRENT` and its MANIFEST, then starts a fresh MANIFEST.
    pub fn recover(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        cache: Arc<BlockCache>,
    ) -> Result<VersionSet> {
        let current_path = filename::current(dir);
        let current = fs.read_all(&current_path)?;
        let name = std::str::from_utf8(&current)
            .ok()
            .and_then(|s| s.strip_suffix('\n'))
            .filter(|s| s.starts_with("MANIFEST-") && !s.contains('/'))
            .ok_or_else(|| {
                Error::corruption(&current_path, 0, "CURRENT does not name a MANIFEST")
            })?;
        let manifest_path = dir.join(name);
        let contents = read_wal(fs.as_ref(), &manifest_path, RecoveryMode::TolerateTornTail)?;

        let mut files: [BTreeMap<u64, FileDesc>; NUM_LEVELS] = Default::default();
        let (mut log_number, mut next_file, mut last_seq) = (0, 2, 0);
        for (i, record) in contents.records.iter().enumerate() {
            let edit = VersionEdit::decode(record).ok_or_else(|| {
                Error::corruption(
                    &manifest_path,
                    i as u64,
                    "undecodable version edit (record index)",
                )
            })?;
            if let Some(v) = edit.format_version
                && v > FORMAT_VERSION
            {
                return Err(Error::UnsupportedVersion {
                    path: manifest_path,
                    found: v,
                    supported: FORMAT_VERSION,
                });
            }
            log_number = edit.log_number.unwrap_or(log_number);
            next_file = edit.next_file_number.unwrap_or(next_file);
            last_seq = edit.last_seq.unwrap_or(last_seq);
            for (level, number) in &edit.deleted_files {
                if let Some(l) = files.get_mut(*level) {
                    l.remove(number);
                }
            }
            for f in edit.new_files {
                if f.number > filename::MAX_FILE_NUMBER {
                    return Err(Error::corruption(
                        &manifest_path,
                        i as u64,
                        "table number past the file-number limit",
                    ));
                }
                let slot = files.get_mut(f.level).ok_or_else(|| {
                    Error::corruption(&manifest_path, i as u64, "table level out of range")
                })?;
                slot.insert(f.number, f);
            }
        }
        if next_file > filename::MAX_FILE_NUMBER {
            return Err(Error::corruption(
                &manifest_path,
                0,
                "next file number past the file-number limit",
            ));
        }
        if contents.records.is_empty() {
            return Err(Error::corruption(
                &manifest_path,
                0,
                "MANIFEST holds no version",
            ));
        }

        let mut version = Version::default();
        for (level, descs) in files.into_iter().enumerate() {
            for (_, desc) in descs {
                let table = open_table(fs.as_ref(), dir, desc.number, &cache)?;
                next_file = next_file.max(desc.number.saturating_add(1));
                version.levels[level].push(Arc::new(FileMeta { desc, table }));
            }
        }
        // A crash can leave files numbered at or past the MANIFEST's next file number: logs and
        // tables created after its last edit, or the MANIFEST of an open that died before it
        // updated CURRENT. New files must not reuse those numbers, or creating them fails.
        for name in fs.list_dir(dir)? {
            if let Some(FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n)) =
                filename::parse(&name)
            {
                next_file = next_file.max(n + 1);
            }
        }
        sort_levels(&mut version);
        version.rebuild_range_tombstones();
        last_seq = last_seq.max(version.max_seq());
        let vs = Self::install_manifest(
            Arc::clone(&fs),
            dir,
            cache,
            next_file,
            log_number,
            last_seq,
            Arc::new(version),
        )?;
        if manifest_path != filename::manifest(dir, vs.manifest.log_number()) {
            // The old MANIFEST is superseded; failing to remove it only wastes space.
            let _ = fs.remove_file(&manifest_path);
        }
        Ok(vs)
    }

    /// Writes a new MANIFEST holding the whole state and points `CURRENT` at it.
    fn install_manifest(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        cache: Arc<BlockCache>,
        next_file_number: u64,
        log_number: u64,
        last_seq: SeqNo,
        current: Arc<Version>,
    ) -> Result<VersionSet> {
        let number = next_file_number;
        let next_file_number = number + 1;
        let path = filename::manifest(dir, number);
        let mut manifest = WalWriter::create(fs.as_ref(), &path, number)?;
        let snapshot = snapshot_edit(log_number, next_file_number, last_seq, &current);
        manifest.add_record(&snapshot.encode())?;
        manifest.sync()?;
        let name = format!("{}\n", filename::manifest_name(number));
        write_file_atomic(fs.as_ref(), &filename::current(dir), name.as_bytes())?;
        Ok(VersionSet {
            fs,
            dir: dir.to_path_buf(),
            cache,
            manifest,
            next_file_number,
            log_number,
            last_seq,
            current,
        })
    }

    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current)
    }

    /// Reserves a new file number.
    pub fn new_file_number(&mut self) -> u64 {
        let n = self.next_file_number;
        self.next_file_number += 1;
        n
    }

    /// The oldest WAL still needed.
    pub fn log_number(&self) -> u64 {
        self.log_number
    }

    /// The MANIFEST's file number.
    pub fn manifest_number(&self) -> u64 {
        self.manifest.log_number()
    }

    /// The highest sequence number recorded in the MANIFEST.
    pub fn last_seq(&self) -> SeqNo {
        self.last_seq
    }

    /// Persists `edit` (synced) and installs the version it produces. `tables` are the opened
    /// tables of `edit.new_files`, in the same order.
    pub fn log_and_apply(
        &mut self,
        mut edit: VersionEdit,
        tables: Vec<Arc<Table>>,
    ) -> Result<Arc<Version>> {
        if tables.len() != edit.new_files.len() {
            return Err(Error::InvalidArgument(
                "log_and_apply needs one table per new file".into(),
            ));
        }
        if let Some(n) = edit.log_number {
            self.log_number = self.log_number.max(n);
        }
        if let Some(s) = edit.last_seq {
            self.last_seq = self.last_seq.max(s);
        }
        edit.next_file_number = Some(self.next_file_number);
        self.manifest.add_record(&edit.encode())?;
        self.manifest.sync()?;

        let mut v = (*self.current).clone();
        for (level, number) in &edit.deleted_files {
            if let Some(files) = v.levels.get_mut(*level) {
                files.retain(|f| f.desc.number != *number);
            }
        }
        for (desc, table) in edit.new_files.into_iter().zip(tables) {
            let level = desc.level.min(NUM_LEVELS - 1);
            v.levels[level].push(Arc::new(FileMeta { desc, table }));
        }
        sort_levels(&mut v);
        v.rebuild_range_tombstones();
        self.current = Arc::new(v);
        Ok(self.current())
    }

    /// Writes a store in `target` that holds the current tables (hard-linked) and a MANIFEST
    /// describing them, with no WAL to replay.
    pub fn write_checkpoint(&self, target: &Path) -> Result<()> {
        for f in self.current.levels.iter().flatten() {
            self.fs.hard_link(
                &filename::table(&self.dir, f.desc.number),
                &filename::table(target, f.desc.number),
            )?;
        }
        self.fs.sync_dir(target)?;
        let next = self.next_file_number;
        Self::install_manifest(
            Arc::clone(&self.fs),
            target,
            Arc::clone(&self.cache),
            next,
            next,
            self.last_seq,
            self.current(),
        )
        .map(drop)
    }

    /// File numbers of every live table.
    pub fn live_tables(&self) -> Vec<u64> {
        self.current
            .levels
            .iter()
            .flatten()
            .map(|f| f.desc.number)
            .collect()
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file system.
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }
}

/// One edit that recreates `version` and the counters from nothing.
fn snapshot_edit(
    log_number: u64,
    next_file_number: u64,
    last_seq: SeqNo,
    version: &Version,
) -> VersionEdit {
    VersionEdit {
        format_version: Some(FORMAT_VERSION),
        log_number: Some(log_number),
        next_file_number: Some(next_file_number),
        last_seq: Some(last_seq),
        new_files: version
            .levels
            .iter()
            .flatten()
            .map(|f| f.desc.clone())
            .collect(),
        deleted_files: Vec::new(),
    }
}

fn sort_levels(v: &mut Version) {
    for (level, files) in v.levels.iter_mut().enumerate() {
        if level == 0 {
            // Newest data first. Flushes write disjoint sequence ranges in order, and a tiered
            // merge of consecutive runs covers theirs, so the largest sequence number orders
            // them; the file number breaks ties between tables of one merge.
            files.sort_by_key(|f| std::cmp::Reverse((f.desc.largest_seq, f.desc.number)));
        } else {
            files.sort_by(|a, b| a.desc.smallest.cmp(&b.desc.smallest));
        }
    }
}
