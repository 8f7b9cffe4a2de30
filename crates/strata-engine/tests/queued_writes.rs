//! [`Db::write_queued`], the async write path: queued writes keep their order with blocking
//! writes, a synced one is durable when its future resolves (simulated power loss on
//! [`FaultFs`]), a failed sync fails and poisons as for blocking writers, dropping the store
//! resolves every pending future, and [`Db::wait_queued_writes`] makes queued writes visible.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::executor::block_on;
use futures::future::join_all;
use strata_engine::fs::FaultFs;
use strata_engine::{Db, Error, Options, PendingWrite, WriteBatch, WriteOptions};

const DIR: &str = "/db";

fn opts(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        write_buffer_size: 32 * 1024,
        target_file_size: 32 * 1024,
        ..Options::default()
    }
}

fn put(key: &str, value: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(key.as_bytes(), value.as_bytes()).unwrap();
    b
}

fn value_of(db: &Db, key: &str) -> Option<String> {
    db.get(key.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

#[test]
fn queued_and_blocking_writes_keep_their_order() {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let db = &db;
            s.spawn(move || {
                let key = format!("k{t}");
                for i in 0..300 {
                    // Alternate the paths on one key: each write must land after the one
                    // before it, whichever path either took.
                    let v = format!("{i:05}");
                    if i % 2 == 0 {
                        let pending = db.write_queued(put(&key, &v), WriteOptions::no_sync());
                        if i % 10 == 0 {
                            block_on(pending).unwrap();
                        }
                    } else {
                        db.write(put(&key, &v), WriteOptions::no_sync()).unwrap();
                    }
                    let seen = value_of(db, &key).unwrap();
                    assert!(seen.as_str() <= v.as_str(), "{key}: saw {seen} after {v}");
                }
            });
        }
    });
    db.wait_queued_writes().unwrap();
    for t in 0..4 {
        assert_eq!(value_of(&db, &format!("k{t}")).as_deref(), Some("00299"));
    }
    assert_eq!(db.stats().keys_written, 1200);
}

#[test]
fn wait_queued_writes_makes_them_visible() {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    let pending: Vec<PendingWrite> = (0..200)
        .map(|i| db.write_queued(put(&format!("q{i:03}"), "v"), WriteOptions::default()))
        .collect();
    db.wait_queued_writes().unwrap();
    for i in 0..200 {
        assert!(value_of(&db, &format!("q{i:03}")).is_some(), "q{i:03}");
    }
    for r in block_on(join_all(pending)) {
        r.unwrap();
    }
}

#[test]
fn a_resolved_synced_write_survives_power_loss() {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    let mut required = BTreeSet::new();
    for round in 0..20 {
        let keys: Vec<String> = (0..50).map(|i| format!("r{round:02}-{i:02}")).collect();
        let pending: Vec<PendingWrite> = keys
            .iter()
            .map(|k| db.write_queued(put(k, k), WriteOptions::default()))
            .collect();
        for (k, r) in keys.into_iter().zip(block_on(join_all(pending))) {
            r.unwrap();
            required.insert(k);
        }
        // Unsynced writes after the synced ones may be lost; the synced ones may not.
        drop(db.write_queued(put(&format!("u{round}"), "u"), WriteOptions::no_sync()));
    }
    fs.crash(db);

    let db = Db::open(DIR, opts(&fs)).unwrap();
    for k in &required {
        assert_eq!(value_of(&db, k).as_deref(), Some(k.as_str()), "{k} lost");
    }
}

#[test]
fn a_failed_sync_fails_the_queued_write_and_poisons() {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    block_on(db.write_queued(put("a", "1"), WriteOptions::default())).unwrap();
    fs.set_fail_syncs(true);
    let failed = block_on(db.write_queued(put("b", "2"), WriteOptions::default()));
    assert!(
        failed.is_err(),
        "a write whose sync failed was acknowledged"
    );
    fs.set_fail_syncs(false);
    let later = block_on(db.write_queued(put("c", "3"), WriteOptions::default()));
    assert!(matches!(later, Err(Error::Poisoned(_))), "got {later:?}");
    assert!(db.write(put("d", "4"), WriteOptions::default()).is_err());
    drop(db);
    fs.power_loss();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    assert_eq!(value_of(&db, "a").as_deref(), Some("1"));
    assert_eq!(value_of(&db, "c"), None);
}

#[test]
fn dropping_the_store_resolves_every_pending_write() {
    let fs = FaultFs::new();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    let keys: Vec<String> = (0..2000).map(|i| format!("d{i:04}")).collect();
    let pending: Vec<PendingWrite> = keys
        .iter()
        .map(|k| db.write_queued(put(k, "v"), WriteOptions::default()))
        .collect();
    drop(db);
    let outcomes = block_on(join_all(pending));
    let mut acknowledged = Vec::new();
    for (k, r) in keys.iter().zip(outcomes) {
        match r {
            Ok(()) => acknowledged.push(k),
            Err(Error::Closed) => {}
            Err(e) => panic!("{k}: unexpected {e}"),
        }
    }
    fs.power_loss();
    let db = Db::open(DIR, opts(&fs)).unwrap();
    for k in acknowledged {
        assert_eq!(value_of(&db, k).as_deref(), Some("v"), "{k} lost");
    }
}
