//! Durability of pipelined Redis writes: a pipeline's writes are deferred and synced once before
//! any of their replies is sent, so a client never holds a reply to a write that is not durable;
//! a failed sync turns every write reply of the pipeline into an error; pipelined writes are all
//! there after a restart; pipelined INCRs from concurrent clients still sum exactly.
//!
//! The durability checks run the server over [`Probe`], a [`KvService`] around [`LocalKv`] that
//! counts deferred writes not yet covered by a sync and can be told to fail its syncs.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

use async_trait::async_trait;
use common::{RawClient, TestServer, encode};
use strata_cluster::{
    BatchOutcome, Durability, Error, KvService, LocalKv, Mutation, Precondition, ReadOptions,
    Result, ScanRequest, ScanStream,
};
use strata_engine::{CompactionReport, Db, Options, Stats};
use strata_server::{BoundAddrs, Server, ServerConfig};
use tokio::sync::oneshot;

/// [`LocalKv`] plus a count of deferred writes that no sync has covered yet, and a switch that
/// makes syncs (and synced writes) fail.
struct Probe {
    kv: LocalKv,
    unsynced: AtomicU64,
    syncs: AtomicU64,
    fail_syncs: AtomicBool,
}

impl Probe {
    fn new(kv: LocalKv) -> Self {
        Probe {
            kv,
            unsynced: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            fail_syncs: AtomicBool::new(false),
        }
    }

    /// Called before a write of `durability` goes to the store.
    fn before_write(&self, durability: Durability) -> Result<()> {
        match durability {
            Durability::Deferred => {
                self.unsynced.fetch_add(1, SeqCst);
                Ok(())
            }
            Durability::Sync => self.before_sync(),
        }
    }

    /// Called before a sync: fails when told to, else everything so far becomes covered.
    fn before_sync(&self) -> Result<()> {
        if self.fail_syncs.load(SeqCst) {
            return Err(Error::Unavailable("injected sync failure".into()));
        }
        self.syncs.fetch_add(1, SeqCst);
        self.unsynced.store(0, SeqCst);
        Ok(())
    }
}

#[async_trait]
impl KvService for Probe {
    async fn get(&self, key: Vec<u8>, opts: ReadOptions) -> Result<Option<Vec<u8>>> {
        self.kv.get(key, opts).await
    }
    async fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
        opts: ReadOptions,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.kv.get_many(keys, opts).await
    }
    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.put_with(key, value, Durability::Sync).await
    }
    async fn delete(&self, key: Vec<u8>) -> Result<()> {
        self.delete_with(key, Durability::Sync).await
    }
    async fn delete_counted(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        self.delete_counted_with(keys, Durability::Sync).await
    }
    async fn batch(&self, pre: Vec<Precondition>, muts: Vec<Mutation>) -> Result<BatchOutcome> {
        self.batch_with(pre, muts, Durability::Sync).await
    }
    async fn incr_by(&self, key: Vec<u8>, delta: i64) -> Result<i64> {
        self.incr_by_with(key, delta, Durability::Sync).await
    }
    async fn scan(&self, req: ScanRequest) -> Result<ScanStream> {
        self.kv.scan(req).await
    }
    async fn count_keys(&self) -> Result<u64> {
        self.kv.count_keys().await
    }
    async fn clear(&self) -> Result<()> {
        self.kv.clear().await
    }
    async fn stats(&self) -> Result<Stats> {
        self.kv.stats().await
    }
    async fn compact(&self, s: Option<Vec<u8>>, e: Option<Vec<u8>>) -> Result<CompactionReport> {
        self.kv.compact(s, e).await
    }
    async fn flush(&self) -> Result<()> {
        self.kv.flush().await
    }
    async fn sync(&self) -> Result<()> {
        self.before_sync()?;
        self.kv.sync().await
    }
    async fn put_with(&self, key: Vec<u8>, value: Vec<u8>, d: Durability) -> Result<()> {
        self.before_write(d)?;
        self.kv.put_with(key, value, d).await
    }
    async fn delete_with(&self, key: Vec<u8>, d: Durability) -> Result<()> {
        self.before_write(d)?;
        self.kv.delete_with(key, d).await
    }
    async fn delete_counted_with(&self, keys: Vec<Vec<u8>>, d: Durability) -> Result<u64> {
        self.before_write(d)?;
        self.kv.delete_counted_with(keys, d).await
    }
    async fn batch_with(
        &self,
        pre: Vec<Precondition>,
        muts: Vec<Mutation>,
        d: Durability,
    ) -> Result<BatchOutcome> {
        self.before_write(d)?;
        self.kv.batch_with(pre, muts, d).await
    }
    async fn incr_by_with(&self, key: Vec<u8>, delta: i64, d: Durability) -> Result<i64> {
        self.before_write(d)?;
        self.kv.incr_by_with(key, delta, d).await
    }
}

