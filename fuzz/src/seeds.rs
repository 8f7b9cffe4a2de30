//! Seed inputs for every target, checked to decode here and written to `corpus/<target>/` when
//! `STRATA_FUZZ_WRITE_SEEDS=1` is set: `STRATA_FUZZ_WRITE_SEEDS=1 cargo test` from `fuzz/`.

use std::path::Path;

use strata_engine::WriteBatch;
use strata_engine::batch::BatchOp;
use strata_engine::range_del::RangeTombstone;
use strata_engine::table::TableOptions;
use strata_engine::version::{FileDesc, VersionEdit};
use strata_engine::wal::format::{encode_file_header, encode_record};
use strata_engine::wal::{RecoveryMode, decode_wal};

use super::*;

fn write(target: &str, name: &str, bytes: &[u8]) {
    if std::env::var_os("STRATA_FUZZ_WRITE_SEEDS").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("mkdir corpus");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn batches() -> Vec<Vec<u8>> {
    vec![
        encode_batch(
            1,
            &[BatchOp::Put {
                key: b"k",
                value: b"v",
            }],
        ),
        encode_batch(
            77,
            &[
                BatchOp::Put {
                    key: b"user:1",
                    value: b"alice",
                },
                BatchOp::Delete { key: b"user:2" },
                BatchOp::DeleteRange {
                    start: b"a",
                    end: b"m",
                },
            ],
        ),
        encode_batch(u64::MAX >> 8, &[]),
    ]
}

fn sample_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut recipe = Vec::new();
    for (i, key) in ["apple", "banana", "cherry", "date", "elder", "fig"]
        .iter()
        .enumerate()
    {
        recipe.push(key.len() as u8 - 1);
        recipe.extend_from_slice(key.as_bytes());
        recipe.extend_from_slice(&[i as u8 + 1, 0, if i == 3 { 0 } else { 1 }, 3]);
        recipe.extend_from_slice(b"v12");
    }
    entries(&mut Input::new(&recipe), 64)
}

#[test]
fn batch_seeds_decode() {
    for (i, b) in batches().iter().enumerate() {
        let (_, batch) = WriteBatch::decode(b).expect("seed batch decodes");
        assert!(batch.iter().all(|op| op.is_ok()));
        write("batch", &i.to_string(), b);
    }
}

#[test]
fn version_edit_seeds_decode() {
    let full = VersionEdit {
        format_version: Some(1),
        log_number: Some(7),
        next_file_number: Some(9),
        last_seq: Some(1234),
        new_files: vec![FileDesc {
            level: 1,
            number: 8,
            size: 4096,
            smallest: b"a\x01\0\0\0\0\0\0\0".to_vec(),
            largest: b"z\x01\0\0\0\0\0\0\0".to_vec(),
            smallest_seq: 1,
            largest_seq: 1234,
            num_entries: 10,
            num_deletions: 2,
        }],
        deleted_files: vec![(0, 3), (0, 4)],
    };
    let small = VersionEdit {
        log_number: Some(3),
        last_seq: Some(5),
        ..VersionEdit::default()
    };
    for (name, e) in [("full", full), ("small", small)] {
        let b = e.encode();
        assert_eq!(VersionEdit::decode(&b), Some(e));
        write("version_edit", name, &b);
    }
}

#[test]
fn wal_seeds_decode() {
    let mut log = encode_file_header(1);
    for b in batches() {
        log.extend(encode_record(1, &b).expect("small"));
    }
    let contents = decode_wal(&log, Path::new("x"), RecoveryMode::TolerateTornTail).expect("ok");
    assert_eq!(contents.records, batches());
    let mut raw = vec![0];
    raw.extend_from_slice(&log);
    write("wal", "raw", &raw);
    // A torn tail: half of a last record.
    raw.extend_from_slice(&encode_record(1, b"torn").expect("small")[..10]);
    write("wal", "torn", &raw);
    // Recipes: flags 2 (TolerateTornTail) and 3 (SkipDamaged), log 1, records, damage, a record.
    let recipe = [
        1, 0, 5, b'h', b'e', b'l', b'l', b'o', 2, 3, 9, 9, 9, 0, 2, b'o', b'k',
    ];
    for flags in [2u8, 3] {
        let mut r = vec![flags];
        r.extend_from_slice(&recipe);
        write("wal", &format!("recipe-{flags}"), &r);
    }
}

#[test]
fn block_seeds_decode() {
    let want = sample_entries();
    assert_eq!(want.len(), 6);
    for interval in [1, 4] {
        let mut raw = vec![0];
        raw.extend(build_block(&want, interval));
        let block = Block::new(raw[1..].to_vec(), Arc::from(Path::new("b")), 0).expect("block");
        assert_eq!(collect_entries(&mut block.iter(), 100), want);
        write("block", &format!("raw-{interval}"), &raw);
    }
    let mut recipe = vec![1, 3];
    recipe.extend_from_slice(&[b'x'; 24]);
    recipe.extend_from_slice(&[2, b'a', b'b', b'c', 9, 0, 1, 2, b'v', b'w']);
    write("block", "round-trip", &recipe);
}

#[test]
fn table_seeds_decode() {
    let want = sample_entries();
    let tombstones = [RangeTombstone {
        start: b"b".to_vec(),
        end: b"c".to_vec(),
        seq: 9,
    }];
    let opts = TableOptions {
        block_size: 64,
        restart_interval: 2,
        bloom_bits_per_key: 10,
        ..TableOptions::default()
    };
    let table = build_table(&want, &tombstones, opts);
    let t = open_table(&table).expect("opens");
    assert_eq!(collect_entries(&mut t.iter(), 100), want);
    let mut fixed = table.clone();
    fix_table_checksums(&mut fixed);
    assert_eq!(
        fixed, table,
        "fixing a valid table's checksums changes nothing"
    );
    for (mode, name) in [(0u8, "raw"), (1, "fixed")] {
        let mut seed = vec![mode];
        seed.extend_from_slice(&table);
        write("table", name, &seed);
    }
    let mut recipe = vec![2, 16, 2, 10, 1, b'a', b'a', b'a', b'b', b'b', b'b', 5];
    recipe.extend_from_slice(&[b'q'; 32]);
    recipe.extend_from_slice(&[2, b'a', b'b', b'c', 9, 0, 1, 2, b'v', b'w']);
    recipe.extend_from_slice(&[0, b'z', 1, 0, 0, 0]);
    write("table", "round-trip", &recipe);
}
