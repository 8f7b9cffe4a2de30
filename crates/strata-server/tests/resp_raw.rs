//! The Redis protocol at the byte level: pipelined requests answered in order, inline commands,
//! malformed frames answered with an error and the connection closed while other clients carry
//! on, oversized bulk strings refused without buffering and the connection kept, idle timeouts,
//! QUIT, and 100 concurrent clients whose replies never go missing or to the wrong client.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{RawClient, TestServer, encode};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_commands_reply_in_order() {
    let s = TestServer::start().await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    let mut pipeline = Vec::new();
    for i in 0..500 {
        pipeline.extend(encode(&[
            b"SET",
            format!("p{i}").as_bytes(),
            format!("v{i}").as_bytes(),
        ]));
        pipeline.extend(encode(&[b"GET", format!("p{i}").as_bytes()]));
    }
    pipeline.extend(encode(&[b"INCR", b"ctr"]));
    c.send(&pipeline).await;
    for i in 0..500 {
        assert_eq!(c.reply_str().await, "+OK\r\n");
        let v = format!("v{i}");
        assert_eq!(c.reply_str().await, format!("${}\r\n{v}\r\n", v.len()));
    }
    assert_eq!(c.reply_str().await, ":1\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inline_commands_work() {
    let s = TestServer::start().await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.send(b"PING\r\nSET greeting \"hello world\"\r\nGET greeting\r\n")
        .await;
    assert_eq!(c.reply_str().await, "+PONG\r\n");
    assert_eq!(c.reply_str().await, "+OK\r\n");
    assert_eq!(c.reply_str().await, "$11\r\nhello world\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_frame_gets_error_then_close_others_unaffected() {
    let s = TestServer::start().await;
    let mut good = RawClient::connect(s.addrs.redis).await;
    good.cmd(&[b"SET", b"k", b"v"]).await;
    assert_eq!(good.reply_str().await, "+OK\r\n");

    for bad in [
        &b"*2\r\n$3\r\nGET\r\n+oops\r\n"[..],
        b"*zz\r\n",
        b"*1\r\n$3\r\nGETXX\r\n",
    ] {
        let mut c = RawClient::connect(s.addrs.redis).await;
        c.send(bad).await;
        let r = c.reply_str().await;
        assert!(r.starts_with("-ERR Protocol error"), "{r}");
        assert!(c.reply().await.is_none(), "connection should be closed");
    }
    // A header line that never ends is refused once it passes the limit.
    let mut c = RawClient::connect(s.addrs.redis).await;
    let mut junk = b"*".to_vec();
    junk.extend(std::iter::repeat_n(b'1', 100_000));
    c.send(&junk).await;
    assert!(c.reply_str().await.starts_with("-ERR Protocol error"));

    good.cmd(&[b"GET", b"k"]).await;
    assert_eq!(good.reply_str().await, "$1\r\nv\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_bulk_is_refused_and_connection_survives() {
    let s = TestServer::start_with(|c| c.limits.max_bulk_len = 1024).await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    let big = vec![b'x'; 100_000];
    c.cmd(&[b"SET", b"big", &big]).await;
    let r = c.reply_str().await;
    assert!(
        r.starts_with("-ERR bulk string of 100000 bytes exceeds"),
        "{r}"
    );
    // A header announcing a huge bulk is skipped as its bytes arrive, never allocated up front.
    c.send(b"*2\r\n$3\r\nGET\r\n$2000000000\r\n").await;
    c.cmd(&[b"PING"]).await;
    c.cmd(&[b"GET", b"big"]).await;
    // Nothing answers until the announced 2 GB have been skipped, so use a fresh connection.
    let mut d = RawClient::connect(s.addrs.redis).await;
    d.cmd(&[b"SET", b"small", b"ok"]).await;
    assert_eq!(d.reply_str().await, "+OK\r\n");
    // On one connection: an oversized request, then a normal one that is answered.
    let mut e = RawClient::connect(s.addrs.redis).await;
    e.cmd(&[b"SET", b"big", &big]).await;
    e.cmd(&[b"GET", b"small"]).await;
    assert!(e.reply_str().await.starts_with("-ERR bulk string"));
    assert_eq!(e.reply_str().await, "$2\r\nok\r\n");
    // Too many arguments is a protocol error.
    let mut f = RawClient::connect(s.addrs.redis).await;
    f.send(b"*99999999\r\n").await;
    assert!(f.reply_str().await.starts_with("-ERR Protocol error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_are_closed_and_quit_closes() {
    let s = TestServer::start_with(|c| c.idle_timeout_secs = 1).await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"PING"]).await;
    assert_eq!(c.reply_str().await, "+PONG\r\n");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        c.reply().await.is_none(),
        "idle connection should be closed"
    );

    let mut q = RawClient::connect(s.addrs.redis).await;
    q.cmd(&[b"QUIT"]).await;
    assert_eq!(q.reply_str().await, "+OK\r\n");
    assert!(q.reply().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_limit_queues_extra_clients() {
    let s = TestServer::start_with(|c| c.max_connections = 2).await;
    let mut a = RawClient::connect(s.addrs.redis).await;
    let mut b = RawClient::connect(s.addrs.redis).await;
    a.cmd(&[b"PING"]).await;
    b.cmd(&[b"PING"]).await;
    assert_eq!(a.reply_str().await, "+PONG\r\n");
    assert_eq!(b.reply_str().await, "+PONG\r\n");
    // The third client connects (kernel backlog) but is not served while two are open.
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"PING"]).await;
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), c.reply()).await;
    assert!(early.is_err(), "third client served past the limit");
    a.stream.shutdown().await.unwrap();
    drop(a);
    assert_eq!(c.reply_str().await, "+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_clients_get_their_own_replies() {
    let s = TestServer::start().await;
    let mut tasks = Vec::new();
    for client in 0..100 {
        let addr = s.addrs.redis;
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await;
            for round in 0..20 {
                let key = format!("c{client}:r{round}");
                let value = format!("value-of-{client}-{round}");
                // Pipeline a write and two reads per round, interleaved with other clients.
                let mut p = encode(&[b"SET", key.as_bytes(), value.as_bytes()]);
                p.extend(encode(&[b"GET", key.as_bytes()]));
                p.extend(encode(&[b"ECHO", key.as_bytes()]));
                c.send(&p).await;
                assert_eq!(c.reply_str().await, "+OK\r\n");
                assert_eq!(
                    c.reply_str().await,
                    format!("${}\r\n{value}\r\n", value.len())
                );
                assert_eq!(c.reply_str().await, format!("${}\r\n{key}\r\n", key.len()));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"DBSIZE"]).await;
    assert_eq!(c.reply_str().await, ":2000\r\n");
}
