//! Space reclaimed by a manual compaction: with automatic compaction off, an overwrite-heavy
//! load (every key written five times, a third of the keys then deleted) leaves many versions
//! on disk; a full compaction must shrink the directory by at least 60%.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::Path;

use strata_engine::{Db, Options, WriteBatch, WriteOptions};

/// Bytes of the store's tables: what compaction rewrites (the WAL's size is the space it
/// reserved ahead of its records, the same before and after).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn full_compaction_reclaims_overwrites_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            auto_compaction: false,
            write_buffer_size: 1 << 20,
            ..Options::default()
        },
    )
    .unwrap();
    const KEYS: u32 = 20_000;
    for round in 0..5u32 {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
            let mut b = WriteBatch::new();
            for k in chunk {
                b.put(
                    format!("key{k:08}"),
                    format!("{round:02}-{}", "v".repeat(97)),
                )
                .unwrap();
            }
            db.write(b, WriteOptions::no_sync()).unwrap();
        }
    }
    for k in (0..KEYS).step_by(3) {
        let mut b = WriteBatch::new();
        b.delete(format!("key{k:08}")).unwrap();
        db.write(b, WriteOptions::no_sync()).unwrap();
    }
    db.flush().unwrap();
    let before = dir_bytes(dir.path());
    let tables_before = db.stats().table_files();
    let mut progress_calls = 0;
    let report = db
        .compact_range(None, None, &mut |p| {
            assert!(p.bytes_done <= p.bytes_total);
            progress_calls += 1;
        })
        .unwrap();
    let after = dir_bytes(dir.path());
    let shrink = 1.0 - after as f64 / before as f64;
    println!(
        "directory {before} -> {after} bytes ({:.1}% smaller); tables {tables_before} -> {}; \
         report {report:?}",
        shrink * 100.0,
        report.files_after
    );
    assert!(shrink >= 0.60, "only {:.1}% reclaimed", shrink * 100.0);
    assert_eq!(report.files_before, tables_before);
    assert!(progress_calls > 0);
    let live = u64::from(KEYS - KEYS.div_ceil(3));
    assert_eq!(
        report.keys_in - report.keys_dropped,
        live,
        "only live keys remain"
    );
    let stats = db.stats();
    assert_eq!(stats.keys_removed, report.keys_dropped);
    assert_eq!(stats.bytes_reclaimed, report.bytes_reclaimed());
    assert_eq!(db.get(b"key00000001").unwrap().unwrap()[..2], *b"04");
    assert_eq!(db.get(b"key00000003").unwrap(), None);
}
