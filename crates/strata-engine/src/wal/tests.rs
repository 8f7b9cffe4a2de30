//! End-to-end tests of the write-ahead log: writer to file system to recovery, on the real file
//! system and on [`FaultFs`], with torn tails, bit flips, power loss and arbitrary input.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::format::{
    FILE_HEADER_LEN, RECORD_HEADER_LEN, encode_file_header, encode_file_header_with_version,
    encode_record,
};
use super::*;
use crate::error::Error;
use crate::fs::{FaultFs, FileSystem, OsFs};

/// Deterministic, varied payload bytes (a small xorshift), so damage is never hidden by
/// repetition.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Payload sizes from empty to 1 MiB, around the record header size and the OS write buffer.
fn varied_payloads() -> Vec<Vec<u8>> {
    let sizes = [
        0,
        1,
        15,
        16,
        17,
        100,
        4095,
        4096,
        4097,
        65_535,
        65_536,
        65_537,
        300_000,
        1 << 20,
        0,
        7,
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i as u64, n))
        .collect()
}

fn fault_fs() -> (FaultFs, PathBuf) {
    let fs = FaultFs::new();
    fs.create_dir_all(Path::new("/db")).unwrap();
    (fs, PathBuf::from("/db/000005.log"))
}

/// Writes `records` to a new log and syncs it.
fn write_log(fs: &dyn FileSystem, path: &Path, log: u64, records: &[Vec<u8>]) {
    let mut w = WalWriter::create(fs, path, log).unwrap();
    for r in records {
        w.add_record(r).unwrap();
    }
    w.sync().unwrap();
}

/// Offset of record `i` in a log holding `records`.
fn offset_of(records: &[Vec<u8>], i: usize) -> usize {
    FILE_HEADER_LEN
        + records[..i]
            .iter()
            .map(|r| RECORD_HEADER_LEN + r.len())
            .sum::<usize>()
}

fn small_records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| payload(100 + i as u64, 20 + 13 * i))
        .collect()
}

#[test]
fn round_trip_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("000005.log");
    let records = varied_payloads();
    write_log(&OsFs, &path, 5, &records);
    let got = read_wal(&OsFs, &path, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(got.log_number, 5);
    assert_eq!(got.truncated_at, None);
    assert_eq!(got.skipped, 0);
    assert_eq!(got.records, records);
    // The file reserved whole chunks ahead of its records.
    let size = OsFs.file_size(&path).unwrap();
    let end = offset_of(&records, records.len()) as u64;
    assert_eq!(
        size,
        end.div_ceil(PREALLOCATION_CHUNK) * PREALLOCATION_CHUNK
    );
}

#[test]
fn round_trip_on_fault_fs_in_both_modes() {
    let (fs, path) = fault_fs();
    let records = varied_payloads();
    write_log(&fs, &path, 5, &records);
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
        let got = read_wal(&fs, &path, mode).unwrap();
        assert_eq!(
            (got.log_number, got.truncated_at, got.skipped),
            (5, None, 0)
        );
        assert_eq!(got.records, records);
    }
}

#[test]
fn empty_log_has_no_records() {
    let (fs, path) = fault_fs();
    write_log(&fs, &path, 5, &[]);
    let got = read_wal(&fs, &path, RecoveryMode::default()).unwrap();
    assert_eq!(
        got,
        WalContents {
            log_number: 5,
            ..WalContents::default()
        }
    );
}

