//! Graceful shutdown in process: writes acknowledged over both protocols survive a shutdown and
//! a restart on the same directory (the store's lock is released, so it reopens); requests in
//! flight when shutdown starts are finished and answered.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{RawClient, TestServer};
use strata_client::{Client, ClientOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path().to_path_buf(), |_| {}).await;
    let c = Client::connect(&s.addrs.grpc.to_string(), ClientOptions::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                c.put(format!("g{w}-{i}").as_bytes(), b"x").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut r = RawClient::connect(s.addrs.redis).await;
    for i in 0..100 {
        r.cmd(&[b"SET", format!("r{i}").as_bytes(), b"y"]).await;
        assert_eq!(r.reply_str().await, "+OK\r\n");
    }
    // A pipeline sent just before shutdown: every request is answered before the close.
    let mut p = Vec::new();
    for i in 0..200 {
        p.extend(common::encode(&[
            b"SET",
            format!("late{i}").as_bytes(),
            b"z",
        ]));
    }
    r.send(&p).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    drop(c);
    s.stop().await;
    let mut acked = 0;
    while let Some(reply) = r.reply().await {
        assert_eq!(reply, b"+OK\r\n");
        acked += 1;
    }

    let s2 = TestServer::start_in(dir.path().to_path_buf(), |_| {}).await;
    let c = Client::connect(&s2.addrs.grpc.to_string(), ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(c.scan(b"g", b"h", 0).await.unwrap().len(), 800);
    assert_eq!(c.scan(b"r", b"s", 0).await.unwrap().len(), 100);
    let late = c.scan(b"late", b"latf", 0).await.unwrap();
    assert!(
        late.len() >= acked,
        "{} stored < {acked} acknowledged",
        late.len()
    );
}
