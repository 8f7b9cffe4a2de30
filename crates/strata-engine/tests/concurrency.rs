//! Several writers, readers and scanners at once while memtables flush and compactions run in
//! the background. Each writer owns a slice of the key space and writes increasing versions;
//! readers check that a key's version never goes backwards, snapshot scans check that a batch
//! written atomically is seen whole, and the final state is checked key by key.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use strata_engine::{Db, Options, WriteBatch, WriteOptions};

const WRITERS: u64 = 4;
const KEYS_PER_WRITER: u64 = 200;
const ROUNDS: u64 = 60;

fn key(writer: u64, k: u64) -> Vec<u8> {
    format!("w{writer}/k{k:04}").into_bytes()
}

fn version_of(v: &[u8]) -> u64 {
    std::str::from_utf8(v)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn readers_writers_and_compaction_agree() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::open(
            dir.path(),
            Options {
                write_buffer_size: 64 * 1024,
                target_file_size: 64 * 1024,
                max_bytes_for_level_base: 256 * 1024,
                l0_compaction_trigger: 2,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let committed: Arc<Vec<AtomicU64>> =
        Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, committed) = (Arc::clone(&db), Arc::clone(&committed));
            thread::spawn(move || {
                for round in 1..=ROUNDS {
                    // A batch rewrites every key of this writer in one atomic step.
                    let mut b = WriteBatch::new();
                    for k in 0..KEYS_PER_WRITER {
                        b.put(key(w, k), format!("{round}:{}", "x".repeat(40)))
                            .unwrap();
                    }
                    db.write(
                        b,
                        WriteOptions {
                            sync: round % 5 == 0,
                        },
                    )
                    .unwrap();
                    committed[w as usize].store(round, Ordering::SeqCst);
                }
            })
        })
        .collect();

    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (db, done, committed) =
                (Arc::clone(&db), Arc::clone(&done), Arc::clone(&committed));
            thread::spawn(move || {
                let mut last = vec![0u64; (WRITERS * KEYS_PER_WRITER) as usize];
                let mut checks = 0u64;
                while !done.load(Ordering::SeqCst) {
                    for w in 0..WRITERS {
                        let floor = committed[w as usize].load(Ordering::SeqCst);
                        let k = (checks * 7 + r) % KEYS_PER_WRITER;
                        let got = db.get(&key(w, k)).unwrap().map_or(0, |v| version_of(&v));
                        let slot = &mut last[(w * KEYS_PER_WRITER + k) as usize];
                        assert!(got >= *slot, "version went backwards for {w}/{k}");
                        assert!(
                            got >= floor,
                            "acknowledged round {floor} not visible for {w}/{k}"
                        );
                        *slot = got;
                        checks += 1;
                    }
                }
                checks
            })
        })
        .collect();

    let scanner = {
        let (db, done) = (Arc::clone(&db), Arc::clone(&done));
        thread::spawn(move || {
            let mut scans = 0;
            while !done.load(Ordering::SeqCst) {
                let snap = db.snapshot();
                let entries: Vec<_> = snap
                    .range(None, None)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert!(
                    entries.windows(2).all(|e| e[0].0 < e[1].0),
                    "scan out of order"
                );
                for w in 0..WRITERS {
                    let prefix = format!("w{w}/");
                    let versions: Vec<u64> = entries
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
                        .map(|(_, v)| version_of(v))
                        .collect();
                    // Atomic batches: every key of a writer is at the same round, or absent.
                    assert!(
                        versions.is_empty()
                            || (versions.len() as u64 == KEYS_PER_WRITER
                                && versions.iter().all(|v| *v == versions[0])),
                        "torn batch seen by a snapshot scan for writer {w}"
                    );
                }
                scans += 1;
            }
            scans
        })
    };

    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let checks: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let scans = scanner.join().unwrap();
    assert!(checks > 0 && scans > 0);

    db.flush().unwrap();
    for w in 0..WRITERS {
        for k in 0..KEYS_PER_WRITER {
            assert_eq!(version_of(&db.get(&key(w, k)).unwrap().unwrap()), ROUNDS);
        }
    }
    let stats = db.stats();
    assert!(stats.flushes > 0 && stats.compactions > 0, "{stats:?}");
}

/// Many writers queue behind one another in the group commit, synced and unsynced mixed, while
/// another thread forces memtable switches through the same queue: every write returns, each
/// with its own outcome, and every acknowledged write is there, after a reopen too.
#[test]
fn a_crowd_of_writers_all_get_their_turn() {
    const CROWD: u64 = 32;
    const WRITES: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        write_buffer_size: 32 * 1024,
        ..Options::default()
    };
    let db = Arc::new(Db::open(dir.path(), opts.clone()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (db, done) = (Arc::clone(&db), Arc::clone(&done));
        thread::spawn(move || {
            let mut flushes = 0u64;
            while !done.load(Ordering::Relaxed) {
                db.flush().unwrap();
                flushes += 1;
                thread::sleep(std::time::Duration::from_millis(2));
            }
            flushes
        })
    };
    let writers: Vec<_> = (0..CROWD)
        .map(|w| {
            let db = Arc::clone(&db);
            thread::spawn(move || {
                for k in 0..WRITES {
                    let mut batch = WriteBatch::new();
                    batch
                        .put(key(w, k), format!("{k}:{w}").into_bytes())
                        .unwrap();
                    db.write(batch, WriteOptions { sync: k % 3 == 0 }).unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(flusher.join().unwrap() > 0);

    let check = |db: &Db| {
        for w in 0..CROWD {
            for k in 0..WRITES {
                let v = db.get(&key(w, k)).unwrap().unwrap();
                assert_eq!(v, format!("{k}:{w}").into_bytes());
            }
        }
    };
    check(&db);
    drop(db);
    check(&Db::open(dir.path(), opts).unwrap());
}