#[test]
fn torn_tail_at_every_cut_point_of_the_last_record() {
    let (fs, path) = fault_fs();
    let records = small_records(4);
    write_log(&fs, &path, 5, &records);
    // The records, without the zeros reserved after them.
    let mut full = fs.read_all(&path).unwrap();
    full.truncate(offset_of(&records, records.len()));
    let last_start = offset_of(&records, records.len() - 1);
    for cut in last_start + 1..full.len() {
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
            let torn = PathBuf::from(format!("/db/torn-{cut}-{mode:?}.log"));
            let mut f = fs.create(&torn).unwrap();
            f.append(&full[..cut]).unwrap();
            f.sync().unwrap();
            drop(f);

            let got = read_wal(&fs, &torn, mode).unwrap();
            assert_eq!(got.records, records[..records.len() - 1], "cut at {cut}");
            assert_eq!(got.truncated_at, Some(last_start as u64), "cut at {cut}");
            assert_eq!(got.skipped, 0);
            assert_eq!(
                fs.file_size(&torn).unwrap(),
                last_start as u64,
                "file truncated"
            );

            // Reading again finds a clean log: the repair is complete.
            let again = read_wal(&fs, &torn, mode).unwrap();
            assert_eq!(
                (again.records.len(), again.truncated_at),
                (records.len() - 1, None)
            );
        }
    }

    // Recovery goes on in a new log file, which works normally.
    let next = Path::new("/db/000006.log");
    let mut w = WalWriter::create(&fs, next, 6).unwrap();
    w.add_record(b"after recovery").unwrap();
    w.sync().unwrap();
    let got = read_wal(&fs, next, RecoveryMode::default()).unwrap();
    assert_eq!(got.records, vec![b"after recovery".to_vec()]);
    assert_eq!(got.log_number, 6);
}

#[test]
fn torn_tail_on_the_real_file_system_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("000005.log");
    let records = small_records(3);
    write_log(&OsFs, &path, 5, &records);
    let last_start = offset_of(&records, 2);
    OsFs.truncate(&path, last_start as u64 + 9).unwrap();
    let got = read_wal(&OsFs, &path, RecoveryMode::default()).unwrap();
    assert_eq!(got.records, records[..2]);
    assert_eq!(got.truncated_at, Some(last_start as u64));
    assert_eq!(OsFs.file_size(&path).unwrap(), last_start as u64);
}

#[test]
fn bad_checksum_on_the_final_record_is_a_torn_tail() {
    let (fs, path) = fault_fs();
    let records = small_records(3);
    write_log(&fs, &path, 5, &records);
    let last_start = offset_of(&records, 2);
    fs.corrupt(&path, last_start + RECORD_HEADER_LEN + 3, &[0xFF])
        .unwrap();
    let got = read_wal(&fs, &path, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(got.records, records[..2]);
    assert_eq!(got.truncated_at, Some(last_start as u64));
}

#[test]
fn bit_flip_in_a_middle_record_names_the_offset() {
    let (fs, path) = fault_fs();
    let records = small_records(5);
    write_log(&fs, &path, 5, &records);
    let bad = offset_of(&records, 2);
    let original = fs.read_all(&path).unwrap();
    fs.corrupt(
        &path,
        bad + RECORD_HEADER_LEN + 4,
        &[original[bad + RECORD_HEADER_LEN + 4] ^ 0x04],
    )
    .unwrap();

    let err = read_wal(&fs, &path, RecoveryMode::TolerateTornTail).unwrap_err();
    match &err {
        Error::ChecksumMismatch { file, offset, .. } => {
            assert_eq!(file, &path);
            assert_eq!(*offset, bad as u64);
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("000005.log") && msg.contains(&bad.to_string()),
        "{msg}"
    );
    // An error leaves the file alone.
    assert_eq!(fs.read_all(&path).unwrap().len(), original.len());

    let got = read_wal(&fs, &path, RecoveryMode::SkipDamaged).unwrap();
    let mut want = records.clone();
    want.remove(2);
    assert_eq!(got.records, want);
    assert_eq!((got.skipped, got.truncated_at), (1, None));
}

#[test]
fn bit_flip_in_a_middle_length_field_is_caught_and_skippable() {
    let (fs, path) = fault_fs();
    let records = small_records(5);
    write_log(&fs, &path, 5, &records);
    let bad = offset_of(&records, 1);
    // Make the length far larger: without resynchronisation the rest of the log would be lost.
    // (Past the end of the records it runs into the file's reserved zeros, or past the file.)
    fs.corrupt(&path, bad + 6, &[0x30]).unwrap();
    let err = read_wal(&fs, &path, RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { offset, .. } | Error::ChecksumMismatch { offset, .. }
            if offset == bad as u64),
        "{err}"
    );

    let got = read_wal(&fs, &path, RecoveryMode::SkipDamaged).unwrap();
    let mut want = records.clone();
    want.remove(1);
    assert_eq!(got.records, want);
    assert_eq!(got.skipped, 1);
}

#[test]
fn bit_flip_in_the_file_header_is_an_error() {
    let (fs, path) = fault_fs();
    write_log(&fs, &path, 5, &small_records(2));
    let original = fs.read_all(&path).unwrap();
    for byte in 0..FILE_HEADER_LEN {
        fs.corrupt(&path, byte, &[original[byte] ^ 0x01]).unwrap();
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
            let err = read_wal(&fs, &path, mode).unwrap_err();
            assert!(err.is_corruption(), "byte {byte}: {err}");
        }
        fs.corrupt(&path, byte, &original[byte..=byte]).unwrap();
    }
    assert_eq!(
        read_wal(&fs, &path, RecoveryMode::default())
            .unwrap()
            .records
            .len(),
        2
    );
}

