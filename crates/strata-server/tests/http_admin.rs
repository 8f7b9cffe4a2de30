//! Admin HTTP: `/health`, `/status` as JSON with the bound addresses, `/metrics` in
//! Prometheus text with request counts and latency histograms per protocol and command, engine
//! gauges and connection gauges, and the dashboard at `/`, which reads what `/status` has.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{RawClient, TestServer};
use strata_client::{Client, ClientOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_status_metrics() {
    let s = TestServer::start().await;
    let (code, body) = http_get(s.addrs.http, "/health").await;
    assert_eq!(code, 200);
    assert!(body.contains("ok"));

    let mut r = RawClient::connect(s.addrs.redis).await;
    r.cmd(&[b"SET", b"k", b"v"]).await;
    r.reply().await.unwrap();
    r.cmd(&[b"GET", b"k"]).await;
    r.reply().await.unwrap();
    r.cmd(&[b"NOPE"]).await;
    r.reply().await.unwrap();
    let c = Client::connect(&s.addrs.grpc.to_string(), ClientOptions::default())
        .await
        .unwrap();
    c.get(b"k").await.unwrap();

    let (code, body) = http_get(s.addrs.http, "/status").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| {
        // Chunked transfer encoding: take the JSON object between the outer braces.
        let start = body.find('{').unwrap();
        let end = body.rfind('}').unwrap();
        serde_json::from_str(&body[start..=end])
            .map_err(|_| e)
            .unwrap()
    });
    assert_eq!(v["addrs"]["redis"], s.addrs.redis.to_string());
    assert_eq!(v["redis_connections"], 1);
    assert!(v["engine"]["keys_written"].as_u64().unwrap() >= 1);

    let (code, m) = http_get(s.addrs.http, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "strata_requests_total{protocol=\"resp\",command=\"SET\"}",
        "strata_requests_total{protocol=\"grpc\",command=\"get\"}",
        "strata_request_errors_total{protocol=\"resp\",command=\"unknown\"}",
        "strata_request_duration_seconds_bucket{protocol=\"resp\",command=\"GET\"",
        "strata_connections{protocol=\"resp\"}",
        "strata_engine_keys_written",
        "strata_engine_wal_syncs",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    let (code, _) = http_get(s.addrs.http, "/nope").await;
    assert_eq!(code, 404);

    // The dashboard polls /status and reads these fields of it, which must all be there.
    let (code, page) = http_get(s.addrs.http, "/").await;
    assert_eq!(code, 200);
    assert!(page.contains("fetch(\"/status\""), "{page}");
    for field in [
        "node_id",
        "version",
        "uptime_seconds",
        "data_dir",
        "redis_connections",
    ] {
        assert!(
            page.contains(&format!("s.{field}")),
            "page reads no {field}"
        );
        assert!(!v[field].is_null(), "/status has no {field}");
    }
    for field in [
        "keys_written",
        "keys_read",
        "wal_syncs",
        "memtable_bytes",
        "flushes",
        "compactions",
        "write_stalls",
        "write_amplification",
        "levels",
    ] {
        assert!(
            page.contains(&format!("e.{field}")),
            "page reads no {field}"
        );
        assert!(
            !v["engine"][field].is_null(),
            "/status has no engine.{field}"
        );
    }
}
