//! Table-level tests: round trips through both file systems, lookups at many sequence numbers,
//! range tombstones, the filter's effect on absent keys, and corruption of every part of a file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::format::{FOOTER_LEN, Footer};
use super::*;
use crate::error::{Error, Result};
use crate::fs::{FaultFs, FileSystem, OsFs, RandomAccessFile};
use crate::iter::InternalIterator;
use crate::key::{MAX_SEQNO, SeqNo, ValueKind, make_internal_key, parse_internal_key, seek_key};
use crate::range_del::RangeTombstone;

/// A deterministic generator (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A user key that is stored for even `i` and absent for odd `i`.
fn user(i: u64) -> Vec<u8> {
    format!("user{i:08}").into_bytes()
}

/// One stored entry of the model.
#[derive(Debug, Clone)]
struct Entry {
    ikey: Vec<u8>,
    user: Vec<u8>,
    seq: SeqNo,
    kind: ValueKind,
    value: Vec<u8>,
}

/// About `3 * users / 2` entries over `users` stored user keys (`user(0)`, `user(2)`, ...), each
/// with one to three versions, some of them tombstones, in internal-key order.
fn model(users: u64, seed: u64) -> Vec<Entry> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for u in 0..users {
        let uk = user(2 * u);
        let versions = 1 + rng.below(3);
        let mut seqs: Vec<SeqNo> = (0..versions).map(|_| 1 + rng.below(1_000_000)).collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.dedup();
        for seq in seqs {
            let kind = if rng.below(5) == 0 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let value = match kind {
                ValueKind::Put => {
                    let len = rng.below(100) as usize;
                    (0..len).map(|j| (seq as usize + j) as u8).collect()
                }
                ValueKind::Delete => Vec::new(),
            };
            out.push(Entry {
                ikey: make_internal_key(&uk, seq, kind),
                user: uk.clone(),
                seq,
                kind,
                value,
            });
        }
    }
    out
}

/// What a lookup of `user` at `seq` must find in `entries`.
fn expected(entries: &[Entry], user: &[u8], seq: SeqNo) -> TableGet {
    entries
        .iter()
        .find(|e| e.user == user && e.seq <= seq)
        .map_or(TableGet::NotFound, |e| TableGet::Found {
            seq: e.seq,
            kind: e.kind,
            value: e.value.clone(),
        })
}

fn build(
    fs: &dyn FileSystem,
    path: &Path,
    entries: &[Entry],
    tombstones: &[RangeTombstone],
    opts: TableOptions,
) -> TableProperties {
    // Written blocks may be smaller than pending ones once compressed: only then may the
    // estimate shrink.
    let monotonic = opts.compression == CompressionType::None;
    let mut b = TableBuilder::new(fs.create(path).unwrap(), opts);
    let mut last_estimate = 0;
    for e in entries {
        b.add(&e.ikey, &e.value).unwrap();
        assert!(!monotonic || b.estimated_size() >= last_estimate);
        last_estimate = b.estimated_size();
    }
    for t in tombstones {
        b.add_range_tombstone(t);
    }
    assert_eq!(b.num_entries(), entries.len() as u64);
    b.finish().unwrap()
}

fn open(fs: &dyn FileSystem, path: &Path) -> Result<Arc<Table>> {
    Ok(Arc::new(Table::open(fs.open_random(path)?, path)?))
}

/// Every entry the iterator yields from `seek_to_first`, stopping at the first error.
fn scan(table: &Arc<Table>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = table.iter();
    it.seek_to_first()?;
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next()?;
    }
    Ok(out)
}