/// A server over a [`Probe`] in a temporary directory; stops when dropped.
struct ProbeServer {
    addrs: BoundAddrs,
    probe: Arc<Probe>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_probe() -> ProbeServer {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let probe = Arc::new(Probe::new(LocalKv::new(Arc::new(db))));
    let config = ServerConfig::ephemeral(dir.path());
    let server = Server::bind_with_service(config, Arc::clone(&probe) as Arc<dyn KvService>)
        .await
        .unwrap();
    let addrs = server.addrs();
    let (stop, rx) = oneshot::channel();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    ProbeServer {
        addrs,
        probe,
        _stop: stop,
        _dir: dir,
    }
}

/// Every write command a pipeline may hold, ending with `last` (which decides whether the final
/// write carries the sync itself).
fn mixed_pipeline(round: usize, last: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut p = Vec::new();
    let mut n = 0;
    let mut push = |args: &[&[u8]]| {
        p.extend(encode(args));
        n += 1;
    };
    for i in 0..20 {
        let k = format!("k{round}-{i}");
        push(&[b"SET", k.as_bytes(), b"v"]);
    }
    push(&[b"GET", b"k0-0"]);
    push(&[b"INCR", b"ctr"]);
    push(&[b"SET", b"nx", b"1", b"NX"]);
    push(&[b"MSET", b"m1", b"1", b"m2", b"2"]);
    push(&[b"DEL", b"m1"]);
    push(&[b"SETNX", b"nx2", b"1"]);
    push(last);
    (p, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_write_reply_is_sent_before_a_sync_covers_it() {
    let s = start_probe().await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    let lasts: [&[&[u8]]; 3] = [
        &[b"SET", b"tail", b"x"],
        &[b"INCR", b"tail-ctr"],
        &[b"GET", b"tail"],
    ];
    for (round, last) in lasts.iter().enumerate() {
        let syncs_before = s.probe.syncs.load(SeqCst);
        let (pipeline, n) = mixed_pipeline(round, last);
        c.send(&pipeline).await;
        for _ in 0..n {
            let reply = c.reply_str().await;
            assert!(!reply.starts_with('-'), "unexpected error {reply:?}");
            // This is the only client: when any reply arrives, every deferred write made so
            // far must already have been synced.
            assert_eq!(
                s.probe.unsynced.load(SeqCst),
                0,
                "reply sent before its sync"
            );
        }
        let syncs = s.probe.syncs.load(SeqCst) - syncs_before;
        assert!(syncs >= 1, "a pipeline of writes was never synced");
        assert!(syncs <= 2, "{syncs} syncs for one pipeline");
    }
    // A pipeline of read-modify-write commands only (no plain SET to carry the sync).
    let syncs_before = s.probe.syncs.load(SeqCst);
    let pipeline = [
        encode(&[b"INCR", b"rmw"]),
        encode(&[b"MSET", b"m3", b"3", b"m4", b"4"]),
        encode(&[b"DEL", b"m3"]),
        encode(&[b"SET", b"m4", b"5", b"XX"]),
    ]
    .concat();
    c.send(&pipeline).await;
    for expected in [":1\r\n", "+OK\r\n", ":1\r\n", "+OK\r\n"] {
        assert_eq!(c.reply_str().await, expected);
        assert_eq!(
            s.probe.unsynced.load(SeqCst),
            0,
            "reply sent before its sync"
        );
    }
    assert_eq!(s.probe.syncs.load(SeqCst), syncs_before + 1);

    // Reads alone need no sync.
    let syncs_before = s.probe.syncs.load(SeqCst);
    c.send(&[encode(&[b"GET", b"tail"]), encode(&[b"EXISTS", b"k0-1"])].concat())
        .await;
    assert_eq!(c.reply_str().await, "$1\r\nx\r\n");
    assert_eq!(c.reply_str().await, ":1\r\n");
    assert_eq!(s.probe.syncs.load(SeqCst), syncs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_sync_answers_every_write_of_the_pipeline_with_an_error() {
    let s = start_probe().await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"SET", b"a", b"old"]).await;
    assert_eq!(c.reply_str().await, "+OK\r\n");

    s.probe.fail_syncs.store(true, SeqCst);
    let pipeline = [
        encode(&[b"SET", b"a", b"new"]),
        encode(&[b"GET", b"a"]),
        encode(&[b"INCR", b"n"]),
        encode(&[b"PING"]),
        encode(&[b"SET", b"b", b"1"]),
    ]
    .concat();
    c.send(&pipeline).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(c.reply_str().await);
    }
    assert!(got[0].starts_with("-TRYAGAIN"), "SET acked: {:?}", got[0]);
    // The read saw the pipeline's own write, as Redis reads do.
    assert_eq!(got[1], "$3\r\nnew\r\n");
    assert!(got[2].starts_with("-TRYAGAIN"), "INCR acked: {:?}", got[2]);
    assert_eq!(got[3], "+PONG\r\n");
    // The last write carries the sync itself; it failed too.
    assert!(got[4].starts_with("-TRYAGAIN"), "SET acked: {:?}", got[4]);

    // The connection carries on once syncs work again.
    s.probe.fail_syncs.store(false, SeqCst);
    c.cmd(&[b"INCR", b"n"]).await;
    assert_eq!(c.reply_str().await, ":2\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_writes_are_all_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(dir.path().to_path_buf(), |_| {}).await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    let mut pipeline = Vec::new();
    for i in 0..2000 {
        pipeline.extend(encode(&[
            b"SET",
            format!("p{i:04}").as_bytes(),
            format!("v{i}").as_bytes(),
        ]));
        if i % 10 == 0 {
            pipeline.extend(encode(&[b"INCR", b"ctr"]));
        }
    }
    pipeline.extend(encode(&[b"DEL", b"p0000", b"p0001"]));
    c.send(&pipeline).await;
    for i in 0..2000 {
        assert_eq!(c.reply_str().await, "+OK\r\n");
        if i % 10 == 0 {
            assert_eq!(c.reply_str().await, format!(":{}\r\n", i / 10 + 1));
        }
    }
    assert_eq!(c.reply_str().await, ":2\r\n");
    drop(c);
    s.stop().await;

    let s = TestServer::start_in(dir.path().to_path_buf(), |_| {}).await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"DBSIZE"]).await;
    assert_eq!(c.reply_str().await, ":1999\r\n");
    c.cmd(&[b"GET", b"ctr"]).await;
    assert_eq!(c.reply_str().await, "$3\r\n200\r\n");
    c.cmd(&[b"GET", b"p1999"]).await;
    assert_eq!(c.reply_str().await, "$5\r\nv1999\r\n");
    c.cmd(&[b"EXISTS", b"p0000", b"p0001", b"p0002"]).await;
    assert_eq!(c.reply_str().await, ":1\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelined_increments_from_concurrent_clients_sum_exactly() {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 10;
    const DEPTH: usize = 50;
    let s = TestServer::start().await;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let addr = s.addrs.redis;
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await;
            let mut last = 0i64;
            for _ in 0..ROUNDS {
                let mut p = Vec::new();
                for _ in 0..DEPTH {
                    p.extend(encode(&[b"INCRBY", b"sum", b"3"]));
                }
                p.extend(encode(&[b"DECR", b"sum"]));
                c.send(&p).await;
                for i in 0..=DEPTH {
                    let r = c.reply_str().await;
                    let n: i64 = r
                        .strip_prefix(':')
                        .and_then(|r| r.strip_suffix("\r\n"))
                        .and_then(|r| r.parse().ok())
                        .unwrap_or_else(|| panic!("bad reply {r:?}"));
                    // A client's increments apply in order, each after its previous one: the
                    // counter it sees is 3 more than the last it saw, less at most one DECR by
                    // each other client in between (a stale read or a lost increment of its
                    // own would fall further back; the exact total is checked at the end).
                    if i < DEPTH {
                        let floor = last + 3 - (CLIENTS as i64 - 1);
                        assert!(n >= floor, "counter went back from {last} to {n}");
                        last = n;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"GET", b"sum"]).await;
    let expected = (CLIENTS * ROUNDS * (DEPTH * 3 - 1)).to_string();
    assert_eq!(
        c.reply_str().await,
        format!("${}\r\n{expected}\r\n", expected.len())
    );
}
