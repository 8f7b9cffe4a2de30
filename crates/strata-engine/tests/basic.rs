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

/// The application directory is part of the store, and the engine leaves what is in it alone
/// through writes, flushes, compactions and reopening.
#[test]
fn the_application_directory_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_opts()).unwrap();
    let app = db.app_dir();
    assert_eq!(app, dir.path().join(strata_engine::filename::APP_DIR));
    std::fs::create_dir_all(app.join("nested")).unwrap();
    std::fs::write(app.join("nested").join("7.sst"), b"not a table").unwrap();
    for i in 0..3000u32 {
        db.put(format!("k{i}").as_bytes(), b"v").unwrap();
    }
    db.flush().unwrap();
    db.compact_range(None, None, &mut |_| {}).unwrap();
    drop(db);
    let db = Db::open(dir.path(), small_opts()).unwrap();
    assert_eq!(db.get(b"k42").unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        std::fs::read(app.join("nested").join("7.sst")).unwrap(),
        b"not a table"
    );
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

/// A layer that prefixes its users' keys opens the store with room for the prefix: a user key
/// of the documented limit behind a 3-byte prefix is written, recovered from the WAL, read from
/// a table and deleted, while a store without the room refuses it and one byte more.
#[test]
fn key_prefix_room_fits_the_longest_user_key_behind_a_prefix() {
    let max = strata_engine::MAX_KEY_LEN;
    let prefixed = |fill: u8, len: usize| {
        let mut k = vec![0xaa, 0, 7];
        k.resize(3 + len, fill);
        k
    };
    let plain = tempfile::tempdir().unwrap();
    let db = Db::open(plain.path(), Options::default()).unwrap();
    assert!(matches!(
        db.put(&prefixed(1, max), b"v"),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        db.get(&prefixed(1, max)),
        Err(Error::InvalidKey { .. })
    ));
    drop(db);

    let too_much = Options {
        key_prefix_room: strata_engine::MAX_KEY_PREFIX_ROOM + 1,
        ..Options::default()
    };
    assert!(matches!(
        Db::open(plain.path(), too_much),
        Err(Error::InvalidArgument(_))
    ));

    let opts = || Options {
        key_prefix_room: 3,
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    db.put(&prefixed(1, max), b"one").unwrap();
    db.put(&prefixed(2, max), b"two").unwrap();
    assert!(matches!(
        db.put(&prefixed(3, max + 1), b"v"),
        Err(Error::InvalidKey { .. })
    ));
    drop(db);
    // Recovered from the WAL, then flushed to a table and read from it.
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.get(&prefixed(1, max)).unwrap(), Some(b"one".to_vec()));
    db.flush().unwrap();
    db.delete(&prefixed(2, max)).unwrap();
    assert_eq!(db.get(&prefixed(2, max)).unwrap(), None);
    assert_eq!(db.get(&prefixed(1, max)).unwrap(), Some(b"one".to_vec()));
}

#[test]
fn largest_key_and_value_round_trip_through_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let key = vec![b'k'; strata_engine::MAX_KEY_LEN];
    let value: Vec<u8> = (0..strata_engine::MAX_VALUE_LEN)
        .map(|i| (i % 251) as u8)
        .collect();
    db.put(&key, &value).unwrap();
    assert!(matches!(
        db.put(b"k", &vec![0; strata_engine::MAX_VALUE_LEN + 1]),
        Err(Error::ValueTooLarge { .. })
    ));
    db.flush().unwrap();
    assert_eq!(db.get(&key).unwrap(), Some(value.clone()));
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(&key).unwrap(), Some(value));
}

#[test]
fn a_wal_cut_short_while_being_created_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put(b"kept", b"yes").unwrap();
    }
    // A crash between creating the next log and syncing its header leaves a stub.
    std::fs::write(dir.path().join("999999.wal"), b"STRAT").unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"kept").unwrap(), Some(b"yes".to_vec()));
    db.put(b"after", b"stub").unwrap();
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"after").unwrap(), Some(b"stub".to_vec()));
}

