//! Helpers shared by the tests that drive the real `strata` binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "test helpers: a failure here is a test failure, and not every test uses every helper"
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A `strata` command on `dir` with a private HOME, so no test touches the user's history.
pub fn strata(dir: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("--data")
        .arg(dir)
        .env("HOME", home)
        .env_remove("STRATA_HISTORY")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `strata --data dir` with `script` on a pipe as stdin and returns what it did.
pub fn run_script(dir: &Path, script: &[u8]) -> Output {
    let home = dir.parent().unwrap();
    let mut child = strata(dir, home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let script = script.to_vec();
    // Write from another thread so a large script cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        // The binary may exit early (EXIT), closing the pipe: that is not a test failure.
        let _ = stdin.write_all(&script);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// Runs `script` and returns stdout as text, checking the process succeeded quietly.
pub fn plain(dir: &Path, script: &str) -> String {
    let out = run_script(dir, script.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}, stderr: {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "unexpected stderr: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

pub mod process;
