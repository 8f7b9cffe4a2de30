//! Redis-protocol round trips through the `redis` crate: every supported command, Redis-style
//! errors for unknown commands and bad arity, SCAN cursors as `redis-cli --scan` drives them,
//! and INCR from 20 concurrent clients summing exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::TestServer;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value, cmd};

async fn conn(s: &TestServer) -> MultiplexedConnection {
    redis::Client::open(s.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn string_commands_round_trip() {
    let s = TestServer::start().await;
    let mut c = conn(&s).await;
    let pong: String = cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
    let echo: String = cmd("ECHO").arg("hi").query_async(&mut c).await.unwrap();
    assert_eq!(echo, "hi");
    let _: () = cmd("SET")
        .arg("k")
        .arg("v1")
        .query_async(&mut c)
        .await
        .unwrap();
    let v: Option<String> = cmd("GET").arg("k").query_async(&mut c).await.unwrap();
    assert_eq!(v.as_deref(), Some("v1"));
    let v: Option<String> = cmd("GET").arg("missing").query_async(&mut c).await.unwrap();
    assert_eq!(v, None);

    // NX / XX.
    let r: Option<String> = cmd("SET")
        .arg("k")
        .arg("x")
        .arg("NX")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r, None);
    let r: Option<String> = cmd("SET")
        .arg("new")
        .arg("x")
        .arg("nx")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
    let r: Option<String> = cmd("SET")
        .arg("nope")
        .arg("x")
        .arg("XX")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r, None);
    let r: Option<String> = cmd("SET")
        .arg("k")
        .arg("v2")
        .arg("XX")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
    let n: i64 = cmd("SETNX")
        .arg("k")
        .arg("z")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // TTLs are refused with a clear error.
    let e: RedisResult<()> = cmd("SET")
        .arg("k")
        .arg("v")
        .arg("EX")
        .arg("10")
        .query_async(&mut c)
        .await;
    assert!(e.unwrap_err().to_string().contains("not supported"));

    // MSET / MGET / EXISTS / DEL.
    let _: () = cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query_async(&mut c)
        .await
        .unwrap();
    let vals: Vec<Option<String>> = cmd("MGET")
        .arg("a")
        .arg("zz")
        .arg("b")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(vals, vec![Some("1".into()), None, Some("2".into())]);
    let n: i64 = cmd("EXISTS")
        .arg("a")
        .arg("a")
        .arg("zz")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = cmd("DEL")
        .arg("a")
        .arg("zz")
        .arg("b")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = cmd("MSETNX")
        .arg("a")
        .arg("1")
        .arg("k")
        .arg("2")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0, "k exists, so nothing is set");
    let n: i64 = cmd("EXISTS").arg("a").query_async(&mut c).await.unwrap();
    assert_eq!(n, 0);

    // Counters.
    let n: i64 = cmd("INCR").arg("n").query_async(&mut c).await.unwrap();
    assert_eq!(n, 1);
    let n: i64 = cmd("INCRBY")
        .arg("n")
        .arg("41")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 42);
    let n: i64 = cmd("DECRBY")
        .arg("n")
        .arg("2")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 40);
    let n: i64 = cmd("DECR").arg("n").query_async(&mut c).await.unwrap();
    assert_eq!(n, 39);
    let e: RedisResult<i64> = cmd("INCR").arg("k").query_async(&mut c).await;
    assert!(e.unwrap_err().to_string().contains("not an integer"));
    let _: () = cmd("SET")
        .arg("max")
        .arg(i64::MAX.to_string())
        .query_async(&mut c)
        .await
        .unwrap();
    let e: RedisResult<i64> = cmd("INCR").arg("max").query_async(&mut c).await;
    assert!(e.unwrap_err().to_string().contains("overflow"));
    let e: RedisResult<i64> = cmd("INCRBY").arg("n").arg("x").query_async(&mut c).await;
    assert!(e.is_err());

    // Server commands.
    let _: () = cmd("SELECT").arg("0").query_async(&mut c).await.unwrap();
    assert!(
        cmd("SELECT")
            .arg("1")
            .query_async::<()>(&mut c)
            .await
            .is_err()
    );
    let size: i64 = cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 4, "k, new, n, max");
    let info: String = cmd("INFO").query_async(&mut c).await.unwrap();
    assert!(info.contains("# Server") && info.contains("# Stats") && info.contains("db0:keys=4"));
    let info: String = cmd("INFO")
        .arg("keyspace")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!info.contains("# Server"));
    let count: i64 = cmd("COMMAND")
        .arg("COUNT")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(count > 20);
    let all: Value = cmd("COMMAND").query_async(&mut c).await.unwrap();
    assert!(matches!(all, Value::Array(ref v) if v.len() as i64 == count));
    let docs: Vec<Value> = cmd("COMMAND")
        .arg("DOCS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(docs.is_empty());

    // FLUSHALL is off by default.
    let e: RedisResult<()> = cmd("FLUSHALL").query_async(&mut c).await;
    assert!(e.unwrap_err().to_string().contains("disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_commands_and_bad_arity_keep_the_connection() {
    let s = TestServer::start().await;
    let mut c = conn(&s).await;
    let e = cmd("FROBNICATE")
        .arg("x")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("unknown command 'FROBNICATE'"),
        "{e}"
    );
    let e = cmd("GET").query_async::<()>(&mut c).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("wrong number of arguments for 'get'"),
        "{e}"
    );
    let e = cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("wrong number of arguments"), "{e}");
    let pong: String = cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flushall_when_enabled() {
    let s = TestServer::start_with(|c| c.allow_flushall = true).await;
    let mut c = conn(&s).await;
    let _: () = cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let size: i64 = cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_cursor_visits_every_key_once() {
    let s = TestServer::start().await;
    let mut c = conn(&s).await;
    for i in 0..250 {
        let _: () = cmd("SET")
            .arg(format!("user:{i:03}"))
            .arg(i)
            .query_async(&mut c)
            .await
            .unwrap();
        let _: () = cmd("SET")
            .arg(format!("other:{i:03}"))
            .arg(i)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let mut cursor = 0u64;
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("user:*")
            .arg("COUNT")
            .arg(37)
            .query_async(&mut c)
            .await
            .unwrap();
        seen.extend(keys);
        calls += 1;
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert!(calls > 5);
    let expected: Vec<String> = (0..250).map(|i| format!("user:{i:03}")).collect();
    assert_eq!(seen, expected);
    let keys: Vec<String> = cmd("KEYS")
        .arg("other:00?")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 10);
    let e = cmd("SCAN")
        .arg(12345)
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid cursor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incr_from_20_clients_sums_exactly() {
    let s = TestServer::start().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut c = conn(&s).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let _: i64 = cmd("INCR")
                    .arg("counter")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let _: i64 = cmd("INCRBY")
                    .arg("counter")
                    .arg(2)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = conn(&s).await;
    let total: i64 = cmd("GET").arg("counter").query_async(&mut c).await.unwrap();
    assert_eq!(total, 20 * 50 * 3);
}