#[test]
fn logs_numbered_after_the_last_manifest_edit_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        write_buffer_size: 4096,
        ..Options::default()
    };
    for round in 0..5u32 {
        let db = Db::open(dir.path(), opts()).unwrap();
        for i in 0..300u32 {
            db.put(format!("r{round}k{i}").as_bytes(), &[7; 64])
                .unwrap();
        }
        // Dropped with memtables still queued: their logs were numbered by switches only.
    }
    // Deterministically: logs numbered at and past the MANIFEST's file counter, as memtable
    // switches after the last MANIFEST edit leave them.
    let current = std::fs::read_to_string(dir.path().join("CURRENT")).unwrap();
    let manifest = dir.path().join(current.trim());
    let fs = strata_engine::fs::OsFs;
    let records = strata_engine::wal::read_wal(&fs, &manifest, Default::default())
        .unwrap()
        .records;
    let next = records
        .iter()
        .filter_map(|r| strata_engine::version::VersionEdit::decode(r)?.next_file_number)
        .next_back()
        .unwrap();
    for n in next..next + 4 {
        let path = strata_engine::filename::wal(dir.path(), n);
        strata_engine::wal::WalWriter::create(&fs, &path, n).unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    for round in 0..5u32 {
        assert_eq!(
            db.get(format!("r{round}k299").as_bytes()).unwrap(),
            Some(vec![7; 64])
        );
    }
}

#[test]
fn compressed_tables_read_back_and_take_less_space() {
    let mut sizes = Vec::new();
    for compression in [
        strata_engine::CompressionType::None,
        strata_engine::CompressionType::Lz4,
        strata_engine::CompressionType::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = || Options {
            compression,
            ..small_opts()
        };
        let db = Db::open(dir.path(), opts()).unwrap();
        let mut b = WriteBatch::new();
        for i in 0..5000u32 {
            b.put(
                format!("key{i:06}"),
                format!("{{\"user\":{i},\"name\":\"someone\"}}"),
            )
            .unwrap();
        }
        db.write(b, WriteOptions::no_sync()).unwrap();
        db.compact_range(None, None, &mut |_| {}).unwrap();
        sizes.push(db.stats().table_bytes());
        drop(db);
        let db = Db::open(dir.path(), opts()).unwrap();
        assert_eq!(
            db.get(b"key004321").unwrap(),
            Some(b"{\"user\":4321,\"name\":\"someone\"}".to_vec())
        );
        assert_eq!(collect(db.range(None, None).unwrap()).len(), 5000);
    }
    println!(
        "table bytes: none {} lz4 {} zstd {}",
        sizes[0], sizes[1], sizes[2]
    );
    assert!(sizes[1] < sizes[0] && sizes[2] < sizes[0]);
}

#[test]
fn retired_logs_are_reused_and_recovery_reads_only_their_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        write_buffer_size: 8 * 1024,
        ..Options::default()
    };
    let wal_files = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".wal")
            })
            .count()
    };
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for i in 0..3000u32 {
            let mut b = WriteBatch::new();
            b.put(format!("key{i:05}"), [i as u8; 100]).unwrap();
            db.write(b, WriteOptions::no_sync()).unwrap();
        }
        db.put(b"last", b"synced").unwrap();
        assert!(db.stats().flushes > 10);
        // The live log, the queued ones, and at most two kept for reuse.
        assert!(
            wal_files(dir.path()) <= 2 + 1 + 2,
            "{} logs",
            wal_files(dir.path())
        );
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    for i in (0..3000u32).step_by(97) {
        assert_eq!(
            db.get(format!("key{i:05}").as_bytes()).unwrap(),
            Some(vec![i as u8; 100])
        );
    }
    assert_eq!(db.get(b"last").unwrap(), Some(b"synced".to_vec()));
    assert_eq!(collect(db.range(None, None).unwrap()).len(), 3001);
}
