//! A flush writes each key's newest version only, unless a snapshot still reads an older one:
//! a key overwritten many times between flushes reaches disk once, a deleted key leaves only
//! its tombstone, and both survive a reopen.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use strata_engine::{Db, Options};

fn open(dir: &std::path::Path) -> Db {
    Db::open(
        dir,
        Options {
            auto_compaction: false,
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn overwritten_versions_are_left_out_unless_a_snapshot_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut snapshot = None;
    for i in 1..=100u32 {
        db.put(b"k", format!("v{i}").as_bytes()).unwrap();
        if i == 50 {
            snapshot = Some(db.snapshot());
        }
    }
    for i in 1..=10u32 {
        db.put(b"d", format!("d{i}").as_bytes()).unwrap();
    }
    db.delete(b"d").unwrap();
    db.flush().unwrap();

    // k: v100 and the snapshot's v50 stay, 98 versions go; d: its tombstone stays, 10 go.
    assert_eq!(db.stats().keys_removed, 98 + 10);
    let snapshot = snapshot.unwrap();
    assert_eq!(snapshot.get(b"k").unwrap(), Some(b"v50".to_vec()));
    assert_eq!(db.get(b"k").unwrap(), Some(b"v100".to_vec()));
    assert_eq!(db.get(b"d").unwrap(), None);
    drop(snapshot);
    drop(db);

    let db = open(dir.path());
    assert_eq!(db.get(b"k").unwrap(), Some(b"v100".to_vec()));
    assert_eq!(db.get(b"d").unwrap(), None);
    let l0 = &db.stats().levels[0];
    assert_eq!(l0.files, 1);
    assert!(l0.bytes < 4096, "L0 holds {} bytes", l0.bytes);
}