fn check_round_trip(fs: &dyn FileSystem, dir: &Path, opts: TableOptions) {
    let entries = model(8_000, 7);
    assert!(entries.len() >= 10_000, "{} entries", entries.len());
    let path = dir.join("000001.sst");
    let props = build(fs, &path, &entries, &[], opts);
    let table = open(fs, &path).unwrap();

    // Properties agree with what was written and with the file.
    assert_eq!(table.properties(), &props);
    assert_eq!(props.num_entries, entries.len() as u64);
    let deletions = entries
        .iter()
        .filter(|e| e.kind == ValueKind::Delete)
        .count();
    assert_eq!(props.num_deletions, deletions as u64);
    assert_eq!(props.num_range_deletions, 0);
    assert_eq!(props.smallest_key, entries[0].ikey);
    assert_eq!(props.largest_key, entries[entries.len() - 1].ikey);
    assert_eq!(
        props.smallest_seq,
        entries.iter().map(|e| e.seq).min().unwrap()
    );
    assert_eq!(
        props.largest_seq,
        entries.iter().map(|e| e.seq).max().unwrap()
    );
    let raw_keys: usize = entries.iter().map(|e| e.ikey.len()).sum();
    let raw_values: usize = entries.iter().map(|e| e.value.len()).sum();
    assert_eq!(props.raw_key_bytes, raw_keys as u64);
    assert_eq!(props.raw_value_bytes, raw_values as u64);
    assert_eq!(props.file_size, fs.file_size(&path).unwrap());
    assert!(props.data_size + props.index_size + props.filter_size < props.file_size);
    assert!(table.range_tombstones().is_empty());
    assert_eq!(table.path(), path);

    // A full scan returns exactly the entries.
    let all = scan(&table).unwrap();
    assert_eq!(all.len(), entries.len());
    for (got, want) in all.iter().zip(&entries) {
        assert_eq!((&got.0, &got.1), (&want.ikey, &want.value));
    }

    // Seeks: to every entry, and to points between versions and between user keys.
    let mut it = table.iter();
    for (i, e) in entries.iter().enumerate().step_by(3) {
        it.seek(&e.ikey).unwrap();
        assert_eq!(it.key(), &e.ikey[..], "seek to entry {i}");
        it.seek(&seek_key(&e.user, e.seq - 1)).unwrap();
        match entries.get(i + 1) {
            Some(n) => assert_eq!(it.key(), &n.ikey[..]),
            None => assert!(!it.valid()),
        }
    }
    for u in (0..8_000u64).step_by(37) {
        it.seek(&seek_key(&user(2 * u + 1), MAX_SEQNO)).unwrap();
        let next = entries.iter().find(|e| e.user > user(2 * u + 1));
        assert_eq!(
            it.valid().then(|| it.key().to_vec()),
            next.map(|e| e.ikey.clone())
        );
    }
    it.seek(&seek_key(b"zzz", 0)).unwrap();
    assert!(!it.valid());
    it.seek(&seek_key(b"a", MAX_SEQNO)).unwrap();
    assert_eq!(it.key(), &entries[0].ikey[..]);

    // Gets at the sequence numbers around every version of a sample of keys.
    for (i, e) in entries.iter().enumerate().step_by(5) {
        for seq in [0, e.seq - 1, e.seq, e.seq + 1, 999_999, MAX_SEQNO, u64::MAX] {
            let got = table.get(&e.user, seq).unwrap();
            assert_eq!(got, expected(&entries, &e.user, seq), "entry {i} at {seq}");
        }
    }

    // Absent keys are nearly always ruled out by the filter without touching a data block.
    let (mut filtered, mut absent) = (0, 0);
    for u in 0..8_000u64 {
        match table.get(&user(2 * u + 1), MAX_SEQNO).unwrap() {
            TableGet::FilteredOut => filtered += 1,
            TableGet::NotFound => {}
            TableGet::Found { .. } => panic!("found an absent key"),
            TableGet::NotCached => panic!("a lookup allowed to read answered NotCached"),
        }
        absent += 1;
    }
    let rate = filtered as f64 / absent as f64;
    println!("absent keys filtered out: {:.2}%", rate * 100.0);
    assert!(rate >= 0.98, "only {rate} of absent keys filtered");
    assert!(table.may_contain(&entries[0].user));
}

#[test]
fn table_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Table>();
    check::<TableIterator>();
}

#[test]
fn round_trip_on_os_fs() {
    let dir = tempfile::tempdir().unwrap();
    check_round_trip(&OsFs, dir.path(), TableOptions::default());
}

#[test]
fn round_trip_on_fault_fs_survives_power_loss() {
    let fs = FaultFs::new();
    let dir = PathBuf::from("/db");
    fs.create_dir_all(&dir).unwrap();
    let syncs = fs.sync_count();
    check_round_trip(&fs, &dir, TableOptions::default());
    assert!(fs.sync_count() > syncs, "finish must sync the file");
    // The file was synced by finish; once its directory entry is durable it survives power loss.
    fs.sync_dir(&dir).unwrap();
    fs.power_loss();
    let table = open(&fs, &dir.join("000001.sst")).unwrap();
    assert_eq!(
        scan(&table).unwrap().len() as u64,
        table.properties().num_entries
    );
}

