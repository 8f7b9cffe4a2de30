//! Model-based property test: random sequences of puts, deletes, batches, range deletes, reads,
//! scans, snapshots, flushes, compactions and reopens run against the engine and against a
//! `BTreeMap`; every read must agree. Small memtables and level targets make flushes and
//! background compactions happen inside short sequences; each case runs leveled or size-tiered
//! compaction. `STRATA_MODEL_CASES` sets the number
//! of cases (default 2000).

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use strata_engine::fs::FaultFs;
use strata_engine::{CompactionStyle, Db, Options, Snapshot, WriteBatch, WriteOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    DeleteRange(Vec<u8>, Vec<u8>),
    Get(Vec<u8>),
    Scan(Option<Vec<u8>>, Option<Vec<u8>>),
    TakeSnapshot,
    ReadSnapshot(usize, Vec<u8>),
    ScanSnapshot(usize),
    DropSnapshot(usize),
    Flush,
    Compact(Option<Vec<u8>>, Option<Vec<u8>>),
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // Few distinct keys, so versions pile up and shadow each other; some share prefixes.
    prop_oneof![
        (0u8..24).prop_map(|i| format!("k{i:02}").into_bytes()),
        (0u8..4).prop_map(|i| format!("k{i:02}x").into_bytes()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16),
        prop::collection::vec(any::<u8>(), 200..600),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        3 => key().prop_map(Op::Delete),
        2 => prop::collection::vec((key(), prop::option::of(value())), 1..6).prop_map(Op::Batch),
        1 => (key(), key()).prop_map(|(a, b)| Op::DeleteRange(a, b)),
        4 => key().prop_map(Op::Get),
        2 => (prop::option::of(key()), prop::option::of(key())).prop_map(|(a, b)| Op::Scan(a, b)),
        1 => Just(Op::TakeSnapshot),
        2 => (any::<usize>(), key()).prop_map(|(i, k)| Op::ReadSnapshot(i, k)),
        1 => any::<usize>().prop_map(Op::ScanSnapshot),
        1 => any::<usize>().prop_map(Op::DropSnapshot),
        1 => Just(Op::Flush),
        1 => (prop::option::of(key()), prop::option::of(key())).prop_map(|(a, b)| Op::Compact(a, b)),
        1 => Just(Op::Reopen),
    ]
}

fn options(fs: &FaultFs, compaction_style: CompactionStyle) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        compaction_style,
        write_buffer_size: 2048,
        max_immutable_memtables: 2,
        block_size: 256,
        l0_compaction_trigger: 2,
        max_bytes_for_level_base: 8 * 1024,
        level_size_multiplier: 4,
        target_file_size: 4 * 1024,
        ..Options::default()
    }
}

fn model_range(m: &Model, start: Option<&[u8]>, end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter()
        .filter(|(k, _)| start.is_none_or(|s| k.as_slice() >= s))
        .filter(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn run(ops: Vec<Op>, style: CompactionStyle) -> Result<(), TestCaseError> {
    let fs = FaultFs::new();
    let dir = Path::new("/model");
    let mut db = Some(Db::open(dir, options(&fs, style)).unwrap());
    let mut model = Model::new();
    let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
    let no_sync = WriteOptions::no_sync();
    for op in ops {
        let d = db.as_ref().unwrap();
        match op {
            Op::Put(k, v) => {
                let mut b = WriteBatch::new();
                b.put(&k, &v).unwrap();
                d.write(b, no_sync).unwrap();
                model.insert(k, v);
            }
            Op::Delete(k) => {
                let mut b = WriteBatch::new();
                b.delete(&k).unwrap();
                d.write(b, no_sync).unwrap();
                model.remove(&k);
            }
            Op::Batch(entries) => {
                let mut b = WriteBatch::new();
                for (k, v) in &entries {
                    match v {
                        Some(v) => {
                            b.put(k, v).unwrap();
                            model.insert(k.clone(), v.clone());
                        }
                        None => {
                            b.delete(k).unwrap();
                            model.remove(k);
                        }
                    }
                }
                d.write(b, no_sync).unwrap();
            }
            Op::DeleteRange(a, b) => {
                if a < b {
                    let mut batch = WriteBatch::new();
                    batch.delete_range(&a, &b).unwrap();
                    d.write(batch, no_sync).unwrap();
                    model.retain(|k, _| !(k >= &a && k < &b));
                }
            }
            Op::Get(k) => prop_assert_eq!(d.get(&k).unwrap(), model.get(&k).cloned()),
            Op::Scan(a, b) => {
                if a.is_some() && b.is_some() && a > b {
                    continue;
                }
                let got: Vec<_> = d
                    .range(a.as_deref(), b.as_deref())
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                prop_assert_eq!(got, model_range(&model, a.as_deref(), b.as_deref()));
            }
            Op::TakeSnapshot => snapshots.push((d.snapshot(), model.clone())),
            Op::ReadSnapshot(i, k) => {
                if !snapshots.is_empty() {
                    let (s, m) = &snapshots[i % snapshots.len()];
                    prop_assert_eq!(s.get(&k).unwrap(), m.get(&k).cloned());
                }
            }
            Op::ScanSnapshot(i) => {
                if !snapshots.is_empty() {
                    let (s, m) = &snapshots[i % snapshots.len()];
                    let got: Vec<_> = s
                        .range(None, None)
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    prop_assert_eq!(got, model_range(m, None, None));
                }
            }
            Op::DropSnapshot(i) => {
                if !snapshots.is_empty() {
                    let n = snapshots.len();
                    snapshots.remove(i % n);
                }
            }
            Op::Flush => d.flush().unwrap(),
            Op::Compact(a, b) => {
                d.compact_range(a.as_deref(), b.as_deref(), &mut |_| {})
                    .unwrap();
            }
            Op::Reopen => {
                // Snapshots pin the old instance; a reopen ends them, as a restart would.
                snapshots.clear();
                drop(db.take());
                db = Some(Db::open(dir, options(&fs, style)).unwrap());
            }
        }
    }
    let d = db.as_ref().unwrap();
    let got: Vec<_> = d
        .range(None, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    prop_assert_eq!(got, model_range(&model, None, None));
    for (k, v) in &model {
        prop_assert_eq!(d.get(k).unwrap(), Some(v.clone()));
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("STRATA_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_a_btreemap(ops in prop::collection::vec(op(), 1..120), tiered in any::<bool>()) {
        let style = if tiered { CompactionStyle::Tiered } else { CompactionStyle::Leveled };
        run(ops, style)?;
    }
}
