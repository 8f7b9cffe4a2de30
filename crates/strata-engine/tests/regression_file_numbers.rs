//! Regression: a crash can leave files numbered at or past the MANIFEST's next file number (a
//! WAL created by a memtable switch after the last MANIFEST edit, or the new MANIFEST of an open
//! killed before it updated CURRENT). Reopening used to hand those numbers out again and fail
//! with "log file ... already exists"; found by `tests/crash.rs` killing a child during open.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::path::Path;
use std::sync::Arc;

use strata_engine::filename::{self, FileKind};
use strata_engine::fs::{FaultFs, FileSystem};
use strata_engine::wal::WalWriter;
use strata_engine::{Db, Options};

#[test]
fn stray_files_past_the_next_file_number_do_not_block_open() {
    let fs = FaultFs::new();
    let dir = Path::new("/db");
    let opts = Options {
        fs: Arc::new(fs.clone()),
        ..Options::default()
    };
    {
        let db = Db::open(dir, opts.clone()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let highest = fs
        .list_dir(dir)
        .unwrap()
        .iter()
        .filter_map(|n| match filename::parse(n) {
            Some(FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n)) => Some(n),
            _ => None,
        })
        .max()
        .unwrap();
    // What a killed open leaves behind: a MANIFEST that CURRENT never named, and an empty log.
    for n in highest + 1..highest + 4 {
        WalWriter::create(&fs, &filename::manifest(dir, n), n).unwrap();
    }
    WalWriter::create(&fs, &filename::wal(dir, highest + 4), highest + 4).unwrap();

    let db = Db::open(dir, opts.clone()).unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
    db.put(b"k2", b"v2").unwrap();
    drop(db);
    let db = Db::open(dir, opts).unwrap();
    assert_eq!(db.get(b"k2").unwrap(), Some(b"v2".to_vec()));
}
