//! Writes acknowledged in one run are there in the next.

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

mod common;

use common::plain;

#[test]
fn data_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    assert_eq!(
        plain(
            &dir,
            "PUT a 1\nPUT \"b c\" \"x\\ty\"\nPUT gone 1\nDELETE gone\n"
        ),
        "OK\nOK\nOK\nOK\n"
    );
    assert!(
        dir.join("CURRENT").exists(),
        "a new directory is initialised"
    );
    assert_eq!(
        plain(
            &dir,
            "GET a\nGET \"b c\"\nGET gone\nCOUNT\nFLUSH\nPUT d 4\n"
        ),
        "1\nx\\ty\n(nil)\n2\nOK\nOK\n"
    );
    assert_eq!(
        plain(&dir, "COMPACT\nSCAN\n"),
        "OK\na\t1\nb c\tx\\ty\nd\t4\n\n"
    );
    assert_eq!(plain(&dir, "COUNT\n"), "3\n");
}
