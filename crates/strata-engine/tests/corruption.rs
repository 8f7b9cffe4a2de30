//! Damaged files: truncations and bit flips in the WAL, in each part of an SSTable, in the
//! MANIFEST and in CURRENT. Every outcome is either a clean error naming the damaged file or the
//! correct data: never a panic, never a wrong value, never a key silently missing. Also: the lock
//! refuses a second open, and a store written by a newer format version is refused.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_engine::filename::{self, FileKind};
use strata_engine::fs::{FaultFs, FileSystem};
use strata_engine::table::format::{FOOTER_LEN, Footer};
use strata_engine::version::{FORMAT_VERSION, VersionEdit};
use strata_engine::wal::{RecoveryMode, WalWriter, read_wal};
use strata_engine::{Db, Error, Options};

const DIR: &str = "/db";
const KEYS: usize = 300;

fn opts(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        auto_compaction: false,
        ..Options::default()
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-").repeat(5).into_bytes()
}

/// A store whose data sits in `KEYS` synced WAL records (nothing flushed).
fn store_in_wal() -> FaultFs {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    for i in 0..KEYS {
        db.put(&key(i), &value(i)).unwrap();
    }
    fs
}

/// A store whose data sits in one table.
fn store_in_table() -> FaultFs {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    for i in 0..KEYS {
        db.put(&key(i), &value(i)).unwrap();
    }
    db.flush().unwrap();
    fs
}

fn files(fs: &FaultFs, pick: impl Fn(FileKind) -> bool) -> Vec<PathBuf> {
    fs.list_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| filename::parse(n).is_some_and(&pick))
        .map(|n| Path::new(DIR).join(n))
        .collect()
}

fn only(fs: &FaultFs, pick: impl Fn(FileKind) -> bool) -> PathBuf {
    let mut found = files(fs, pick);
    found.retain(|p| fs.file_size(p).unwrap() > 24);
    assert_eq!(found.len(), 1, "expected one such file: {found:?}");
    found.pop().unwrap()
}

/// Where the records of the log at `path` end: its last non-zero byte, since a log reserves
/// zeroed space past its records (and its last record ends in a value's bytes here).
fn records_end(fs: &FaultFs, wal: &Path) -> u64 {
    let bytes = fs.read_all(wal).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1) as u64
}

fn flip(fs: &FaultFs, path: &Path, offset: usize) -> u8 {
    let old = fs.read_all(path).unwrap()[offset];
    fs.corrupt(path, offset, &[old ^ 0x5a]).unwrap();
    old
}

fn assert_names(e: &Error, file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        e.to_string().contains(&name),
        "error does not name {name}: {e}"
    );
}

/// Opens and reads everything; returns true if any damage was reported. Panics on a wrong value,
/// a missing key or an error that is not about damaged data.
fn check_outcome(fs: &FaultFs, damaged: &Path) -> bool {
    let db = match Db::open(DIR, opts(fs)) {
        Ok(db) => db,
        Err(e) => {
            assert!(
                e.is_corruption() || matches!(e, Error::UnsupportedVersion { .. }),
                "open failed with an unexpected error: {e}"
            );
            assert_names(&e, damaged);
            return true;
        }
    };
    let mut damage_seen = false;
    for i in 0..KEYS {
        match db.get(&key(i)) {
            Ok(v) => assert_eq!(v, Some(value(i)), "wrong answer for key {i}"),
            Err(e) => {
                assert!(
                    e.is_corruption(),
                    "get failed with an unexpected error: {e}"
                );
                assert_names(&e, damaged);
                damage_seen = true;
            }
        }
    }
    let mut seen = 0;
    let mut scan_failed = false;
    for item in db.range(None, None).unwrap() {
        match item {
            Ok((k, v)) => {
                assert_eq!(
                    (k, v),
                    (key(seen), value(seen)),
                    "scan returned a wrong entry"
                );
                seen += 1;
            }
            Err(e) => {
                assert!(
                    e.is_corruption(),
                    "scan failed with an unexpected error: {e}"
                );
                scan_failed = true;
                break;
            }
        }
    }
    assert!(
        scan_failed || seen == KEYS,
        "scan silently stopped at {seen}"
    );
    damage_seen || scan_failed
}

