//! `wal::decode_wal` on arbitrary bytes, in both recovery modes: never panics, and what it
//! recovers is consistent with the bytes.
//!
//! The first byte picks the recovery mode and whether the rest is used as is or as a recipe for
//! a log with valid checksums (a header, then records with fuzzer-chosen payloads, damaged
//! stretches and a torn tail), so that mutations get past the checksums.
//!
//! Invariants when decoding succeeds:
//! - in `TolerateTornTail` mode nothing is skipped, and the file header followed by the records
//!   re-encodes to exactly the bytes before the torn tail (or the whole input);
//! - in either mode the re-encoded records decode to the same records with no damage;
//! - a torn tail starts after the header and inside the input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_engine::wal::format::{FILE_HEADER_LEN, encode_file_header, encode_record};
use strata_engine::wal::{RecoveryMode, decode_wal};
use strata_fuzz::Input;

fn recipe(input: &mut Input<'_>) -> Vec<u8> {
    let log = u64::from(input.u8() % 4);
    let mut bytes = encode_file_header(log);
    while !input.is_empty() {
        let op = input.u8();
        let len = usize::from(input.u8());
        let chunk = input.take(len);
        match op % 4 {
            // A valid record of this log, or (rarely) of another one.
            0 | 1 => {
                let number = if op % 16 == 1 { log + 1 } else { log };
                bytes.extend(encode_record(number, chunk).expect("small record"));
            }
            // Raw bytes: damage, or zero-filled space when the chunk is zeros.
            2 => bytes.extend_from_slice(chunk),
            // Flip a bit somewhere already written.
            _ => {
                if let Some(&b) = chunk.first() {
                    let at = usize::from(b) * 7 % bytes.len();
                    bytes[at] ^= 1 << (op >> 5);
                }
            }
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mode = if flags & 1 == 0 {
        RecoveryMode::TolerateTornTail
    } else {
        RecoveryMode::SkipDamaged
    };
    let bytes = if flags & 2 == 0 {
        input.rest().to_vec()
    } else {
        recipe(&mut input)
    };
    let path = Path::new("/db/000001.wal");
    let Ok(contents) = decode_wal(&bytes, path, mode) else {
        return;
    };
    let end = match contents.truncated_at {
        Some(t) => {
            let t = usize::try_from(t).expect("offset fits");
            assert!(t >= FILE_HEADER_LEN && t < bytes.len(), "torn tail at {t}");
            t
        }
        None => bytes.len(),
    };
    let mut reencoded = encode_file_header(contents.log_number);
    for r in &contents.records {
        reencoded.extend(encode_record(contents.log_number, r).expect("record came from input"));
    }
    assert!(reencoded.len() <= end);
    if mode == RecoveryMode::TolerateTornTail {
        assert_eq!(contents.skipped, 0);
        assert_eq!(
            reencoded,
            bytes[..end],
            "records do not account for every byte"
        );
    }
    let again = decode_wal(&reencoded, path, mode).expect("re-encoded log decodes");
    assert_eq!(again.records, contents.records);
    assert_eq!(again.truncated_at, None);
    assert_eq!(again.skipped, 0);
});
