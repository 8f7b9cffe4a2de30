//! Results of a workload ([`WorkloadResult`]) and how they are shown: a table for people
//! ([`table`]) and one JSON object per line for scripts ([`write_json_lines`]).

use std::io::Write;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::histogram::Percentiles;
use crate::memory::Memory;

/// The measurements of one workload.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkloadResult {
    /// The workload's canonical name.
    pub workload: String,
    /// The engine's name.
    pub engine: String,
    /// Client threads.
    pub threads: usize,
    /// Operations completed (across threads).
    pub ops: u64,
    /// Reads that found their key, for workloads that read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<u64>,
    /// Wall-clock time of the workload.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Key and value bytes moved per second, in MiB (as db_bench's MB/s).
    pub mb_per_sec: f64,
    /// Latency percentiles.
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Resident memory after the workload.
    #[serde(flatten)]
    pub memory: Memory,
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A table with one row per workload.
pub fn table(results: &[WorkloadResult]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header([
        "workload",
        "engine",
        "thr",
        "ops",
        "ops/s",
        "MB/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "RSS MiB",
        "peak MiB",
    ]);
    for r in results {
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        t.add_row(vec![
            Cell::new(&r.workload),
            Cell::new(&r.engine),
            right(r.threads.to_string()),
            right(r.ops.to_string()),
            right(format!("{:.0}", r.ops_per_sec)),
            right(format!("{:.1}", r.mb_per_sec)),
            right(num(r.latency.p50_us)),
            right(num(r.latency.p90_us)),
            right(num(r.latency.p99_us)),
            right(num(r.latency.p999_us)),
            right(num(r.latency.max_us)),
            right(mib(r.memory.rss_bytes)),
            right(mib(r.memory.peak_rss_bytes)),
        ]);
    }
    t
}

/// Writes one JSON object per result, one per line.
pub fn write_json_lines(out: &mut dyn Write, results: &[WorkloadResult]) -> std::io::Result<()> {
    for r in results {
        serde_json::to_writer(&mut *out, r)?;
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WorkloadResult {
        WorkloadResult {
            workload: "readrandom".into(),
            engine: "strata".into(),
            threads: 2,
            ops: 1000,
            found: Some(990),
            seconds: 0.5,
            ops_per_sec: 2000.0,
            mb_per_sec: 0.2,
            latency: Percentiles {
                p50_us: 1.5,
                p90_us: 2.0,
                p99_us: 3.0,
                p999_us: 4.0,
                max_us: 10.0,
            },
            memory: Memory {
                rss_bytes: 10 << 20,
                peak_rss_bytes: 12 << 20,
            },
        }
    }

    #[test]
    fn json_has_the_documented_flat_fields() {
        let mut out = Vec::new();
        write_json_lines(&mut out, &[sample(), sample()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        for field in [
            "workload",
            "ops",
            "ops_per_sec",
            "mb_per_sec",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
            "threads",
            "engine",
            "rss_bytes",
            "peak_rss_bytes",
            "found",
            "seconds",
        ] {
            assert!(v.get(field).is_some(), "missing {field} in {v}");
        }
        assert_eq!(v["workload"], "readrandom");
        assert_eq!(v["p999_us"], 4.0);
        assert_eq!(v["threads"], 2);
        let mut no_found = sample();
        no_found.found = None;
        let v = serde_json::to_value(&no_found).unwrap();
        assert!(v.get("found").is_none());
    }

    #[test]
    fn table_has_a_row_per_workload() {
        let text = table(&[sample()]).to_string();
        assert!(text.contains("readrandom") && text.contains("p99.9 µs") && text.contains("2000"));
    }
}