#[test]
fn newer_format_version_is_refused() {
    let mut bytes = encode_file_header_with_version(5, FORMAT_VERSION + 1);
    bytes.extend(encode_record(5, b"from the future").unwrap());
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
        let err = decode_wal(&bytes, Path::new("/db/000005.log"), mode).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedVersion { found, .. } if found == FORMAT_VERSION + 1),
            "{err}"
        );
    }
}

#[test]
fn short_file_is_reported_not_guessed() {
    let (fs, path) = fault_fs();
    let mut f = fs.create(&path).unwrap();
    f.append(&encode_file_header(5)[..10]).unwrap();
    drop(f);
    let err = read_wal(&fs, &path, RecoveryMode::default()).unwrap_err();
    assert!(matches!(err, Error::Corruption { offset: 0, .. }), "{err}");
}

#[test]
fn zero_filled_tail_is_the_end_of_the_log() {
    let (fs, path) = fault_fs();
    let records = small_records(3);
    write_log(&fs, &path, 5, &records);
    let end = offset_of(&records, 3) as u64;
    // The writer's own reserved space, then zeros of every length after it: a clean end,
    // left as it is, in both modes.
    for zeros in [0, 1, RECORD_HEADER_LEN - 1, RECORD_HEADER_LEN, 4096] {
        let mut f = fs.open_append(&path).unwrap();
        f.append(&vec![0; zeros]).unwrap();
        f.sync().unwrap();
        drop(f);
        let size = fs.file_size(&path).unwrap();
        assert!(size > end, "space was reserved");
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
            let got = read_wal(&fs, &path, mode).unwrap();
            assert_eq!(got.records, records);
            assert_eq!((got.truncated_at, got.skipped), (None, 0));
            assert_eq!(fs.file_size(&path).unwrap(), size);
        }
    }
}

#[test]
fn zeroed_stretch_before_valid_records_is_damage() {
    let records = small_records(4);
    let mut bytes = encode_file_header(5);
    for r in &records {
        bytes.extend(encode_record(5, r).unwrap());
    }
    let start = offset_of(&records, 1);
    let end = offset_of(&records, 2);
    bytes[start..end].fill(0);
    let file = Path::new("/db/000005.log");
    let err = decode_wal(&bytes, file, RecoveryMode::TolerateTornTail).unwrap_err();
    assert!(
        matches!(err, Error::Corruption { offset, .. } if offset == start as u64),
        "{err}"
    );
    let got = decode_wal(&bytes, file, RecoveryMode::SkipDamaged).unwrap();
    assert_eq!(got.records, [&records[..1], &records[2..]].concat());
    assert_eq!(got.skipped, 1);
}

