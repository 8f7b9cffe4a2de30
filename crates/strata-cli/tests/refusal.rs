//! A directory that is not a Strata store is refused with a clear message.

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

mod common;

use common::run_script;

#[test]
fn a_foreign_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("holiday.jpg"), b"not a table").unwrap();

    let out = run_script(&dir, b"PUT a 1\n");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no REPL output");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("strata: cannot open the store in"),
        "{stderr}"
    );
    assert!(stderr.contains("is not a Strata store"), "{stderr}");
    assert!(stderr.contains("holiday.jpg"), "{stderr}");
    // Nothing was written into the foreign directory.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["holiday.jpg"]);
}

#[test]
fn a_plain_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, b"hello").unwrap();
    let out = run_script(&file, b"COUNT\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("strata: cannot open the store in"),
        "{stderr}"
    );
}
