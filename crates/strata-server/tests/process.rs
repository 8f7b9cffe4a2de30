//! Process-level test against a real `strata` binary: start `strata server` on port 0, write
//! through gRPC and RESP from concurrent clients, SIGTERM it while writes are in flight, check it
//! exits cleanly, restart it on the same directory and check every acknowledged write is there.
//!
//! Needs `STRATA_BIN` pointing at a binary with the `server` subcommand (for example
//! `STRATA_BIN=target/debug/strata`); without it the test prints a notice and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::RawClient;
use strata_client::{Client, ClientOptions};

struct Proc {
    child: Child,
    grpc: String,
    redis: std::net::SocketAddr,
}

fn start(bin: &str, dir: &std::path::Path) -> Proc {
    let mut child = Command::new(bin)
        .args(["server", "--data"])
        .arg(dir)
        .args([
            "--grpc",
            "127.0.0.1:0",
            "--redis",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn STRATA_BIN");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let line = line.trim();
    let rest = line
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("bad first line {line:?}"));
    let mut grpc = None;
    let mut redis = None;
    for part in rest.split(' ') {
        match part.split_once('=') {
            Some(("grpc", a)) => grpc = Some(a.to_string()),
            Some(("redis", a)) => redis = Some(a.parse().unwrap()),
            Some(("http", _)) => {}
            _ => panic!("bad listening line {line:?}"),
        }
    }
    Proc {
        child,
        grpc: grpc.unwrap(),
        redis: redis.unwrap(),
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_then_restart_keeps_acknowledged_writes() {
    let Ok(bin) = std::env::var("STRATA_BIN") else {
        println!("skipping: set STRATA_BIN to a strata binary to run the process-level test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(&bin, dir.path());
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let grpc = p.grpc.clone();
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let c = Client::connect(
                &grpc,
                ClientOptions {
                    max_retries: 0,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            for i in 0.. {
                let k = format!("g{w}-{i}");
                if c.put(k.as_bytes(), b"v").await.is_err() {
                    break;
                }
                acked.lock().unwrap().push(k);
            }
        }));
    }
    for w in 0..4 {
        let redis = p.redis;
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(redis).await;
            for i in 0.. {
                let k = format!("r{w}-{i}");
                c.cmd(&[b"SET", k.as_bytes(), b"v"]).await;
                match c.reply().await {
                    Some(r) if r == b"+OK\r\n" => acked.lock().unwrap().push(k),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigterm(&p.child);
    let status = tokio::task::spawn_blocking(move || p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "server exited with {status}");
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );

    let mut p2 = start(&bin, dir.path());
    let c = Client::connect(&p2.grpc, ClientOptions::default())
        .await
        .unwrap();
    let stored: std::collections::HashSet<Vec<u8>> = c
        .scan(b"", b"", 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| !stored.contains(k.as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    sigterm(&p2.child);
    assert!(p2.child.wait().unwrap().success());
}
