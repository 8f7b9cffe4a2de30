//! The terminal mode, through a real pseudo-terminal: prompt, friendly replies, the boxed STATS
//! table, the compaction summary, persistent history, and `NO_COLOR`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Expect, Session};

const PROMPT: &str = "strata> ";

fn spawn(dir: &Path, history: &Path, no_color: bool) -> expectrl::session::OsSession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("--data")
        .arg(dir)
        .env("STRATA_HISTORY", history)
        .env("TERM", "xterm")
        .env_remove("RUST_LOG");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let mut session = Session::spawn(cmd).expect("spawn strata on a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

/// Sends one command once the prompt is there and returns everything printed up to the next
/// prompt.
fn command(p: &mut expectrl::session::OsSession, line: &str) -> String {
    p.send_line(line).unwrap();
    let found = p.expect(PROMPT).unwrap();
    String::from_utf8_lossy(found.before()).into_owned()
}

#[test]
fn terminal_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let history = tmp.path().join("history");
    let mut p = spawn(&dir, &history, false);

    let banner = p.expect(PROMPT).unwrap();
    assert!(String::from_utf8_lossy(banner.before()).contains("Type HELP"));

    assert!(command(&mut p, "PUT user:1 {\"name\":\"Alice\"}").contains("OK"));
    assert!(command(&mut p, "get user:1").contains("{\"name\":\"Alice\"}"));
    assert!(command(&mut p, "GET nobody").contains("Error: key not found"));
    assert!(command(&mut p, "DELETE user:1").contains("Deleted"));
    assert!(command(&mut p, "FROB").contains("Error: unknown command 'FROB'"));
    for i in 0..20 {
        command(&mut p, &format!("PUT k{i} v{i}"));
    }
    assert!(command(&mut p, "FLUSH").contains("Flushed"));
    for i in 0..10 {
        command(&mut p, &format!("DELETE k{i}"));
    }
    let scan = command(&mut p, "SCAN k1 k2 LIMIT 5");
    assert!(scan.contains("(5 entries)"), "{scan}");

    let compact = command(&mut p, "COMPACT");
    assert!(
        compact.contains("Starting compaction (2 SSTables)"),
        "{compact}"
    );
    assert!(compact.contains("Compaction finished"), "{compact}");
    assert!(compact.contains("Keys removed:"), "{compact}");
    assert!(compact.contains("Bytes reclaimed:"), "{compact}");
    assert!(compact.contains("Time taken:"), "{compact}");

    let stats = command(&mut p, "STATS");
    for part in [
        "┌",
        "│",
        "└",
        "storage",
        "memtable",
        "L0 SSTables",
        "bloom filter",
    ] {
        assert!(stats.contains(part), "{part} missing from {stats}");
    }
    for part in [
        "useful rate",
        "compaction",
        "keys removed",
        "write amplification",
    ] {
        assert!(stats.contains(part), "{part} missing from {stats}");
    }
    assert!(
        stats.contains("\x1b[") || compact.contains("\x1b[32m"),
        "colour on a terminal"
    );

    p.send_line("EXIT").unwrap();
    p.expect(Eof).unwrap();
    let status = p.get_process().wait().unwrap();
    assert!(
        matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );

    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("PUT user:1"), "{saved}");
    assert!(saved.contains("COMPACT"), "{saved}");
}

#[test]
fn no_color_turns_off_colour_and_symbols() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut p = spawn(&dir, &tmp.path().join("history"), true);
    p.expect(PROMPT).unwrap();
    let ok = command(&mut p, "PUT a 1");
    assert!(
        ok.contains("OK") && !ok.contains('✔') && !ok.contains("\x1b[32m"),
        "{ok}"
    );
    let stats = command(&mut p, "STATS");
    assert!(stats.contains("+---") && !stats.contains('┌'), "{stats}");
    assert!(!stats.contains("\x1b[3"), "{stats}");
    // Ctrl-D leaves, like EXIT.
    p.send(expectrl::ControlCode::EndOfTransmission).unwrap();
    p.expect(Eof).unwrap();
}
