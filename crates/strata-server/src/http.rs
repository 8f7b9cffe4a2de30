//! The admin HTTP endpoints (axum): `/metrics` in Prometheus text format, `/health`,
//! `/status` as JSON, and at `/` a dashboard page that polls `/status` and shows the node's
//! load, storage and, in cluster mode, its members and partitions (role, term, leader,
//! indexes, replication lag). In cluster mode `/status` carries the node's
//! [`ClusterStatus`](strata_cluster::raft::status::ClusterStatus) under `cluster`, and
//! `/cluster/checksums` a checksum of each partition replica on this node, to compare replicas.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use strata_cluster::raft::status::ClusterStatus;

use crate::state::{BoundAddrs, Shared};

#[derive(Clone)]
struct HttpState {
    shared: Arc<Shared>,
    metrics: Option<PrometheusHandle>,
}

/// Builds the router.
pub fn router(shared: Arc<Shared>, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/cluster/checksums", get(checksums))
        .with_state(HttpState { shared, metrics })
}

async fn metrics_text(State(st): State<HttpState>) -> Response {
    let Some(handle) = &st.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed in this process\n",
        )
            .into_response();
    };
    if let Ok(stats) = st.shared.kv.stats().await {
        crate::metrics::engine_stats(&stats);
    }
    if let Some(node) = &st.shared.cluster {
        crate::metrics::cluster_status(&node.status());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// The dashboard: one static page whose script renders `/status` every two seconds.
async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard.html"),
    )
        .into_response()
}

async fn health(State(st): State<HttpState>) -> Response {
    match st.shared.kv.stats().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {e}\n")).into_response(),
    }
}

/// The body of `/status`.
#[derive(Debug, Serialize)]
struct StatusBody {
    version: &'static str,
    node_id: String,
    uptime_seconds: u64,
    addrs: BoundAddrs,
    data_dir: String,
    redis_connections: u64,
    engine: Option<EngineStatus>,
    /// Cluster mode only: this node's view of every partition group.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<ClusterStatus>,
}

#[derive(Debug, Serialize)]
struct EngineStatus {
    keys_written: u64,
    keys_read: u64,
    wal_syncs: u64,
    flushes: u64,
    compactions: u64,
    write_stalls: u64,
    memtable_bytes: u64,
    last_sequence: u64,
    write_amplification: f64,
    levels: Vec<(usize, u64)>,
}

async fn status(State(st): State<HttpState>) -> Json<serde_json::Value> {
    let s = &st.shared;
    let engine = s.kv.stats().await.ok().map(|e| EngineStatus {
        keys_written: e.keys_written,
        keys_read: e.keys_read,
        wal_syncs: e.wal_syncs,
        flushes: e.flushes,
        compactions: e.compactions,
        write_stalls: e.write_stalls,
        memtable_bytes: e.memtable_bytes,
        last_sequence: e.last_sequence,
        write_amplification: e.write_amplification(),
        levels: e.levels.iter().map(|l| (l.files, l.bytes)).collect(),
    });
    let body = StatusBody {
        version: env!("CARGO_PKG_VERSION"),
        node_id: s.config.node_id.clone(),
        uptime_seconds: s.uptime_secs(),
        addrs: s.addrs,
        data_dir: s.config.data_dir.display().to_string(),
        redis_connections: s.connections(),
        engine,
        cluster: s.cluster.as_ref().map(|node| node.status()),
    };
    Json(serde_json::to_value(body).unwrap_or_default())
}

/// One partition replica in `/cluster/checksums`.
#[derive(Debug, Serialize)]
struct PartitionChecksum {
    partition: u32,
    /// The last Raft index applied to this replica.
    applied: Option<u64>,
    /// Keys in the replica.
    keys: u64,
    /// xxh3 of the replica's keys and values in order.
    checksum: String,
}

/// `/cluster/checksums`: each partition replica's applied index, key count and checksum (a
/// scan of its data, so meant for tests and operators, not for frequent polling). 404 when the
/// server is not a cluster node.
async fn checksums(State(st): State<HttpState>) -> Response {
    let Some(node) = st.shared.cluster.clone() else {
        return (StatusCode::NOT_FOUND, "not a cluster node\n").into_response();
    };
    let scanned = tokio::task::spawn_blocking(move || {
        node.partition_map()
            .all()
            .map(|p| {
                // Read before the scan: equal indexes and sums on two replicas mean equal data
                // unless an entry was applied during one of the scans.
                let applied = node
                    .metrics(p)
                    .and_then(|m| m.last_applied.map(|l| l.index));
                let (keys, sum) = node.partition_checksum(p)?;
                Ok(PartitionChecksum {
                    partition: u32::from(p),
                    applied,
                    keys,
                    checksum: format!("{sum:016x}"),
                })
            })
            .collect::<strata_cluster::Result<Vec<_>>>()
    })
    .await;
    match scanned {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
