//! Writes of one key that a later write in the same commit group supersedes are kept out of the
//! memtable (the WAL still has them): reads, scans, snapshots taken before the group, range
//! deletions inside it and recovery from the WAL all see exactly what they saw when every
//! version was inserted, and the statistics still count every write.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::sync::Arc;

use futures::executor::block_on;
use futures::future::join_all;
use strata_engine::fs::FaultFs;
use strata_engine::{Db, Options, WriteBatch, WriteOptions};

const DIR: &str = "/db";

fn open(fs: &FaultFs) -> Db {
    let opts = Options {
        fs: Arc::new(fs.clone()),
        ..Options::default()
    };
    Db::open(DIR, opts).unwrap()
}

fn value_of(db: &Db, key: &[u8]) -> Option<Vec<u8>> {
    db.get(key).unwrap()
}

fn scan(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.range(None, None)
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
}

#[test]
fn a_batch_that_overwrites_its_own_keys_reads_as_its_last_writes() {
    let fs = FaultFs::new();
    let db = open(&fs);
    db.put(b"gone", b"before").unwrap();
    let before = db.snapshot();
    let start_keys = db.stats().keys_written;

    let mut batch = WriteBatch::new();
    batch.put(b"hot", b"1").unwrap();
    batch.put(b"hot", b"2").unwrap();
    batch.delete(b"hot").unwrap();
    batch.put(b"hot", b"3").unwrap();
    batch.put(b"gone", b"x").unwrap();
    batch.delete(b"gone").unwrap();
    // A put the range deletion covers stays deleted; one after it survives.
    batch.put(b"r1", b"old").unwrap();
    batch.put(b"r2", b"old").unwrap();
    batch.delete_range(b"r", b"s").unwrap();
    batch.put(b"r2", b"new").unwrap();
    db.write(batch, WriteOptions::default()).unwrap();

    assert_eq!(value_of(&db, b"hot").as_deref(), Some(&b"3"[..]));
    assert_eq!(value_of(&db, b"gone"), None);
    assert_eq!(value_of(&db, b"r1"), None);
    assert_eq!(value_of(&db, b"r2").as_deref(), Some(&b"new"[..]));
    assert_eq!(
        scan(&db),
        [
            (b"hot".to_vec(), b"3".to_vec()),
            (b"r2".to_vec(), b"new".to_vec())
        ]
    );
    assert_eq!(
        before.get(b"gone").unwrap().as_deref(),
        Some(&b"before"[..])
    );
    assert_eq!(before.get(b"hot").unwrap(), None);
    assert_eq!(
        db.stats().keys_written - start_keys,
        10,
        "every write is counted"
    );

    drop(before);
    drop(db);
    let db = open(&fs);
    assert_eq!(value_of(&db, b"hot").as_deref(), Some(&b"3"[..]));
    assert_eq!(value_of(&db, b"gone"), None);
    assert_eq!(value_of(&db, b"r1"), None);
    assert_eq!(value_of(&db, b"r2").as_deref(), Some(&b"new"[..]));
}

#[test]
fn overwrites_in_one_group_take_one_memtable_entry() {
    let once = FaultFs::new();
    let db_once = open(&once);
    db_once.put(b"counter", b"0099").unwrap();

    let many = FaultFs::new();
    let db_many = open(&many);
    let mut batch = WriteBatch::new();
    for i in 0..100 {
        batch.put(b"counter", format!("{i:04}")).unwrap();
    }
    db_many.write(batch, WriteOptions::default()).unwrap();

    assert_eq!(
        value_of(&db_many, b"counter").as_deref(),
        Some(&b"0099"[..])
    );
    assert_eq!(
        db_many.stats().memtable_bytes,
        db_once.stats().memtable_bytes,
        "the superseded versions took no memtable space"
    );
}

#[test]
fn concurrent_queued_overwrites_of_one_key_end_with_the_last_queued() {
    let fs = FaultFs::new();
    let db = open(&fs);
    // Queued back to back, many of these land in one commit group.
    let pending: Vec<_> = (0..500u32)
        .map(|i| {
            let mut b = WriteBatch::new();
            b.put(b"hot", i.to_be_bytes()).unwrap();
            b.put(format!("k{i:03}"), b"v").unwrap();
            db.write_queued(b, WriteOptions::no_sync())
        })
        .collect();
    for result in block_on(join_all(pending)) {
        result.unwrap();
    }
    db.wait_queued_writes().unwrap();
    assert_eq!(value_of(&db, b"hot").unwrap(), 499u32.to_be_bytes());
    assert_eq!(scan(&db).len(), 501);

    db.sync_wal().unwrap();
    drop(db);
    let db = open(&fs);
    assert_eq!(value_of(&db, b"hot").unwrap(), 499u32.to_be_bytes());
    assert_eq!(scan(&db).len(), 501);
}
