//! `table::Table::open`, `get` and `iter` on table files read through `FaultFs`.
//!
//! The first byte picks a mode:
//! - raw: the rest is the file;
//! - fixed: the rest is the file after `fix_table_checksums` recomputes the footer and block
//!   checksums, so mutations of a valid table reach the index, filter, properties, range-del and
//!   data block decoders instead of stopping at a checksum;
//! - round trip: fuzzer-chosen sorted entries and range tombstones are written with
//!   `TableBuilder` (fuzzer-chosen block size, restart interval and bloom bits) and read back.
//!
//! In the first two modes the checks are: no panic, iteration terminates, errors leave the
//! iterator invalid, and `get` on every key found answers without panicking. In the round trip
//! the table must give back exactly what was written: iteration, `get` at each entry's sequence
//! number, seeks, properties and range tombstones.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use strata_engine::iter::InternalIterator;
use strata_engine::key::{MAX_SEQNO, compare_internal, parse_internal_key};
use strata_engine::range_del::RangeTombstone;
use strata_engine::table::{TableGet, TableOptions};
use strata_fuzz::{
    Input, build_table, checked_seek, collect_entries, entries, fix_table_checksums, open_table,
};

fn damaged(bytes: &[u8]) {
    let Ok(table) = open_table(bytes) else {
        return;
    };
    let _ = table.properties();
    let _ = table.range_tombstones();
    let mut it = table.iter();
    let all = collect_entries(&mut it, 4096);
    for (k, _) in all.iter().take(64) {
        checked_seek(&mut it, k, false);
        if let Some(p) = parse_internal_key(k) {
            let _ = table.may_contain(p.user_key);
            let _ = table.get(p.user_key, p.seq);
            let _ = table.get(p.user_key, u64::MAX);
        }
        let _ = table.get(k, 0);
    }
    checked_seek(&mut it, bytes.get(..16).unwrap_or_default(), false);
}

fn round_trip(input: &mut Input<'_>) {
    let opts = TableOptions {
        block_size: usize::from(input.u8()) * 4 + 1,
        restart_interval: usize::from(input.u8() % 8) + 1,
        bloom_bits_per_key: usize::from(input.u8() % 16),
        ..TableOptions::default()
    };
    let mut tombstones: Vec<RangeTombstone> = (0..input.u8() % 4)
        .map(|_| {
            let a = input.take(3).to_vec();
            let b = input.take(3).to_vec();
            RangeTombstone {
                start: a.clone().min(b.clone()),
                end: a.max(b),
                seq: u64::from(input.u8()),
            }
        })
        .collect();
    tombstones.sort();
    let probes = input.take(32).to_vec();
    let want = entries(input, 512);
    let bytes = build_table(&want, &tombstones, opts);
    let table = open_table(&bytes).expect("a built table opens");
    assert_eq!(table.properties().num_entries, want.len() as u64);
    assert_eq!(
        table.properties().num_range_deletions,
        tombstones.len() as u64
    );
    let mut got_tombstones = table.range_tombstones().to_vec();
    got_tombstones.sort();
    assert_eq!(got_tombstones, tombstones);

    let mut it = table.iter();
    assert_eq!(collect_entries(&mut it, want.len() + 1), want);
    for (k, v) in &want {
        let p = parse_internal_key(k).expect("built from internal keys");
        let found = TableGet::Found {
            seq: p.seq,
            kind: p.kind,
            value: v.clone(),
        };
        assert_eq!(table.get(p.user_key, p.seq).expect("get"), found);
        assert!(table.may_contain(p.user_key), "bloom filter false negative");
        assert!(checked_seek(&mut it, k, true));
        assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
    }
    for target in probes.chunks(9) {
        let at = want.partition_point(|(k, _)| compare_internal(k, target) == Ordering::Less);
        checked_seek(&mut it, target, true);
        assert_eq!(it.valid(), at < want.len());
        let user_key = &target[..target.len().min(8)];
        let newest = want.iter().find(|(k, _)| {
            parse_internal_key(k).is_some_and(|p| p.user_key == user_key && p.seq <= MAX_SEQNO)
        });
        match table.get(user_key, MAX_SEQNO).expect("get") {
            TableGet::Found { seq, .. } => {
                let p = parse_internal_key(&newest.expect("found a key never written").0);
                assert_eq!(Some(seq), p.map(|p| p.seq));
            }
            TableGet::NotFound | TableGet::FilteredOut => assert!(newest.is_none()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.u8() % 3 {
        0 => damaged(input.rest()),
        1 => {
            let mut bytes = input.rest().to_vec();
            fix_table_checksums(&mut bytes);
            damaged(&bytes);
        }
        _ => round_trip(&mut input),
    }
});
