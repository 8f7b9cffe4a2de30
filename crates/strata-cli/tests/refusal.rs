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

#[test]
fn a_store_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // The first REPL holds the store open while it waits for input.
    let mut first = common::strata(&dir, tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = first.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(first.stdout.take().unwrap());
    std::io::Write::write_all(&mut stdin, b"PUT a 1\n").unwrap();
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut reply).unwrap();
    assert_eq!(reply, "OK\n");

    let second = run_script(&dir, b"GET a\n");
    assert!(!second.status.success());
    let stderr = String::from_utf8(second.stderr).unwrap();
    assert!(stderr.contains("is locked by another process"), "{stderr}");

    drop(stdin);
    assert!(first.wait().unwrap().success());
}
