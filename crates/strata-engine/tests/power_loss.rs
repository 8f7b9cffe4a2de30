//! Power loss and failing disks, on [`FaultFs`]: synced writes survive a power loss at any point
//! (after a flush, after a compaction, in the middle of unsynced writes, while background work
//! runs), unsynced batches come back whole or not at all, and a failed sync or write poisons the
//! store until it is reopened, after which it holds every acknowledged write.
//!
//! A power loss is modelled as the machine stopping at one instant ([`FaultFs::crash`]): nothing
//! the still-running `Db` does afterwards becomes durable. The concurrent-writers case does the
//! same steps by hand, since its writer threads must stop between them.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use strata_engine::fs::FaultFs;
use strata_engine::{Db, Error, Options, WriteBatch, WriteOptions};

const DIR: &str = "/db";
const KEYS_PER_BATCH: usize = 3;

fn opts(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        write_buffer_size: 32 * 1024,
        target_file_size: 32 * 1024,
        max_bytes_for_level_base: 128 * 1024,
        ..Options::default()
    }
}

fn open(fs: &FaultFs) -> Db {
    Db::open(DIR, opts(fs)).unwrap()
}

fn value(batch: &str, j: usize) -> Vec<u8> {
    format!("{batch}/{j}|").repeat(6).into_bytes()
}

fn batch(id: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    for j in 0..KEYS_PER_BATCH {
        b.put(format!("{id}:{j}").as_bytes(), value(id, j)).unwrap();
    }
    b
}

/// Reopens and checks that every batch present is whole and correct and that every batch in
/// `required` is present; returns the ids present.
fn verify(fs: &FaultFs, required: &BTreeSet<String>, what: &str) -> BTreeSet<String> {
    let db = Db::open(DIR, opts(fs)).unwrap_or_else(|e| panic!("reopen after {what}: {e}"));
    let mut present: BTreeMap<String, usize> = BTreeMap::new();
    for item in db.range(None, None).unwrap() {
        let (k, v) = item.unwrap();
        let k = String::from_utf8(k).unwrap();
        let (id, j) = k.rsplit_once(':').unwrap();
        assert_eq!(
            v,
            value(id, j.parse().unwrap()),
            "wrong value for {k} ({what})"
        );
        *present.entry(id.to_owned()).or_default() += 1;
    }
    for (id, n) in &present {
        assert_eq!(*n, KEYS_PER_BATCH, "batch {id} partly applied ({what})");
    }
    for id in required {
        assert!(present.contains_key(id), "synced batch {id} lost ({what})");
    }
    present.into_keys().collect()
}

#[test]
fn synced_writes_survive_power_loss_at_many_points() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let fs = FaultFs::new();
    let mut required = BTreeSet::new();
    for cycle in 0..18 {
        let db = open(&fs);
        let n = rng.random_range(100..400);
        for i in 0..n {
            let id = format!("c{cycle:02}-{i:04}");
            if i % 10 == 7 {
                db.write(batch(&id), WriteOptions::no_sync()).unwrap();
            } else {
                db.write(batch(&id), WriteOptions::default()).unwrap();
                required.insert(id);
            }
        }
        let what = match cycle % 6 {
            0 => {
                db.flush().unwrap();
                fs.crash(db);
                "a power loss right after a flush"
            }
            1 => {
                db.compact_range(None, None, &mut |_| {}).unwrap();
                fs.crash(db);
                "a power loss right after a compaction"
            }
            2 => {
                for i in 0..rng.random_range(1..50) {
                    let id = format!("c{cycle:02}-u{i:04}");
                    db.write(batch(&id), WriteOptions::no_sync()).unwrap();
                }
                fs.crash(db);
                "a power loss in the middle of unsynced writes"
            }
            3 => {
                for i in 0..rng.random_range(1..50) {
                    let id = format!("c{cycle:02}-u{i:04}");
                    db.write(batch(&id), WriteOptions::no_sync()).unwrap();
                }
                drop(db);
                fs.power_loss();
                "a clean close, then a power loss"
            }
            4 => {
                // Background flushes and compactions are likely still running.
                fs.crash(db);
                "a power loss right after the writes"
            }
            _ => {
                concurrent_writers_then_power_loss(&fs, db, cycle, &mut rng, &mut required);
                "a power loss under concurrent writers"
            }
        };
        verify(&fs, &required, &format!("cycle {cycle}: {what}"));
    }
}

