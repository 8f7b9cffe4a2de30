//! End-to-end scenarios through the public API on a real directory: puts, deletes, range
//! deletes, snapshots, iteration, flush, compaction, reopen and checkpoints.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use strata_engine::{Db, Error, Options, WriteBatch, WriteOptions};

fn small_opts() -> Options {
    Options {
        write_buffer_size: 16 * 1024,
        target_file_size: 32 * 1024,
        max_bytes_for_level_base: 128 * 1024,
        ..Options::default()
    }
}

fn collect(it: strata_engine::DbIterator) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn put_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put(b"a", b"1").unwrap();
        db.put(b"b", b"2").unwrap();
        db.delete(b"a").unwrap();
        assert_eq!(db.get(b"a").unwrap(), None);
        assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn many_keys_through_flushes_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_opts()).unwrap();
    let n = 20_000u32;
    for i in 0..n {
        let mut b = WriteBatch::new();
        b.put(format!("key{i:08}"), format!("value{i}")).unwrap();
        db.write(b, WriteOptions::no_sync()).unwrap();
    }
    for i in (0..n).step_by(3) {
        db.delete(format!("key{i:08}").as_bytes()).unwrap();
    }
    db.flush().unwrap();
    for i in 0..n {
        let got = db.get(format!("key{i:08}").as_bytes()).unwrap();
        if i % 3 == 0 {
            assert_eq!(got, None, "key {i}");
        } else {
            assert_eq!(got, Some(format!("value{i}").into_bytes()), "key {i}");
        }
    }
    let all = collect(db.range(None, None).unwrap());
    assert_eq!(all.len(), (n - n.div_ceil(3)) as usize);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let stats = db.stats();
    assert!(stats.flushes > 0, "{stats:?}");
    let report = db.compact_range(None, None, &mut |_| {}).unwrap();
    assert!(report.keys_dropped > 0, "{report:?}");
    drop(db);
    let db = Db::open(dir.path(), small_opts()).unwrap();
    assert_eq!(collect(db.range(None, None).unwrap()), all);
}

#[test]
fn delete_range_snapshots_and_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_opts()).unwrap();
    for i in 0..1000u32 {
        db.put(format!("p{i:04}").as_bytes(), b"v").unwrap();
    }
    let snap = db.snapshot();
    db.delete_range(b"p0100", b"p0200").unwrap();
    db.put(b"p0150", b"back").unwrap();
    assert_eq!(db.get(b"p0120").unwrap(), None);
    assert_eq!(db.get(b"p0150").unwrap(), Some(b"back".to_vec()));
    assert_eq!(snap.get(b"p0120").unwrap(), Some(b"v".to_vec()));
    db.flush().unwrap();
    db.compact_range(None, None, &mut |_| {}).unwrap();
    assert_eq!(db.get(b"p0120").unwrap(), None);
    assert_eq!(
        snap.get(b"p0120").unwrap(),
        Some(b"v".to_vec()),
        "snapshot outlives compaction"
    );
    assert_eq!(collect(db.prefix(b"p01").unwrap()).len(), 1);
    assert_eq!(
        collect(snap.range(Some(b"p01"), Some(b"p02")).unwrap()).len(),
        100
    );
    drop(snap);
    db.compact_range(None, None, &mut |_| {}).unwrap();
    assert_eq!(collect(db.range(None, None).unwrap()).len(), 901);
}

#[test]
fn limits_and_foreign_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    assert!(matches!(
        Db::open(dir.path(), Options::default()),
        Err(Error::NotAStore { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(db.put(&[], b"v"), Err(Error::InvalidKey { .. })));
    assert!(matches!(
        db.put(&vec![1; strata_engine::MAX_KEY_LEN + 1], b"v"),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        Db::open(dir.path(), Options::default()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn checkpoint_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_opts()).unwrap();
    for i in 0..3000u32 {
        db.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap();
    }
    let cp_parent = tempfile::tempdir().unwrap();
    let cp = cp_parent.path().join("checkpoint");
    db.checkpoint(&cp).unwrap();
    db.put(b"after", b"x").unwrap();
    let copy = Db::open(&cp, small_opts()).unwrap();
    assert_eq!(copy.get(b"k2999").unwrap(), Some(b"v2999".to_vec()));
    assert_eq!(copy.get(b"after").unwrap(), None);
}