#[test]
fn wal_torn_tail_is_cut_off() {
    let fs = store_in_wal();
    let wal = only(&fs, |k| matches!(k, FileKind::Wal(_)));
    let len = records_end(&fs, &wal);
    fs.truncate(&wal, len - 3).unwrap();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    for i in 0..KEYS - 1 {
        assert_eq!(db.get(&key(i)).unwrap(), Some(value(i)));
    }
    assert_eq!(
        db.get(&key(KEYS - 1)).unwrap(),
        None,
        "the torn record came back"
    );
}

#[test]
fn wal_damage_before_the_tail_is_an_error_unless_skipping_is_asked_for() {
    let fs = store_in_wal();
    let wal = only(&fs, |k| matches!(k, FileKind::Wal(_)));
    let len = records_end(&fs, &wal) as usize;
    flip(&fs, &wal, len / 3);
    let e = Db::open(DIR, opts(&fs)).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert_names(&e, &wal);

    let db = Db::open(
        DIR,
        Options {
            skip_damaged_wal_records: true,
            ..opts(&fs)
        },
    )
    .unwrap();
    assert!(db.stats().wal_records_skipped > 0);
    let present = (0..KEYS)
        .filter(|i| match db.get(&key(*i)).unwrap() {
            Some(v) => {
                assert_eq!(v, value(*i));
                true
            }
            None => false,
        })
        .count();
    assert!(present < KEYS, "the damaged record was not skipped");
    assert!(present >= KEYS - 2, "more than the damaged record was lost");
    assert_eq!(db.get(&key(KEYS - 1)).unwrap(), Some(value(KEYS - 1)));
}

#[test]
fn damage_in_each_table_block_is_reported() {
    let fs = store_in_table();
    let sst = only(&fs, |k| matches!(k, FileKind::Table(_)));
    let bytes = fs.read_all(&sst).unwrap();
    let footer_at = bytes.len() - FOOTER_LEN;
    let footer = Footer::decode(&bytes[footer_at..], &sst, footer_at as u64).unwrap();
    assert!(
        footer.filter.size > 0,
        "the table should have a bloom filter"
    );
    let mid = |h: strata_engine::table::format::BlockHandle| (h.offset + h.size / 2) as usize;
    for (what, offset) in [
        ("first data block", 10),
        ("a middle data block", footer.index.offset as usize / 2),
        ("index block", mid(footer.index)),
        ("filter block", mid(footer.filter)),
        ("properties block", mid(footer.properties)),
        ("footer handles", footer_at + 3),
        ("footer checksum", footer_at + 65),
        ("magic number", bytes.len() - 1),
    ] {
        let old = flip(&fs, &sst, offset);
        assert!(
            check_outcome(&fs, &sst),
            "damage to the {what} at {offset} went unnoticed"
        );
        fs.corrupt(&sst, offset, &[old]).unwrap();
    }
    assert!(!check_outcome(&fs, &sst), "the restored table still fails");
}

#[test]
fn bit_flips_anywhere_in_a_table_give_an_error_or_the_right_answer() {
    let fs = store_in_table();
    let sst = only(&fs, |k| matches!(k, FileKind::Table(_)));
    let len = fs.file_size(&sst).unwrap() as usize;
    let mut detected = 0;
    let mut tried = 0;
    for offset in (0..len).step_by(11) {
        let old = flip(&fs, &sst, offset);
        detected += usize::from(check_outcome(&fs, &sst));
        tried += 1;
        fs.corrupt(&sst, offset, &[old]).unwrap();
    }
    // Every byte of a table is covered by a checksum or is the magic number.
    assert_eq!(detected, tried, "some flips went unnoticed");
}

#[test]
fn truncated_table_is_an_error() {
    let fs = store_in_table();
    let sst = only(&fs, |k| matches!(k, FileKind::Table(_)));
    let len = fs.file_size(&sst).unwrap();
    for cut in [0, 10, len / 2, len - 1] {
        let fs = store_in_table();
        fs.truncate(&sst, cut).unwrap();
        let e = Db::open(DIR, opts(&fs)).unwrap_err();
        assert!(e.is_corruption(), "cut at {cut}: {e}");
        assert_names(&e, &sst);
    }
}