#[test]
fn round_trip_with_lz4_and_zstd_blocks() {
    for compression in [CompressionType::Lz4, CompressionType::Zstd] {
        let fs = FaultFs::new();
        let dir = PathBuf::from("/db");
        fs.create_dir_all(&dir).unwrap();
        check_round_trip(
            &fs,
            &dir,
            TableOptions {
                compression,
                ..TableOptions::default()
            },
        );
    }
}

#[test]
fn round_trip_with_tiny_blocks_and_no_filter() {
    let fs = FaultFs::new();
    let dir = PathBuf::from("/db");
    fs.create_dir_all(&dir).unwrap();
    let entries = model(500, 3);
    let path = dir.join("t.sst");
    let opts = TableOptions {
        block_size: 64,
        restart_interval: 3,
        bloom_bits_per_key: 0,
        ..TableOptions::default()
    };
    let props = build(&fs, &path, &entries, &[], opts);
    assert_eq!(props.filter_size, 0);
    let table = open(&fs, &path).unwrap();
    let all = scan(&table).unwrap();
    assert_eq!(all.len(), entries.len());
    for e in &entries {
        let mut it = table.iter();
        it.seek(&e.ikey).unwrap();
        assert_eq!(it.key(), &e.ikey[..]);
        assert_eq!(
            table.get(&e.user, e.seq).unwrap(),
            expected(&entries, &e.user, e.seq)
        );
    }
    assert!(table.may_contain(b"absent"));
    assert_eq!(table.get(b"absent", MAX_SEQNO).unwrap(), TableGet::NotFound);
}

#[test]
fn range_tombstones_round_trip() {
    let fs = FaultFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let entries = model(100, 11);
    let t = |s: &str, e: &str, seq| RangeTombstone {
        start: s.as_bytes().to_vec(),
        end: e.as_bytes().to_vec(),
        seq,
    };
    let tombstones = vec![
        t("user0010", "user0020", 5_000_000),
        t("a", "b", 3),
        t("m", "n", 9),
    ];
    let path = Path::new("/db/rt.sst");
    let props = build(&fs, path, &entries, &tombstones, TableOptions::default());
    assert_eq!(props.num_range_deletions, 3);
    assert_eq!(props.largest_seq, 5_000_000);
    assert_eq!(props.smallest_seq, 3);
    let table = open(&fs, path).unwrap();
    let mut sorted = tombstones.clone();
    sorted.sort();
    assert_eq!(table.range_tombstones(), &sorted[..]);

    // A table holding nothing but range tombstones.
    let only = Path::new("/db/only.sst");
    let props = build(&fs, only, &[], &tombstones, TableOptions::default());
    assert_eq!(props.num_entries, 0);
    assert!(props.smallest_key.is_empty() && props.largest_key.is_empty());
    let table = open(&fs, only).unwrap();
    assert_eq!(table.range_tombstones().len(), 3);
    assert!(scan(&table).unwrap().is_empty());
    assert_eq!(
        table.get(b"user0010", MAX_SEQNO).unwrap(),
        TableGet::FilteredOut
    );
}

#[test]
fn empty_table_round_trips() {
    let fs = FaultFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let path = Path::new("/db/empty.sst");
    let props = build(&fs, path, &[], &[], TableOptions::default());
    assert_eq!(props.smallest_seq, 0);
    let table = open(&fs, path).unwrap();
    assert!(scan(&table).unwrap().is_empty());
    let mut it = table.iter();
    it.seek(&seek_key(b"k", 1)).unwrap();
    assert!(!it.valid());
}

#[test]
fn builder_refuses_bad_entries() {
    let fs = FaultFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut b = TableBuilder::new(
        fs.create(Path::new("/db/b.sst")).unwrap(),
        TableOptions::default(),
    );
    let k = |u: &[u8], s| make_internal_key(u, s, ValueKind::Put);
    b.add(&k(b"b", 5), b"v").unwrap();
    for bad in [
        k(b"b", 5),
        k(b"b", 6),
        k(b"a", 1),
        b"short".to_vec(),
        k(b"", 1),
    ] {
        let err = b.add(&bad, b"v").unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_) | Error::InvalidKey { .. }),
            "{err}"
        );
    }
    let long = vec![b'x'; crate::batch::MAX_STORED_KEY_LEN + 1];
    assert!(matches!(
        b.add(&k(&long, 1), b""),
        Err(Error::InvalidKey { .. })
    ));
    b.add(&k(b"b", 4), b"older").unwrap();
    b.add(&k(b"c", 9), b"w").unwrap();
    let props = b.finish().unwrap();
    assert_eq!(props.num_entries, 3);
}

