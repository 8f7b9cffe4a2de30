//! `strata bench --target` against a real server process: a tiny run over gRPC and over the
//! Redis protocol, checked through the JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::process::Command;

use common::process::ServerProcess;

fn bench(target: &str, benchmarks: &str, extra: &[&str]) -> (Vec<serde_json::Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--target", target, "--benchmarks", benchmarks])
        .args(["--num", "200", "--threads", "2", "--json"])
        .args(extra)
        .arg("--data")
        .arg(dir.path().join("bench"))
        .env_remove("STRATA_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let results = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (results, stderr)
}

fn find<'a>(results: &'a [serde_json::Value], workload: &str) -> &'a serde_json::Value {
    results
        .iter()
        .find(|r| r["workload"] == workload)
        .unwrap_or_else(|| panic!("no {workload} in {results:?}"))
}

#[test]
fn a_tiny_remote_bench_runs_over_grpc_and_resp() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);

    let target = format!("grpc://{}", server.grpc);
    let (results, _) = bench(
        &target,
        "fillseq,readrandom,seekrandom,readseq,fillsync,ycsba",
        &[],
    );
    assert_eq!(results.len(), 6);
    for r in &results {
        assert_eq!(r["engine"], "grpc");
        assert_eq!(r["threads"], 2);
    }
    // fillseq wrote every key in [0, 200), so every read finds its key.
    assert_eq!(find(&results, "fillseq")["ops"], 400);
    assert_eq!(find(&results, "readrandom")["found"], 400);
    assert_eq!(find(&results, "seekrandom")["found"], 400);
    assert_eq!(find(&results, "readseq")["ops"], 400);
    // fillsync does num / 1000 writes per thread (at least one), as in the embedded runs.
    assert_eq!(find(&results, "fillsync")["ops"], 2);

    let target = format!("redis://{}", server.redis);
    let (results, stderr) = bench(&target, "fillseq,readrandom,seekrandom,deleterandom", &[]);
    assert_eq!(results.len(), 3, "seekrandom is skipped over RESP");
    assert!(stderr.contains("seekrandom skipped"), "{stderr}");
    assert_eq!(find(&results, "readrandom")["engine"], "redis");
    assert_eq!(find(&results, "readrandom")["found"], 400);
    assert_eq!(find(&results, "deleterandom")["ops"], 400);
    assert!(server.stop().success());
}

#[test]
fn grpc_threads_can_share_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let target = format!("grpc://{}", server.grpc);
    let (results, stderr) = bench(&target, "fillseq,readrandom", &["--conns", "1"]);
    assert!(stderr.contains("share 1 connection"), "{stderr}");
    assert_eq!(find(&results, "fillseq")["ops"], 400);
    assert_eq!(find(&results, "readrandom")["found"], 400);

    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--target", &target, "--conns", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--conns"));
    assert!(server.stop().success());
}

#[test]
fn grpc_clients_can_run_as_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let target = format!("grpc://{}", server.grpc);
    for extra in [
        &["--async-clients"][..],
        &["--async-clients", "--conns", "1"],
    ] {
        let (results, stderr) = bench(&target, "fillseq,readrandom,readmissing", extra);
        assert_eq!(results.len(), 3, "{stderr}");
        assert_eq!(find(&results, "fillseq")["ops"], 400);
        assert_eq!(find(&results, "fillseq")["threads"], 2);
        assert_eq!(find(&results, "readrandom")["found"], 400);
        assert_eq!(find(&results, "readmissing")["ops"], 400);
        assert_eq!(find(&results, "readmissing")["found"], 0);
    }

    // Refused before anything runs: a workload tasks do not run, and a RESP target.
    for (t, workload) in [
        (target.clone(), "fillseq,seekrandom"),
        (format!("redis://{}", server.redis), "fillseq"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "bench",
                "--target",
                &t,
                "--benchmarks",
                workload,
                "--async-clients",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--async-clients"), "{stderr}");
        assert!(
            out.stdout.is_empty(),
            "nothing ran: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(server.stop().success());
}
