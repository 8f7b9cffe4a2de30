//! Real `kill -9`: this test binary re-executes itself as a child process that writes synced
//! batches into a store and prints `ACK <id>` after each acknowledgement; the parent kills it
//! with SIGKILL at a random moment, over and over on the same directory, and checks after every
//! round that each acknowledged batch is there whole, that no batch is ever partly applied and
//! that a writer's batches survive in the order they were acknowledged. Some rounds use several
//! writer threads so that group commit is killed mid-flight; some kill the child while it is
//! still opening (recovering) the store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use strata_engine::{Db, Options, WriteBatch, WriteOptions};

const CHILD_ENV: &str = "STRATA_CRASH_CHILD";
const BASE_ENV: &str = "STRATA_CRASH_BASE";
const THREADS_ENV: &str = "STRATA_CRASH_THREADS";
/// Keys per batch (besides the shared `last` key).
const KEYS_PER_BATCH: u64 = 5;
/// Ids of one round's thread `t` are `round * ROUND_SPAN + t * THREAD_SPAN + i`.
const ROUND_SPAN: u64 = 1_000_000;
const THREAD_SPAN: u64 = 100_000;
const ROUNDS: u64 = 24;

fn opts() -> Options {
    // Small memtables and tables so flushes and compactions run while the child is killed.
    Options {
        write_buffer_size: 64 * 1024,
        target_file_size: 64 * 1024,
        max_bytes_for_level_base: 256 * 1024,
        ..Options::default()
    }
}

fn key(id: u64, j: u64) -> Vec<u8> {
    format!("b{id:08}:k{j}").into_bytes()
}

fn value(id: u64, j: u64) -> Vec<u8> {
    format!("v{id}:{j}:").repeat(8).into_bytes()
}

/// The child: writes batches until it is killed. Does nothing when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let base: u64 = std::env::var(BASE_ENV).unwrap().parse().unwrap();
    let threads: u64 = std::env::var(THREADS_ENV).unwrap().parse().unwrap();
    let db = match Db::open(&dir, opts()) {
        Ok(db) => db,
        Err(e) => {
            println!("ERR open: {e}");
            return;
        }
    };
    println!("READY");
    std::io::stdout().flush().unwrap();
    std::thread::scope(|s| {
        for t in 0..threads {
            let db = &db;
            s.spawn(move || {
                for i in 0..THREAD_SPAN {
                    let id = base + t * THREAD_SPAN + i;
                    let mut batch = WriteBatch::new();
                    for j in 0..KEYS_PER_BATCH {
                        batch.put(key(id, j), value(id, j)).unwrap();
                    }
                    batch.put(b"last", id.to_string().as_bytes()).unwrap();
                    if let Err(e) = db.write(batch, WriteOptions::default()) {
                        println!("ERR write {id}: {e}");
                        return;
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {id}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// Runs one child round and returns the ids it acknowledged before being killed.
fn run_round(dir: &Path, base: u64, threads: u64, rng: &mut StdRng, early_kill: bool) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(BASE_ENV, base.to_string())
        .env(THREADS_ENV, threads.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness prints `test crash_child ... ` before the child's first line.
            let line = line.rsplit("... ").next().unwrap_or_default().to_owned();
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut lines = Vec::new();
    if early_kill {
        // Kill while the child may still be starting or recovering the store.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
    } else {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the child neither became ready nor reported an error");
            let done = line == "READY" || line.starts_with("ERR");
            lines.push(line);
            if done {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(10..300)));
    }
    let exited_early = child.try_wait().unwrap();
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());

    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("ERR")).collect();
    assert!(errors.is_empty(), "child failed (base {base}): {errors:?}");
    assert!(
        exited_early.is_none() || early_kill,
        "child exited on its own before it was killed: {exited_early:?}"
    );
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ACK "))
        .map(|id| id.parse().unwrap())
        .collect()
}

/// Opens the store and checks every invariant against the acknowledgements seen so far.
fn verify(dir: &Path, acked: &BTreeSet<u64>, round: u64) {
    let db = Db::open(dir, opts()).unwrap_or_else(|e| panic!("reopen after round {round}: {e}"));
    let mut present: BTreeMap<u64, u64> = BTreeMap::new();
    for item in db.prefix(b"b").unwrap() {
        let (k, v) = item.unwrap();
        let k = String::from_utf8(k).unwrap();
        let (id, j) = k[1..].split_once(":k").unwrap();
        let (id, j): (u64, u64) = (id.parse().unwrap(), j.parse().unwrap());
        assert_eq!(v, value(id, j), "wrong value for {k} after round {round}");
        *present.entry(id).or_default() += 1;
    }
    for (id, n) in &present {
        assert_eq!(
            *n, KEYS_PER_BATCH,
            "batch {id} is partly applied after round {round}"
        );
    }
    for id in acked {
        assert!(
            present.contains_key(id),
            "acknowledged batch {id} is lost after round {round}"
        );
    }
    // One writer waits for each acknowledgement before its next write, so a later batch of the
    // same writer can only be durable if every earlier one is.
    for id in present.keys() {
        if id % THREAD_SPAN > 0 {
            assert!(
                present.contains_key(&(id - 1)),
                "batch {id} survived but the writer's earlier batch {} did not (round {round})",
                id - 1
            );
        }
    }
    if let Some(last) = db.get(b"last").unwrap() {
        let last: u64 = String::from_utf8(last).unwrap().parse().unwrap();
        assert!(
            present.contains_key(&last),
            "`last` names batch {last}, which is not present (round {round})"
        );
        let newest_round = present.keys().next_back().map(|id| id / ROUND_SPAN);
        assert_eq!(
            Some(last / ROUND_SPAN),
            newest_round,
            "`last` is not from the newest round that wrote (round {round})"
        );
    } else {
        assert!(present.is_empty(), "batches present but `last` is missing");
    }
}

#[test]
fn acknowledged_batches_survive_repeated_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked = BTreeSet::new();
    let mut total = 0;
    for round in 1..=ROUNDS {
        let threads = if round % 3 == 0 { 4 } else { 1 };
        let early_kill = round % 7 == 0;
        let ids = run_round(
            dir.path(),
            round * ROUND_SPAN,
            threads,
            &mut rng,
            early_kill,
        );
        total += ids.len();
        acked.extend(ids);
        verify(dir.path(), &acked, round);
    }
    println!("{total} acknowledged batches over {ROUNDS} kills (seed {seed})");
    assert!(total > 100, "too few writes to prove anything: {total}");
}