#[test]
fn stale_records_of_another_log_are_not_replayed() {
    // A recycled file: this log's records, then what an older log (number 4) left behind.
    let mut bytes = encode_file_header(5);
    bytes.extend(encode_record(5, b"current").unwrap());
    let end = bytes.len();
    bytes.extend(encode_record(4, b"stale one").unwrap());
    bytes.extend(encode_record(4, b"stale two").unwrap());
    let got = decode_wal(&bytes, Path::new("/db/000005.log"), RecoveryMode::default()).unwrap();
    assert_eq!(got.records, vec![b"current".to_vec()]);
    assert_eq!(got.truncated_at, Some(end as u64));
}

#[test]
fn oversized_record_is_refused_and_the_writer_stays_usable() {
    // A payload of MAX_RECORD_LEN + 1 bytes would need a 1 GiB allocation here; the length check
    // itself is tested in `format`. This checks that a refused record does not poison the log.
    let (fs, path) = fault_fs();
    let mut w = WalWriter::create(&fs, &path, 5).unwrap();
    let big = vec![0u8; 1 << 20];
    w.add_record(&big).unwrap();
    w.add_record(b"small").unwrap();
    w.sync().unwrap();
    assert_eq!(
        read_wal(&fs, &path, RecoveryMode::default())
            .unwrap()
            .records
            .len(),
        2
    );
}

#[test]
fn power_loss_keeps_synced_records_and_never_a_partial_one() {
    let (fs, path) = fault_fs();
    let mut w = WalWriter::create(&fs, &path, 5).unwrap();
    let records = small_records(10);
    for r in &records[..4] {
        w.add_record(r).unwrap();
    }
    w.sync().unwrap();
    for r in &records[4..7] {
        w.add_record(r).unwrap();
    }
    w.flush().unwrap();
    for r in &records[7..] {
        w.add_record(r).unwrap();
    }
    fs.power_loss();

    let got = read_wal(&fs, &path, RecoveryMode::TolerateTornTail).unwrap();
    assert!(got.records.len() >= 4, "synced records lost");
    assert_eq!(
        got.records,
        records[..got.records.len()],
        "records must be a clean prefix"
    );
}

#[test]
fn power_loss_right_after_create_keeps_the_file() {
    let (fs, path) = fault_fs();
    let w = WalWriter::create(&fs, &path, 5).unwrap();
    drop(w);
    fs.power_loss();
    let got = read_wal(&fs, &path, RecoveryMode::default()).unwrap();
    assert_eq!((got.log_number, got.records.len()), (5, 0));
}

#[test]
fn power_loss_at_every_byte_of_unsynced_writes() {
    // The real disk may keep any prefix of what was written after the last sync; FaultFs keeps
    // none of it, so every prefix is tried by hand.
    let (fs, path) = fault_fs();
    let records = small_records(6);
    write_log(&fs, &path, 5, &records[..2]);
    let mut synced = fs.read_all(&path).unwrap();
    synced.truncate(offset_of(&records, 2));
    let mut all = synced.clone();
    for r in &records[2..] {
        all.extend(encode_record(5, r).unwrap());
    }
    for cut in synced.len()..=all.len() {
        let got = decode_wal(&all[..cut], &path, RecoveryMode::TolerateTornTail).unwrap();
        assert!(got.records.len() >= 2, "cut {cut}");
        assert_eq!(got.records, records[..got.records.len()], "cut {cut}");
    }
}

/// A valid log of `records` for log 9.
fn encode_log(records: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = encode_file_header(9);
    for r in records {
        bytes.extend(encode_record(9, r).unwrap());
    }
    bytes
}