#[test]
fn failed_writes_surface_as_errors() {
    let fs = FaultFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    let mut b = TableBuilder::new(
        fs.create(Path::new("/db/f.sst")).unwrap(),
        TableOptions::default(),
    );
    fs.set_fail_writes(true);
    let entries = model(2_000, 5);
    let first_err = entries.iter().find_map(|e| b.add(&e.ikey, &e.value).err());
    assert!(
        first_err.is_some(),
        "a full data block must hit the failing write"
    );
    assert!(
        b.add(&make_internal_key(b"zz", 1, ValueKind::Put), b"")
            .is_err()
    );
    fs.set_fail_writes(false);
    assert!(b.finish().is_err());

    let mut b = TableBuilder::new(
        fs.create(Path::new("/db/g.sst")).unwrap(),
        TableOptions::default(),
    );
    b.add(&make_internal_key(b"a", 1, ValueKind::Put), b"")
        .unwrap();
    fs.set_fail_syncs(true);
    assert!(b.finish().is_err());
    fs.set_fail_syncs(false);
}

/// A read-only file over bytes in memory, for feeding arbitrary contents to `Table::open`.
#[derive(Debug)]
struct MemFile(Vec<u8>);

impl RandomAccessFile for MemFile {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(len)?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::io(
                    "mem",
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past end"),
                )
            })
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// A valid table of a few dozen data blocks, its entries and its bytes.
fn sample_table() -> &'static (Vec<Entry>, Vec<u8>) {
    static SAMPLE: OnceLock<(Vec<Entry>, Vec<u8>)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let fs = FaultFs::new();
        fs.create_dir_all(Path::new("/db")).unwrap();
        let entries = model(1_500, 21);
        let tombstones = [RangeTombstone {
            start: b"user00000100".to_vec(),
            end: b"user00000200".to_vec(),
            seq: 77,
        }];
        let path = Path::new("/db/sample.sst");
        build(&fs, path, &entries, &tombstones, TableOptions::default());
        (entries, fs.read_all(path).unwrap())
    })
}

fn open_bytes(bytes: Vec<u8>) -> Result<Arc<Table>> {
    Ok(Arc::new(Table::open(
        Arc::new(MemFile(bytes)),
        Path::new("mem.sst"),
    )?))
}

/// Opens `bytes`, scans and looks up every key of `entries`; every answer must be an error or
/// the right one. Returns whether any step reported an error.
fn read_everything(bytes: Vec<u8>, entries: &[Entry]) -> bool {
    let table = match open_bytes(bytes) {
        Ok(t) => t,
        Err(_) => return true,
    };
    let mut failed = false;
    match scan(&table) {
        Ok(all) => {
            assert_eq!(
                all.len(),
                entries.len(),
                "a damaged table scanned without error"
            );
            for (got, want) in all.iter().zip(entries) {
                assert_eq!((&got.0, &got.1), (&want.ikey, &want.value));
            }
        }
        Err(e) => {
            assert!(e.is_corruption(), "{e}");
            failed = true;
        }
    }
    for e in entries {
        match table.get(&e.user, e.seq) {
            Ok(got) => assert_eq!(got, expected(entries, &e.user, e.seq)),
            Err(err) => {
                assert!(err.is_corruption(), "{err}");
                failed = true;
            }
        }
    }
    failed
}

#[test]
fn bit_flips_in_every_part_of_the_file_are_caught() {
    let (entries, bytes) = sample_table();
    let len = bytes.len();
    let footer_at = len - FOOTER_LEN;
    let footer = Footer::decode(&bytes[footer_at..], Path::new("x"), 0).unwrap();
    let table = open_bytes(bytes.clone()).unwrap();
    let data_size = table.properties().data_size as usize;
    assert!(
        data_size > 20 * 4096,
        "want many data blocks, got {data_size} bytes"
    );

    let middle = |h: format::BlockHandle| (h.offset + h.size / 2) as usize;
    // Opening verifies everything but the data blocks.
    let must_fail_open = [
        ("index", middle(footer.index)),
        ("filter", middle(footer.filter)),
        ("properties", middle(footer.properties)),
        ("range-del", middle(footer.range_del)),
        (
            "index trailer",
            (footer.index.offset + footer.index.size) as usize + 2,
        ),
        ("footer handles", footer_at + 3),
        ("footer crc", footer_at + 65),
        ("footer version", footer_at + 68),
        ("footer magic", len - 1),
    ];
    for (what, at) in must_fail_open {
        for bit in [0, 3, 7] {
            let mut bad = bytes.clone();
            bad[at] ^= 1 << bit;
            let err = open_bytes(bad).map(|_| ()).unwrap_err();
            assert!(
                err.is_corruption() || matches!(err, Error::UnsupportedVersion { .. }),
                "{what}: {err}"
            );
        }
    }
    // Data blocks are verified when read: the first, one in the middle, the last, and a trailer.
    for at in [10, data_size / 2, data_size - 8, data_size - 3] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        assert!(
            open_bytes(bad.clone()).is_ok(),
            "data damage is found lazily"
        );
        assert!(read_everything(bad, entries), "flip at {at} went unnoticed");
    }
}