#[test]
fn missing_table_is_an_error() {
    let fs = store_in_table();
    let sst = only(&fs, |k| matches!(k, FileKind::Table(_)));
    fs.remove_file(&sst).unwrap();
    let e = Db::open(DIR, opts(&fs)).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert_names(&e, &sst);
}

fn manifest(fs: &FaultFs) -> PathBuf {
    let current = fs.read_all(&filename::current(Path::new(DIR))).unwrap();
    Path::new(DIR).join(String::from_utf8(current).unwrap().trim())
}

#[test]
fn damaged_manifest_is_an_error() {
    let fs = store_in_table();
    let m = manifest(&fs);
    // The first record (the snapshot edit) is followed by others: damage there is not a torn tail.
    flip(&fs, &m, 24 + 10);
    let e = Db::open(DIR, opts(&fs)).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert_names(&e, &m);

    for cut in [0, 10, 24] {
        let fs = store_in_table();
        let m = manifest(&fs);
        fs.truncate(&m, cut).unwrap();
        let e = Db::open(DIR, opts(&fs)).unwrap_err();
        assert!(e.is_corruption(), "MANIFEST cut at {cut}: {e}");
        assert_names(&e, &m);
    }
}

#[test]
fn damaged_current_is_an_error() {
    let current = filename::current(Path::new(DIR));
    for contents in [
        &b""[..],
        b"garbage",
        b"MANIFEST-000001",
        b"../MANIFEST-000001\n",
    ] {
        let fs = store_in_table();
        fs.truncate(&current, 0).unwrap();
        let mut f = fs.open_append(&current).unwrap();
        f.append(contents).unwrap();
        f.sync().unwrap();
        drop(f);
        let e = Db::open(DIR, opts(&fs)).unwrap_err();
        assert!(e.is_corruption(), "CURRENT = {contents:?}: {e}");
        assert_names(&e, &current);
    }
    // CURRENT naming a MANIFEST that is not there.
    let fs = store_in_table();
    let m = manifest(&fs);
    fs.remove_file(&m).unwrap();
    let e = Db::open(DIR, opts(&fs)).unwrap_err();
    assert_names(&e, &m);
}

#[test]
fn a_second_open_of_a_locked_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    let e = Db::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn a_manifest_from_a_newer_format_is_refused() {
    let fs = store_in_table();
    let m = manifest(&fs);
    let records = read_wal(&fs, &m, RecoveryMode::TolerateTornTail)
        .unwrap()
        .records;
    let number = match filename::parse(&m.file_name().unwrap().to_string_lossy()) {
        Some(FileKind::Manifest(n)) => n,
        other => panic!("not a MANIFEST: {other:?}"),
    };
    fs.remove_file(&m).unwrap();
    let mut w = WalWriter::create(&fs, &m, number).unwrap();
    for (i, r) in records.iter().enumerate() {
        let mut edit = VersionEdit::decode(r).unwrap();
        if i == 0 {
            edit.format_version = Some(FORMAT_VERSION + 1);
        }
        w.add_record(&edit.encode()).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let e = Db::open(DIR, opts(&fs)).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedVersion { found, .. } if found == FORMAT_VERSION + 1),
        "{e}"
    );
}

/// CRC32C (Castagnoli), bit by bit: enough to re-seal a patched footer.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_table_from_a_newer_format_is_refused() {
    let fs = store_in_table();
    let sst = only(&fs, |k| matches!(k, FileKind::Table(_)));
    let bytes = fs.read_all(&sst).unwrap();
    let at = bytes.len() - FOOTER_LEN;
    let newer = strata_engine::table::format::FORMAT_VERSION + 1;
    let mut covered = bytes[at..at + 64].to_vec();
    covered.extend_from_slice(&newer.to_le_bytes());
    let mut patch = crc32c(&covered).to_le_bytes().to_vec();
    patch.extend_from_slice(&newer.to_le_bytes());
    fs.corrupt(&sst, at + 64, &patch).unwrap();
    let e = Db::open(DIR, opts(&fs)).unwrap_err();
    assert!(
        matches!(e, Error::UnsupportedVersion { found, .. } if found == newer),
        "{e}"
    );
}
