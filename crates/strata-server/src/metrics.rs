//! Metrics through the `metrics` facade, exported as Prometheus text: request counts, errors and
//! latency histograms per protocol and command, open connections, and engine statistics (and,
//! on a cluster node, each partition group's role, term, indexes, log size, followers' lag and
//! read counts) as gauges refreshed at each scrape. The Prometheus recorder is process-wide: the first server in
//! a process installs it and later ones share it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strata_cluster::raft::status::{ClusterStatus, Role};
use strata_engine::Stats;

/// Latency buckets in seconds, from 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// How often the recorded latency samples are folded into their histogram buckets. The
/// Prometheus recorder keeps every sample until then (or until a scrape renders them): without
/// it, a server nobody scrapes grew by about 20 bytes per request it served, for good.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder if no recorder is installed yet, and returns its handle;
/// `None` when another recorder was installed by someone else.
pub fn init() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("strata_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    keep_up(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!("metrics recorder not installed: {e}");
                    None
                }
            }
        })
        .clone()
}

/// Starts the thread that folds `handle`'s samples into their buckets every
/// [`UPKEEP_INTERVAL`], for as long as the process runs (the recorder is process-wide too).
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("strata-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("metrics upkeep thread not started: {e}; samples are kept until scraped");
    }
}

/// Records one request.
pub fn record_request(protocol: &'static str, command: &'static str, elapsed: Duration, ok: bool) {
    counter!("strata_requests_total", "protocol" => protocol, "command" => command).increment(1);
    if !ok {
        counter!("strata_request_errors_total", "protocol" => protocol, "command" => command)
            .increment(1);
    }
    histogram!("strata_request_duration_seconds", "protocol" => protocol, "command" => command)
        .record(elapsed.as_secs_f64());
}

/// Records `n` requests of one command that ran together and took `elapsed` in all, `errors`
/// of them failed: the metric handles are looked up once for the lot.
pub fn record_requests(
    protocol: &'static str,
    command: &'static str,
    n: u64,
    errors: u64,
    elapsed: Duration,
) {
    counter!("strata_requests_total", "protocol" => protocol, "command" => command).increment(n);
    if errors > 0 {
        counter!("strata_request_errors_total", "protocol" => protocol, "command" => command)
            .increment(errors);
    }
    let h =
        histogram!("strata_request_duration_seconds", "protocol" => protocol, "command" => command);
    let secs = elapsed.as_secs_f64();
    for _ in 0..n {
        h.record(secs);
    }
}

/// Counts a connection opening (`delta = 1`) or closing (`delta = -1`).
pub fn connection(protocol: &'static str, delta: f64) {
    gauge!("strata_connections", "protocol" => protocol).increment(delta);
    if delta > 0.0 {
        counter!("strata_connections_total", "protocol" => protocol).increment(1);
    }
}

/// Publishes engine statistics as gauges.
pub fn engine_stats(s: &Stats) {
    #[expect(clippy::cast_precision_loss, reason = "gauges are f64 by definition")]
    let f = |v: u64| v as f64;
    gauge!("strata_engine_keys_written").set(f(s.keys_written));
    gauge!("strata_engine_keys_read").set(f(s.keys_read));
    gauge!("strata_engine_bloom_negatives").set(f(s.bloom_negatives));
    gauge!("strata_engine_bloom_false_positives").set(f(s.bloom_false_positives));
    gauge!("strata_engine_flushes").set(f(s.flushes));
    gauge!("strata_engine_compactions").set(f(s.compactions));
    gauge!("strata_engine_compaction_bytes_read").set(f(s.compaction_bytes_read));
    gauge!("strata_engine_compaction_bytes_written").set(f(s.compaction_bytes_written));
    gauge!("strata_engine_write_stalls").set(f(s.write_stalls));
    gauge!("strata_engine_wal_bytes_written").set(f(s.wal_bytes_written));
    gauge!("strata_engine_wal_syncs").set(f(s.wal_syncs));
    gauge!("strata_engine_memtable_bytes").set(f(s.memtable_bytes));
    gauge!("strata_engine_last_sequence").set(f(s.last_sequence));
    gauge!("strata_engine_write_amplification").set(s.write_amplification());
    for (level, l) in s.levels.iter().enumerate() {
        let level = level.to_string();
        gauge!("strata_engine_level_files", "level" => level.clone()).set(f(l.files as u64));
        gauge!("strata_engine_level_bytes", "level" => level).set(f(l.bytes));
    }
}

/// Publishes a cluster node's view of each partition group as gauges labelled by partition:
/// role, term, leader, commit and applied index, log size, each follower's lag (on leaders)
/// and how linearizable reads were served; and of the meta group: its record's version (0:
/// none yet), its leader and the members the record names.
pub fn cluster_status(status: &ClusterStatus) {
    #[expect(clippy::cast_precision_loss, reason = "gauges are f64 by definition")]
    let f = |v: u64| v as f64;
    gauge!("strata_meta_version").set(f(status.meta_version.unwrap_or(0)));
    gauge!("strata_meta_leader").set(f(status.meta_leader.unwrap_or(0)));
    gauge!("strata_cluster_members").set(f(status.members.len() as u64));
    for p in &status.partitions {
        let partition = p.partition.to_string();
        let g = |name: &'static str, v: u64| {
            gauge!(name, "partition" => partition.clone()).set(f(v));
        };
        g("strata_raft_is_leader", u64::from(p.role == Role::Leader));
        g("strata_raft_term", p.term);
        g("strata_raft_leader", p.leader.unwrap_or(0));
        g("strata_raft_applied_index", p.applied.unwrap_or(0));
        g("strata_raft_last_log_index", p.last_log_index.unwrap_or(0));
        g("strata_raft_log_entries", p.log_size);
        g("strata_raft_leased_reads", p.reads.leased);
        g("strata_raft_read_confirmations", p.reads.confirmations);
        if let Some(committed) = p.committed {
            g("strata_raft_committed_index", committed);
        }
        for lag in &p.replication {
            gauge!(
                "strata_raft_replication_lag",
                "partition" => partition.clone(),
                "follower" => lag.node.to_string()
            )
            .set(f(lag.lag));
        }
    }
}