#[test]
fn truncated_files_fail_to_open() {
    let (_, bytes) = sample_table();
    let len = bytes.len();
    let mut cuts: Vec<usize> = (0..len).step_by(997).collect();
    cuts.extend([
        1,
        FOOTER_LEN - 1,
        FOOTER_LEN,
        FOOTER_LEN + 1,
        len - FOOTER_LEN,
        len - 1,
    ]);
    for cut in cuts {
        let err = open_bytes(bytes[..cut].to_vec()).map(|_| ()).unwrap_err();
        assert!(err.is_corruption(), "cut at {cut}: {err}");
    }
}

#[test]
fn corruption_errors_name_file_and_offset() {
    let (_, bytes) = sample_table();
    let mut bad = bytes.clone();
    bad[100] ^= 1;
    let table = open_bytes(bad).unwrap();
    let err = scan(&table).unwrap_err();
    match err {
        Error::ChecksumMismatch { file, offset, .. } => {
            assert_eq!(file, Path::new("mem.sst"));
            assert_eq!(offset, 0);
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(table) = open_bytes(bytes) {
            let _ = scan(&table);
            let _ = table.get(b"user00000000", MAX_SEQNO);
        }
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_footer_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        handles in proptest::collection::vec((0u64..4200, 0u64..4200), 4),
    ) {
        // Give random contents a well-formed footer so decoding reaches the blocks.
        let h = |i: usize| format::BlockHandle { offset: handles[i].0, size: handles[i].1 };
        let footer = Footer {
            index: h(0),
            filter: h(1),
            properties: h(2),
            range_del: h(3),
            version: format::FORMAT_VERSION,
        };
        let mut bytes = body;
        bytes.extend(footer.encode());
        if let Ok(table) = open_bytes(bytes) {
            let _ = scan(&table);
            let _ = table.get(b"user00000000", MAX_SEQNO);
        }
    }

    #[test]
    fn garbage_blocks_with_valid_checksums_never_panic(
        blocks in proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(
                    (
                        proptest::collection::vec(any::<u8>(), 0..20),
                        proptest::collection::vec(any::<u8>(), 0..20),
                    ),
                    0..20,
                ),
            ),
            1..6,
        ),
        index_keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6),
        stray_handle in (0u64..2000, 0u64..2000),
        raw_index in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
    ) {
        // Checksums only prove that bytes are what was written; the decoders behind them must
        // still cope with whatever a buggy or hostile writer put there.
        let mut file = Vec::new();
        let mut frame = |contents: &[u8]| {
            let h = format::BlockHandle { offset: file.len() as u64, size: contents.len() as u64 };
            file.extend_from_slice(contents);
            file.extend(format::block_trailer(contents, format::CompressionType::None));
            h
        };
        // Each data block is either raw bytes or well-formed entries of arbitrary, unordered
        // keys (not necessarily internal keys).
        let handles: Vec<_> = blocks
            .iter()
            .map(|(raw, bytes, entries)| {
                if *raw {
                    frame(bytes)
                } else {
                    let mut b = block::BlockBuilder::new(2);
                    for (k, v) in entries {
                        b.add(k, v);
                    }
                    frame(&b.finish())
                }
            })
            .collect();
        let mut keys = index_keys;
        keys.sort();
        let mut index = block::BlockBuilder::new(1);
        for (i, k) in keys.iter().enumerate() {
            let h = handles.get(i).copied().unwrap_or(format::BlockHandle {
                offset: stray_handle.0,
                size: stray_handle.1,
            });
            index.add(k, &h.encode());
        }
        let index_contents = raw_index.unwrap_or_else(|| index.finish());
        let footer = Footer {
            filter: format::BlockHandle::default(),
            range_del: frame(&format::encode_range_tombstones(&[])),
            properties: frame(&TableProperties::default().encode()),
            index: frame(&index_contents),
            version: format::FORMAT_VERSION,
        };
        let mut bytes = file;
        bytes.extend(footer.encode());
        if let Ok(table) = open_bytes(bytes) {
            let _ = scan(&table);
            for (_, _, entries) in &blocks {
                for (k, _) in entries {
                    let _ = table.get(k, MAX_SEQNO);
                }
            }
            for k in &keys {
                let _ = table.get(k, MAX_SEQNO);
                let mut it = table.iter();
                let _ = it.seek(k);
            }
        }
    }

    #[test]
    fn mutated_tables_give_errors_or_right_answers(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (entries, bytes) = sample_table();
        let mut bad = bytes.clone();
        for (at, x) in flips {
            let i = at.index(bad.len());
            bad[i] ^= x;
        }
        if let Some(c) = cut {
            bad.truncate(c.index(bad.len()));
        }
        // Lookups of a sample of keys keep the case fast; the scan covers every block.
        let sample: Vec<Entry> = entries.iter().step_by(50).cloned().collect();
        let table = match open_bytes(bad) {
            Ok(t) => t,
            Err(_) => return Ok(()),
        };
        if let Ok(all) = scan(&table) {
            prop_assert_eq!(all.len(), entries.len());
        }
        for e in &sample {
            if let Ok(got) = table.get(&e.user, e.seq) {
                prop_assert_eq!(got, expected(entries, &e.user, e.seq));
            }
        }
    }
}

