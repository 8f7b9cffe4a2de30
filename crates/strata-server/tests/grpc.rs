//! gRPC round trips through `strata-client`: get/put/delete, a streamed scan with bounds and a
//! limit, compare-and-swap batches, error codes for bad input, the Admin service, 100 concurrent
//! clients whose replies match their own requests, a client reconnecting after its server
//! restarts, and large values sharing one connection.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::TestServer;
use futures::StreamExt;
use strata_client::{Batch, Client, ClientOptions, Consistency};

async fn client(s: &TestServer) -> Client {
    Client::connect(&s.addrs.grpc.to_string(), ClientOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_put_delete() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    assert_eq!(c.get(b"k").await.unwrap(), None);
    c.put(b"k", b"v").await.unwrap();
    assert_eq!(c.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        c.get_with(b"k", Consistency::Stale).await.unwrap(),
        Some(b"v".to_vec())
    );
    c.put(b"empty", b"").await.unwrap();
    assert_eq!(
        c.get(b"empty").await.unwrap(),
        Some(Vec::new()),
        "empty value is not absent"
    );
    c.delete(b"k").await.unwrap();
    c.delete(b"k").await.unwrap();
    assert_eq!(c.get(b"k").await.unwrap(), None);

    let e = c.put(b"", b"v").await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument), "{e}");
    let big_key = vec![b'k'; strata_engine::MAX_KEY_LEN + 1];
    let e = c.get(&big_key).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument));
    // A value at the limit round trips.
    let big = vec![7u8; strata_engine::MAX_VALUE_LEN];
    c.put(b"big", &big).await.unwrap();
    assert_eq!(c.get(b"big").await.unwrap().unwrap().len(), big.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_scan() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    let batch = (0..2000).fold(Batch::new(), |b, i| {
        b.put(format!("key{i:05}").as_bytes(), format!("{i}").as_bytes())
    });
    assert!(c.batch(batch).await.unwrap().applied);

    let all = c.scan(b"", b"", 0).await.unwrap();
    assert_eq!(all.len(), 2000);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));

    let mut stream = Box::pin(c.scan_stream(b"key00100", b"key01100", 0).await.unwrap());
    let mut n = 0;
    while let Some(item) = stream.next().await {
        let (k, v) = item.unwrap();
        assert_eq!(k, format!("key{:05}", 100 + n).into_bytes());
        assert_eq!(v, format!("{}", 100 + n).into_bytes());
        n += 1;
    }
    assert_eq!(n, 1000, "[start, end) excludes end");

    let limited = c.scan(b"key01990", b"", 5).await.unwrap();
    assert_eq!(limited.len(), 5);
    assert_eq!(limited[0].0, b"key01990");
    let e = c.scan(b"b", b"a", 0).await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::InvalidArgument));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_batches() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    assert!(c.compare_and_swap(b"lock", None, b"owner-1").await.unwrap());
    assert!(!c.compare_and_swap(b"lock", None, b"owner-2").await.unwrap());
    assert!(
        !c.compare_and_swap(b"lock", Some(b"owner-2"), b"owner-3")
            .await
            .unwrap()
    );
    assert!(
        c.compare_and_swap(b"lock", Some(b"owner-1"), b"owner-3")
            .await
            .unwrap()
    );
    assert_eq!(c.get(b"lock").await.unwrap(), Some(b"owner-3".to_vec()));

    // A failed precondition applies nothing and names the failing condition.
    let out = c
        .batch(
            Batch::new()
                .if_present(b"lock")
                .if_absent(b"lock")
                .put(b"a", b"1")
                .delete(b"lock"),
        )
        .await
        .unwrap();
    assert!(!out.applied);
    assert_eq!(out.failed_precondition, Some(1));
    assert_eq!(c.get(b"a").await.unwrap(), None);
    assert!(c.get(b"lock").await.unwrap().is_some());

    let out = c
        .batch(
            Batch::new()
                .if_equals(b"lock", b"owner-3")
                .put(b"a", b"1")
                .delete(b"lock"),
        )
        .await
        .unwrap();
    assert!(out.applied);
    assert_eq!(c.get(b"lock").await.unwrap(), None);

    // Concurrent CAS increments on one key: each success is exactly one step.
    c.put(b"ctr", b"0").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            for _ in 0..20 {
                let cur = c.get(b"ctr").await.unwrap().unwrap();
                let n: u64 = String::from_utf8(cur.clone()).unwrap().parse().unwrap();
                if c.compare_and_swap(b"ctr", Some(&cur), (n + 1).to_string().as_bytes())
                    .await
                    .unwrap()
                {
                    wins += 1;
                }
            }
            wins
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap();
    }
    let end: u64 = String::from_utf8(c.get(b"ctr").await.unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(end, wins);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_status_stats_compact() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    for i in 0..100 {
        c.put(format!("k{i}").as_bytes(), b"v").await.unwrap();
    }
    let st = c.status().await.unwrap();
    assert_eq!(st.grpc_addr, s.addrs.grpc.to_string());
    assert_eq!(st.redis_addr, s.addrs.redis.to_string());
    let stats = c.stats().await.unwrap();
    assert!(stats.keys_written >= 100);
    let rep = c.compact(b"", b"").await.unwrap();
    assert!(rep.files_after >= 1);
    assert_eq!(c.get(b"k7").await.unwrap(), Some(b"v".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_clients() {
    let s = TestServer::start().await;
    let mut tasks = Vec::new();
    for id in 0..100 {
        let addr = s.addrs.grpc.to_string();
        tasks.push(tokio::spawn(async move {
            let c = Client::connect(&addr, ClientOptions::default())
                .await
                .unwrap();
            for round in 0..10 {
                let key = format!("client{id}/{round}");
                c.put(key.as_bytes(), key.as_bytes()).await.unwrap();
                assert_eq!(c.get(key.as_bytes()).await.unwrap(), Some(key.into_bytes()));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = client(&s).await;
    assert_eq!(c.scan(b"client", b"", 0).await.unwrap().len(), 1000);
}

#[tokio::test]
async fn connect_timeout_and_retries_against_a_dead_address() {
    // Bind then drop a listener so the port is closed: connecting fails fast with a clear error.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let opts = ClientOptions {
        connect_timeout: std::time::Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let e = Client::connect(&addr.to_string(), opts).await.unwrap_err();
    assert!(matches!(e, strata_client::Error::Connect { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_limit_queues_extra_clients() {
    let s = TestServer::start_with(|c| c.max_connections = 2).await;
    let a = client(&s).await;
    let b = tokio::net::TcpStream::connect(s.addrs.grpc).await.unwrap();
    a.put(b"k", b"v").await.unwrap();
    // Two connections are open: a third client's call waits in the backlog.
    let opts = ClientOptions {
        connect_timeout: std::time::Duration::from_millis(500),
        request_timeout: std::time::Duration::from_millis(500),
        max_retries: 0,
        route_to_leaders: false,
        ..ClientOptions::default()
    };
    let addr = s.addrs.grpc.to_string();
    let third = async {
        let c = Client::connect(&addr, opts).await?;
        c.get(b"k").await
    };
    let early = tokio::time::timeout(std::time::Duration::from_secs(2), third).await;
    assert!(
        !matches!(early, Ok(Ok(_))),
        "third client served past the limit"
    );
    drop(b);
    let c = client(&s).await;
    assert_eq!(c.get(b"k").await.unwrap(), Some(b"v".to_vec()));
}

/// A client outlives its server's restart: while the server is down its calls fail as
/// unavailable (retryable: nothing was sent), and once the server is back at the same address
/// the same client opens a new connection by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_reconnects_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path().to_path_buf(), |_| {}).await;
    let grpc = s.addrs.grpc;
    let opts = ClientOptions {
        max_retries: 0,
        route_to_leaders: false,
        ..ClientOptions::default()
    };
    let c = Client::connect(&grpc.to_string(), opts).await.unwrap();
    c.put(b"k", b"v").await.unwrap();
    s.stop().await;

    let e = c.get(b"k").await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::Unavailable), "{e}");
    assert!(strata_client::retry::is_retryable(&e), "{e}");

    let _s = TestServer::start_in(dir.path().to_path_buf(), |cfg| cfg.grpc_addr = grpc).await;
    assert_eq!(c.get(b"k").await.unwrap(), Some(b"v".to_vec()));
}

/// Calls in flight on one connection whose replies are larger than a stream's flow-control
/// window (2 MiB) and together larger than the connection's (5 MiB): every reply arrives whole,
/// so received data is handed back to the windows as it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_replies_share_one_connection() {
    let s = TestServer::start().await;
    let c = client(&s).await;
    let value = |i: u8| vec![i; 3 << 20];
    let mut tasks = Vec::new();
    for i in 0..4u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let key = [b'v', i];
            c.put(&key, &value(i)).await.unwrap();
            for _ in 0..3 {
                assert_eq!(c.get(&key).await.unwrap(), Some(value(i)));
            }
        }));
    }
    let all = futures::future::join_all(tasks);
    let done = tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("replies stalled: flow-control windows not released");
    for t in done {
        t.unwrap();
    }
}
