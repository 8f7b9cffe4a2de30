//! The plain, parseable mode: the real binary driven through a pipe.

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::{plain, run_script, strata};

#[test]
fn put_get_delete_count() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = plain(
        &dir,
        "PUT a 1\nput b two words\nGET a\nget b\nGET missing\nCOUNT\nDELETE a\nGET a\n\
         DELETE never-there\ncount\n",
    );
    assert_eq!(out, "OK\nOK\n1\ntwo words\n(nil)\n2\nOK\n(nil)\nOK\n1\n");
}

#[test]
fn no_prompt_banner_or_decoration() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plain(&tmp.path().join("data"), "HELP\nPUT k v\n");
    assert!(out.starts_with("Commands"), "{out}");
    assert!(out.ends_with("\n\nOK\n"), "{out}");
    assert!(!out.contains("strata>"));
    assert!(!out.contains('\x1b'));
}

#[test]
fn json_value_is_the_rest_of_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plain(
        &tmp.path().join("data"),
        "PUT user:1 {\"name\":\"Alice\",\"age\":30}\nGET user:1\n",
    );
    assert_eq!(out, "OK\n{\"name\":\"Alice\",\"age\":30}\n");
}

#[test]
fn quoted_keys_and_escapes_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let script = concat!(
        "PUT \"my key\" \"tab\\there\\nnewline \\\\ \\\"q\\\" \\x00\\xff\"\n",
        "GET \"my key\"\n",
        "GET my key\n",
        "SCAN\n",
    );
    let out = plain(&tmp.path().join("data"), script);
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines[0], "OK");
    // TAB, newline and backslash are escaped, `"` is printable, bytes 0x00 and 0xff are \xHH.
    assert_eq!(lines[1], r#"tab\there\nnewline \\ "q" \x00\xff"#);
    assert!(lines[2].starts_with("ERR too many arguments"), "{out}");
    assert_eq!(lines[3], r#"my key	tab\there\nnewline \\ "q" \x00\xff"#);
    assert_eq!(lines[4], "");
}

#[test]
fn binary_bytes_in_a_bare_value_come_back_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_script(&tmp.path().join("data"), b"PUT k \xfe\x01ok\r\nGET k\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n\\xfe\\x01ok\n");
}

#[test]
fn scan_ranges_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plain(
        &tmp.path().join("data"),
        "PUT a 1\nPUT b 2\nPUT c 3\nPUT d 4\nSCAN\nSCAN b\nSCAN b d\nSCAN LIMIT 2\n\
         SCAN b LIMIT 1\nSCAN x\n",
    );
    assert_eq!(
        out,
        "OK\nOK\nOK\nOK\n\
         a\t1\nb\t2\nc\t3\nd\t4\n\n\
         b\t2\nc\t3\nd\t4\n\n\
         b\t2\nc\t3\n\n\
         a\t1\nb\t2\n\n\
         b\t2\n\n\
         \n"
    );
}

#[test]
fn flush_compact_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let out = plain(
        &tmp.path().join("data"),
        "PUT a 1\nFLUSH\nPUT a 2\nDELETE a\nPUT b 1\nFLUSH\nCOMPACT\nSTATS\nGET a\nGET b\n",
    );
    let (acks, rest) = out.split_at(out.find("memtable_bytes").unwrap());
    assert_eq!(acks, "OK\nOK\nOK\nOK\nOK\nOK\nOK\n");
    let (stats, tail) = rest.split_once("\n\n").unwrap();
    assert_eq!(tail, "(nil)\n1\n");
    let figures: std::collections::HashMap<&str, &str> =
        stats.lines().map(|l| l.split_once('\t').unwrap()).collect();
    for name in [
        "memtable_bytes",
        "sstables",
        "l0_sstables",
        "l0_bytes",
        "bloom_negatives",
        "bloom_false_positives",
        "bloom_useful_rate",
        "keys_removed",
        "bytes_reclaimed",
        "write_amplification",
        "last_compaction_secs",
    ] {
        assert!(figures.contains_key(name), "{name} missing from {stats}");
    }
    assert_eq!(figures["compactions"], "1");
    assert_eq!(figures["sstables"], "1");
    // Two old versions of `a` and its tombstone are gone.
    assert!(
        figures["keys_removed"].parse::<u64>().unwrap() >= 2,
        "{stats}"
    );
    assert!(figures["last_compaction_secs"].parse::<f64>().is_ok());
}

#[test]
fn compact_on_an_empty_store() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        plain(&tmp.path().join("data"), "COMPACT\nCOUNT\n"),
        "OK\n0\n"
    );
}

#[test]
fn errors_are_one_err_line_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let big_key = "k".repeat(70_000);
    let script = format!(
        "frobnicate\nGET\nPUT k\nPUT k \"open\nSCAN a LIMIT x\nPUT {big_key} v\nPUT \"\" v\n\
         PUT k \"bad \\q\"\nPUT ok yes\nGET ok\n"
    );
    let out = plain(&tmp.path().join("data"), &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 10, "{out}");
    for line in &lines[..8] {
        assert!(line.starts_with("ERR "), "{line}");
    }
    assert!(lines[0].contains("unknown command 'FROBNICATE'"));
    assert!(
        lines[5].contains("key of 70000 bytes is invalid"),
        "{}",
        lines[5]
    );
    assert!(lines[6].contains("key of 0 bytes"), "{}", lines[6]);
    assert_eq!(&lines[8..], ["OK", "yes"]);
}

#[test]
fn exit_and_quit_stop_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    assert_eq!(plain(&dir, "PUT a 1\nEXIT\nPUT b 2\n"), "OK\n");
    assert_eq!(plain(&dir, "quit\nPUT b 2\n"), "");
    assert_eq!(plain(&dir, "COUNT\n"), "1\n");
}

/// A program can hold a conversation over the pipes: each reply arrives (flushed) before the
/// next command is sent.
#[test]
fn replies_are_flushed_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut child = strata(&dir, tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let timeout = Duration::from_secs(30);
    for (cmd, reply) in [("PUT a 1", "OK"), ("GET a", "1"), ("COUNT", "1")] {
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        assert_eq!(rx.recv_timeout(timeout).unwrap(), reply, "reply to {cmd}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
