//! `strata connect` against a real server process, in piped mode: the same replies as the
//! embedded REPL, errors as `ERR` lines, a lost server reported and reconnected to, tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};

use common::process::ServerProcess;

fn connect_command(addr: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(["connect", addr])
        .env_remove("STRATA_TOKEN")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `strata connect addr` with `script` on stdin.
fn run(cmd: &mut Command, script: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_repl_works_over_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let addr = server.grpc.to_string();
    let out = run(
        &mut connect_command(&addr),
        "PUT a 1\nput b two words\nGET a\nget b\nGET missing\nCOUNT\nSCAN\nSCAN b LIMIT 1\n\
         DELETE a\nGET a\nPUT \"k\\x00\" \"tab\\there\"\nGET \"k\\x00\"\nFLUSH\nnope\n",
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout} {:?}", out.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        &lines[..12],
        [
            "OK",
            "OK",
            "1",
            "two words",
            "(nil)",
            "2",
            "a\t1",
            "b\ttwo words",
            "",
            "b\ttwo words",
            "",
            "OK"
        ]
    );
    assert_eq!(&lines[12..15], ["(nil)", "OK", r"tab\there"]);
    assert_eq!(lines[15], "OK", "FLUSH: {stdout}");
    assert!(lines[16].starts_with("ERR unknown command"), "{stdout}");

    // FLUSH wrote the memtable out: the server counts a flush and holds a table.
    let out = run(&mut connect_command(&addr), "STATS\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let figure = |name: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name} missing from {stdout}"));
        line.split('\t').nth(1).unwrap().parse().unwrap()
    };
    assert!(figure("flushes") >= 1, "{stdout}");
    assert!(figure("sstables") >= 1, "{stdout}");

    // STATS: name<TAB>value lines with the embedded names, then an empty line; COMPACT: OK.
    let out = run(&mut connect_command(&addr), "COMPACT\nSTATS\nCOUNT\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("OK"), "{stdout}");
    let stats: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    for name in [
        "sstables",
        "keys_written",
        "compactions",
        "write_amplification",
        "uptime_secs",
    ] {
        assert!(
            stats.iter().any(|l| l.starts_with(&format!("{name}\t"))),
            "{name} missing from {stats:?}"
        );
    }
    assert!(stats.contains(&"compactions\t1"), "{stats:?}");
    assert_eq!(lines.next(), Some("2"));
    assert!(server.stop().success());
}

#[test]
fn an_unreachable_server_is_a_clear_failure() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let out = run(&mut connect_command(&addr), "GET a\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the server at {addr}")),
        "{stderr}"
    );
}

/// A `strata connect` driven one line at a time.
struct Repl {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Repl {
    fn start(addr: &str) -> Repl {
        let mut child = connect_command(addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Repl {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        reply.trim_end().to_owned()
    }
}

#[test]
fn a_lost_server_is_reported_and_the_next_command_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let grpc = server.grpc.to_string();
    let mut repl = Repl::start(&grpc);
    assert_eq!(repl.ask("PUT k v"), "OK");
    assert!(server.stop().success());

    let reply = repl.ask("GET k");
    assert!(reply.starts_with("ERR "), "{reply}");
    assert!(reply.contains(&grpc), "{reply}");

    // The same port again: the session picks the server up without being restarted.
    let server = ServerProcess::start(dir.path(), &["--grpc", &grpc]);
    assert_eq!(repl.ask("GET k"), "v");
    drop(repl.stdin);
    assert!(repl.child.wait().unwrap().success());
    assert!(server.stop().success());
}

#[test]
fn a_token_is_sent_from_the_flag_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &["--token", "s3cret"]);
    let addr = server.grpc.to_string();
    let out = run(&mut connect_command(&addr), "GET a\n");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("ERR the server refused the token"),
        "{stdout}"
    );

    let out = run(
        connect_command(&addr).args(["--token", "s3cret"]),
        "PUT a 1\n",
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n");
    let out = run(
        connect_command(&addr).env("STRATA_TOKEN", "s3cret"),
        "GET a\n",
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "1\n");
    assert!(server.stop().success());
}
