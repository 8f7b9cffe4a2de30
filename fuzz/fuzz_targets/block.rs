//! `table::block::Block` decoding and iteration on arbitrary bytes, and a round trip through
//! `BlockBuilder`.
//!
//! Raw mode (first byte even): `Block::new` on the rest never panics; if it accepts the bytes,
//! iterating terminates, every error leaves the iterator invalid, and every successful seek lands
//! on a key at or after its target (the seek loop guarantees that whatever the bytes are).
//!
//! Round-trip mode (first byte odd): sorted entries chosen by the fuzzer are built into a block
//! with a fuzzer-chosen restart interval; decoding must give back exactly those entries, and a
//! seek must land on the first entry at or after its target.
#![no_main]

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_engine::iter::InternalIterator;
use strata_engine::key::compare_internal;
use strata_engine::table::block::Block;
use strata_fuzz::{Input, build_block, checked_seek, collect_entries, entries};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let file: Arc<Path> = Arc::from(Path::new("/db/000001.sst"));
    if input.u8() % 2 == 0 {
        let bytes = input.rest();
        let Ok(block) = Block::new(bytes.to_vec(), file, 0) else {
            return;
        };
        let mut it = block.iter();
        // Each entry takes at least three bytes, so iteration must end within len / 3 steps.
        let all = collect_entries(&mut it, bytes.len() / 3 + 1);
        assert!(
            all.len() <= bytes.len() / 3,
            "more entries than bytes allow"
        );
        for (k, _) in all.iter().take(32) {
            checked_seek(&mut it, k, true);
        }
        for target in [&b""[..], b"\xff\xff\xff\xff\xff\xff\xff\xff\xff", bytes] {
            checked_seek(&mut it, target, true);
        }
        return;
    }
    let restart_interval = usize::from(input.u8() % 8) + 1;
    let targets = input.take(24).to_vec();
    let want = entries(&mut input, 256);
    let bytes = build_block(&want, restart_interval);
    let block = Block::new(bytes, file, 0).expect("a built block decodes");
    let mut it = block.iter();
    assert_eq!(collect_entries(&mut it, want.len() + 1), want);
    let mut check = |target: &[u8]| {
        let at = want.partition_point(|(k, _)| compare_internal(k, target) == Ordering::Less);
        checked_seek(&mut it, target, true);
        match want.get(at) {
            Some((k, v)) => {
                assert!(it.valid(), "seek missed an entry");
                assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
            }
            None => assert!(!it.valid(), "seek past the end is valid"),
        }
    };
    for (k, _) in &want {
        check(k);
    }
    for chunk in targets.chunks(8) {
        check(chunk);
    }
});
