//! `VersionEdit::decode` (a MANIFEST record) on arbitrary bytes: never panics, and an edit it
//! accepts encodes to at most as many bytes (the encoding is canonical and keeps one copy of each
//! scalar field), which decode to an equal edit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::version::VersionEdit;

fuzz_target!(|data: &[u8]| {
    let Some(edit) = VersionEdit::decode(data) else {
        return;
    };
    let encoded = edit.encode();
    assert!(
        encoded.len() <= data.len(),
        "canonical encoding is longer than the input"
    );
    assert_eq!(VersionEdit::decode(&encoded).as_ref(), Some(&edit));
});