#[test]
fn keys_in_blocks_parse_as_internal_keys() {
    let (_, bytes) = sample_table();
    let table = open_bytes(bytes.clone()).unwrap();
    for (k, _) in scan(&table).unwrap() {
        assert!(parse_internal_key(&k).is_some());
    }
}

/// What a [`HintedFile`] was asked: a read at an offset, or a readahead hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileCall {
    Read(u64),
    WillNeed(u64, u64),
}

/// A file in memory that records reads and readahead hints in order.
#[derive(Debug)]
struct HintedFile {
    bytes: Vec<u8>,
    calls: std::sync::Mutex<Vec<FileCall>>,
}

impl RandomAccessFile for HintedFile {
    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.calls.lock().unwrap().push(FileCall::Read(offset));
        MemFile(self.bytes.clone()).read_at(offset, len)
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn will_need(&self, offset: u64, len: u64) {
        self.calls
            .lock()
            .unwrap()
            .push(FileCall::WillNeed(offset, len));
    }
}

#[test]
fn sequential_scans_ask_for_readahead_and_point_reads_do_not() {
    let (entries, bytes) = sample_table();
    let file = Arc::new(HintedFile {
        bytes: bytes.clone(),
        calls: std::sync::Mutex::default(),
    });
    let table = Arc::new(Table::open(file.clone(), Path::new("hinted.sst")).unwrap());
    let calls = || std::mem::take(&mut *file.calls.lock().unwrap());
    calls();

    // A lookup and a seek that stays in one block ask for nothing ahead.
    table.get(&entries[700].user, MAX_SEQNO).unwrap();
    let mut it = table.iter();
    it.seek(&seek_key(&entries[10].user, MAX_SEQNO)).unwrap();
    it.next().unwrap();
    assert!(
        !calls().iter().any(|c| matches!(c, FileCall::WillNeed(..))),
        "point reads hinted readahead"
    );

    // A full scan: from its second block on, every block it reads was asked for ahead of the
    // read, in windows that start at 64 KiB and grow.
    it.seek_to_first().unwrap();
    let mut n = 0;
    while it.valid() {
        n += 1;
        it.next().unwrap();
    }
    assert_eq!(n, entries.len());
    let log = calls();
    let reads: Vec<u64> = log
        .iter()
        .filter_map(|c| match c {
            FileCall::Read(o) => Some(*o),
            FileCall::WillNeed(..) => None,
        })
        .collect();
    assert!(reads.len() > 20, "{} blocks read", reads.len());
    let mut hinted: Vec<(u64, u64)> = Vec::new();
    let mut reads_seen = 0;
    for c in &log {
        match *c {
            FileCall::WillNeed(o, len) => hinted.push((o, len)),
            FileCall::Read(o) => {
                reads_seen += 1;
                if reads_seen > 2 {
                    assert!(
                        hinted.iter().any(|&(h, len)| h <= o && o < h + len),
                        "block at {o} read without readahead; hints {hinted:?}"
                    );
                }
            }
        }
    }
    assert_eq!(hinted.first().map(|h| h.1), Some(64 << 10));
    assert!(
        hinted
            .windows(2)
            .all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0)
    );
}