/// Writer threads commit synced batches while the power fails at a random moment; only batches
/// acknowledged before that moment are required.
fn concurrent_writers_then_power_loss(
    fs: &FaultFs,
    db: Db,
    cycle: usize,
    rng: &mut StdRng,
    required: &mut BTreeSet<String>,
) {
    let acked = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let delay = Duration::from_millis(rng.random_range(5..80));
    std::thread::scope(|s| {
        for t in 0..3 {
            let (db, acked, stop) = (&db, &acked, &stop);
            s.spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let id = format!("c{cycle:02}-t{t}-{i:05}");
                    if db.write(batch(&id), WriteOptions::default()).is_err() {
                        return; // the disk is gone
                    }
                    acked.lock().unwrap().push(id);
                }
            });
        }
        std::thread::sleep(delay);
        let acks = acked.lock().unwrap();
        fs.set_fail_writes(true);
        fs.set_fail_syncs(true);
        fs.power_loss();
        required.extend(acks.iter().cloned());
        drop(acks);
        stop.store(true, Ordering::SeqCst);
    });
    drop(db);
    fs.power_loss();
    fs.set_fail_writes(false);
    fs.set_fail_syncs(false);
}

fn expect_poisoned(r: strata_engine::Result<()>) {
    assert!(
        matches!(r, Err(Error::Poisoned(_))),
        "expected Poisoned, got {r:?}"
    );
}

#[test]
fn failed_sync_poisons_until_reopen() {
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut required = BTreeSet::new();
    for i in 0..50 {
        let id = format!("a{i:03}");
        db.write(batch(&id), WriteOptions::default()).unwrap();
        required.insert(id);
    }
    fs.set_fail_syncs(true);
    let r = db.write(batch("failed"), WriteOptions::default());
    assert!(r.is_err(), "a write whose sync failed was acknowledged");
    expect_poisoned(db.write(batch("later"), WriteOptions::default()));
    expect_poisoned(db.write(batch("later-nosync"), WriteOptions::no_sync()));
    fs.set_fail_syncs(false);
    // Syncs work again, but the store stays poisoned until it is reopened.
    expect_poisoned(db.write(batch("after"), WriteOptions::default()));
    expect_poisoned(db.put(b"x", b"y"));
    assert!(db.flush().is_err());
    drop(db);
    fs.power_loss();

    let present = verify(&fs, &required, "a failed sync");
    for id in ["later", "later-nosync", "after"] {
        assert!(!present.contains(id), "refused write {id} appeared");
    }
    let db = open(&fs);
    db.write(batch("new"), WriteOptions::default()).unwrap();
    required.insert("new".into());
    drop(db);
    fs.power_loss();
    verify(&fs, &required, "writes after recovering from a failed sync");
}

#[test]
fn failed_sync_in_a_flush_poisons_until_reopen() {
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut required = BTreeSet::new();
    for i in 0..100 {
        let id = format!("f{i:03}");
        db.write(batch(&id), WriteOptions::default()).unwrap();
        required.insert(id);
    }
    fs.set_fail_syncs(true);
    assert!(db.flush().is_err(), "a flush whose syncs failed succeeded");
    fs.set_fail_syncs(false);
    expect_poisoned(db.write(batch("later"), WriteOptions::default()));
    // Reads still work from memory.
    assert_eq!(db.get(b"f000:0").unwrap(), Some(value("f000", 0)));
    fs.crash(db);
    verify(&fs, &required, "a failed sync during a flush");
}

#[test]
fn failed_write_poisons_until_reopen() {
    let fs = FaultFs::new();
    let db = open(&fs);
    let mut required = BTreeSet::new();
    for i in 0..50 {
        let id = format!("w{i:03}");
        db.write(batch(&id), WriteOptions::default()).unwrap();
        required.insert(id);
    }
    fs.set_fail_writes(true);
    // Unsynced writes reach the file system at once, so they see the failure too.
    assert!(db.write(batch("failed"), WriteOptions::no_sync()).is_err());
    expect_poisoned(db.write(batch("later"), WriteOptions::default()));
    fs.set_fail_writes(false);
    expect_poisoned(db.write(batch("after"), WriteOptions::default()));
    drop(db);
    fs.power_loss();
    let present = verify(&fs, &required, "a failed write");
    assert!(!present.contains("after"));

    let db = open(&fs);
    db.write(batch("new"), WriteOptions::default()).unwrap();
    required.insert("new".into());
    fs.crash(db);
    verify(
        &fs,
        &required,
        "writes after recovering from a failed write",
    );
}

#[test]
fn power_loss_before_anything_is_synced_leaves_an_openable_store() {
    let fs = FaultFs::new();
    let db = open(&fs);
    for i in 0..20 {
        db.write(batch(&format!("n{i}")), WriteOptions::no_sync())
            .unwrap();
    }
    fs.crash(db);
    verify(&fs, &BTreeSet::new(), "unsynced writes only");
}

#[test]
fn sync_wal_makes_earlier_unsynced_writes_durable() {
    let fs = FaultFs::new();
    let db = open(&fs);
    for i in 0..20 {
        db.write(batch(&format!("u{i}")), WriteOptions::no_sync())
            .unwrap();
    }
    let syncs = fs.sync_count();
    db.sync_wal().unwrap();
    assert!(fs.sync_count() > syncs, "sync_wal syncs the log");
    fs.crash(db);
    let required: BTreeSet<String> = (0..20).map(|i| format!("u{i}")).collect();
    verify(&fs, &required, "after sync_wal");
}