/// True if `sub` appears in `all` in order (not necessarily contiguously).
fn is_subsequence(sub: &[Vec<u8>], all: &[Vec<u8>]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|s| it.any(|a| a == s))
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Zero { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Zero { at, len }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..24))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= mask;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
        Mutation::Zero { at, len } => {
            let start = at % n;
            let end = (start + len).min(bytes.len());
            if let Some(s) = bytes.get_mut(start..end) {
                s.fill(0);
            }
        }
        Mutation::Insert { at, bytes: ins } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, ins.iter().copied());
        }
    }
}

/// Checks what any decode result must satisfy, whatever the input.
fn check_decode(bytes: &[u8], originals: Option<&[Vec<u8>]>) {
    let file = Path::new("/db/fuzz.log");
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
        let Ok(got) = decode_wal(bytes, file, mode) else {
            continue;
        };
        let payload_bytes: usize = got.records.iter().map(Vec::len).sum();
        assert!(payload_bytes <= bytes.len());
        if let Some(orig) = originals {
            // No record is ever invented or garbled: in strict mode the result is a prefix of
            // what was written, in skipping mode a subsequence.
            match mode {
                RecoveryMode::TolerateTornTail => {
                    assert!(got.skipped == 0 && got.records[..] == orig[..got.records.len()]);
                }
                RecoveryMode::SkipDamaged => assert!(is_subsequence(&got.records, orig)),
            }
        }
        if let Some(at) = got.truncated_at {
            // Cutting the file where the decoder said gives the same records and a clean end.
            let cut = bytes
                .get(..at as usize)
                .expect("truncation point inside the input");
            let again = decode_wal(cut, file, mode).expect("a truncated log decodes");
            assert_eq!(again.records, got.records);
            assert_eq!((again.truncated_at, again.skipped), (None, got.skipped));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&bytes, None);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = encode_file_header(9);
        bytes.extend(tail);
        check_decode(&bytes, None);
    }

    #[test]
    fn mutated_logs_never_panic_or_garble(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..8),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = encode_log(&records);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_decode(&bytes, Some(&records));
    }

    #[test]
    fn valid_logs_decode_exactly(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..16),
    ) {
        let bytes = encode_log(&records);
        for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipDamaged] {
            let got = decode_wal(&bytes, Path::new("/db/x.log"), mode).unwrap();
            prop_assert_eq!(&got.records, &records);
            prop_assert_eq!((got.truncated_at, got.skipped, got.log_number), (None, 0, 9));
        }
    }
}

#[test]
fn a_recycled_log_holds_only_its_own_records_even_after_power_loss() {
    let fs = FaultFs::new();
    let dir = PathBuf::from("/wal");
    fs.create_dir_all(&dir).unwrap();
    let old = dir.join("000007.wal");
    let new = dir.join("000009.wal");
    let mut w = WalWriter::create(&fs, &old, 7).unwrap();
    for i in 0..50 {
        w.add_record(&payload(i, 300)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let old_size = fs.file_size(&old).unwrap();

    let mut w = WalWriter::recycle(&fs, &old, &new, 9).unwrap();
    assert!(!fs.exists(&old));
    for i in 100..103 {
        w.add_record(&payload(i, 100)).unwrap();
    }
    w.sync().unwrap();
    assert_eq!(
        fs.file_size(&new).unwrap(),
        old_size,
        "space reused, not grown"
    );
    // One more record that never reaches the disk.
    w.add_record(&payload(200, 100)).unwrap();
    fs.power_loss();

    let raw = fs.read_all(&new).unwrap();
    let got = read_wal(&fs, &new, RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(got.log_number, 9);
    let cut = got.truncated_at.unwrap() as usize;
    assert!(
        super::format::follows_reused_log(&raw, cut, 9),
        "the end of a reused log is told apart from a torn tail"
    );
    assert!(!super::format::follows_reused_log(&raw, cut, 7));
    let want: Vec<Vec<u8>> = (100..103).map(|i| payload(i, 100)).collect();
    assert_eq!(
        got.records, want,
        "stale records of log 7 read as the end of log 9"
    );
    assert!(got.truncated_at.is_some());
}
