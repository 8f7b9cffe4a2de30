//! A tiny benchmark run end to end through the embedded backend: every workload runs, counts
//! what it should, and the JSON lines carry the documented fields.

use strata_bench::{BenchArgs, Error, RunOptions, run, runner};

fn tiny(dir: &std::path::Path, benchmarks: &str) -> BenchArgs {
    BenchArgs {
        benchmarks: vec![benchmarks.into()],
        num: 2000,
        threads: 2,
        write_buffer_size: 64 << 10,
        data: Some(dir.join("bench")),
        ..BenchArgs::default()
    }
}

#[test]
fn every_workload_runs_on_the_embedded_engine() {
    let dir = tempfile::tempdir().unwrap();
    let args = tiny(
        dir.path(),
        "fillseq,readrandom,readmissing,readseq,seekrandom,coldread,ycsba,ycsbb,ycsbc,ycsbf,\
         fillrandom,overwrite,deleterandom,fillsync,rawsync",
    );
    let mut seen = Vec::new();
    let out = run(&args, RunOptions::default(), &mut |r| {
        seen.push(r.workload.clone())
    })
    .unwrap();
    assert_eq!(seen.len(), 15);
    let get = |name: &str| {
        out.results
            .iter()
            .find(|r| r.workload == name)
            .unwrap_or_else(|| panic!("no result for {name}"))
    };
    // After fillseq every key in [0, num) is present.
    let rr = get("readrandom");
    assert_eq!(rr.ops, 4000);
    assert_eq!(rr.found, Some(4000));
    assert_eq!(get("readmissing").found, Some(0));
    assert_eq!(get("seekrandom").found, Some(4000));
    // Each readseq thread scans the whole store once.
    assert_eq!(get("readseq").ops, 4000);
    let cold = get("coldread");
    assert_eq!((cold.threads, cold.ops, cold.found), (1, 1000, Some(1000)));
    assert_eq!(get("ycsbc").found, Some(4000));
    // fillsync: num / 1000 synced writes per thread; rawsync measures the disk on one thread.
    assert_eq!(get("fillsync").ops, 4);
    let raw = get("rawsync");
    assert_eq!((raw.engine.as_str(), raw.threads, raw.ops), ("disk", 1, 2));
    for r in &out.results {
        assert_eq!(
            r.threads,
            if r.workload == "coldread" || r.workload == "rawsync" {
                1
            } else {
                2
            }
        );
        assert!(r.ops > 0 && r.ops_per_sec > 0.0, "{r:?}");
        let l = &r.latency;
        assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us && l.p99_us <= l.p999_us);
        assert!(l.p999_us <= l.max_us && l.max_us > 0.0, "{r:?}");
        assert!(r.memory.rss_bytes > 0);
    }
}

#[test]
fn json_lines_have_one_object_per_workload() {
    let dir = tempfile::tempdir().unwrap();
    let args = BenchArgs {
        json: true,
        ..tiny(dir.path(), "fillrandom,readrandom")
    };
    let mut out = Vec::new();
    strata_bench::run_and_report(&args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0]["workload"], "fillrandom");
    assert_eq!(objs[1]["engine"], "strata");
    assert_eq!(objs[1]["ops"], 4000);
    assert!(objs[1]["p99_us"].as_f64().unwrap() > 0.0);
}

#[test]
fn duration_caps_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let args = BenchArgs {
        num: 50_000_000,
        threads: 1,
        duration: Some(1),
        ..tiny(dir.path(), "fillrandom")
    };
    let started = std::time::Instant::now();
    let out = run(&args, RunOptions::default(), &mut |_| {}).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(out.results[0].ops < 50_000_000);
}

#[test]
fn a_foreign_directory_is_never_wiped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("precious");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("file"), b"keep me").unwrap();
    let args = BenchArgs {
        data: Some(data.clone()),
        ..tiny(dir.path(), "fillrandom")
    };
    let err = run(&args, RunOptions::default(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, Error::ForeignDataDir(_)), "{err}");
    assert_eq!(std::fs::read(data.join("file")).unwrap(), b"keep me");
    assert!(!data.join(runner::MARKER).exists());
}

#[test]
fn compression_and_cache_flags_reach_the_engine() {
    for compression in [
        strata_bench::Compression::Lz4,
        strata_bench::Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let args = BenchArgs {
            compression,
            cache_size: Some(1 << 20),
            ..tiny(dir.path(), "fillseq,readrandom")
        };
        let out = run(&args, RunOptions::default(), &mut |_| {}).unwrap();
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        assert_eq!(out.results[1].found, Some(4000));
    }
}
