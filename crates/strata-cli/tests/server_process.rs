//! `strata server` as a real process: SIGTERM while gRPC and RESP clients are writing, a clean
//! exit, a restart on the same directory with every acknowledged write present; and the refusals
//! (a port in use, a bad flag, a bad config file) with a non-zero exit and a clear message.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{ServerProcess, server_command};
use redis::AsyncCommands as _;
use strata_client::{Client, ClientOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_then_restart_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let grpc = server.grpc.to_string();
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let opts = ClientOptions {
                max_retries: 0,
                ..ClientOptions::default()
            };
            let c = Client::connect(&grpc, opts).await.unwrap();
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
        let url = format!("redis://{}/", server.redis);
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            for i in 0.. {
                let k = format!("r{w}-{i}");
                match c.set::<_, _, String>(&k, "v").await {
                    Ok(reply) if reply == "OK" => acked.lock().unwrap().push(k),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stderr_before = server.stderr();
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(
        status.success(),
        "server exited with {status}: {stderr_before}"
    );
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a writer hung after the server stopped")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.iter().any(|k| k.starts_with('g')),
        "no gRPC write acknowledged"
    );
    assert!(
        acked.iter().any(|k| k.starts_with('r')),
        "no RESP write acknowledged"
    );

    let server = ServerProcess::start(dir.path(), &[]);
    let c = Client::connect(&server.grpc.to_string(), ClientOptions::default())
        .await
        .unwrap();
    let stored: HashSet<Vec<u8>> = c
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
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_port_in_use_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let failure = ServerProcess::try_start(dir.path(), &["--redis", &addr])
        .err()
        .expect("the server started on a port in use");
    assert!(!failure.status.success());
    assert!(failure.stdout.is_empty(), "{:?}", failure.stdout);
    assert!(
        failure
            .stderr
            .contains(&format!("cannot bind redis listener on {addr}")),
        "{}",
        failure.stderr
    );
}

#[test]
fn bad_flags_and_bad_config_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = server_command(dir.path(), &["--grpc", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--grpc"), "{stderr}");

    let config = dir.path().join("strata.toml");
    std::fs::write(&config, "grpc_adr = \"127.0.0.1:0\"\n").unwrap();
    let out = server_command(
        &dir.path().join("d"),
        &["--config", config.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strata.toml") && stderr.contains("grpc_adr"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_config_file_sets_what_the_flags_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strata.toml");
    let data = dir.path().join("from-file");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nnode_id = \"from-file\"\ngrpc_addr = \"127.0.0.1:0\"\n\
             redis_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    // No `--data`: the file's data_dir stands. `--node-id` overrides the file.
    cmd.args([
        "server",
        "--config",
        config.to_str().unwrap(),
        "--node-id",
        "from-flag",
    ])
    .env_remove("STRATA_TOKEN");
    let server = ServerProcess::start_command(cmd);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let c = Client::connect(&server.grpc.to_string(), ClientOptions::default())
            .await
            .unwrap();
        c.status().await.unwrap()
    });
    assert_eq!(status.node_id, "from-flag");
    assert_eq!(std::path::Path::new(&status.data_dir), data);
    assert!(data.exists());
    assert!(server.stop().success());
}
