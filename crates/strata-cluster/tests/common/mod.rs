//! An in-process cluster on loopback for the Raft tests: each node has its own engine in a
//! temporary directory (or on an in-memory [`FaultFs`] disk of its own, to lose power) and
//! serves the Raft gRPC service on its own 127.0.0.1 port.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a panic is the failure report"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster::partition::PartitionMap;
use strata_cluster::raft::kv::RaftKv;
use strata_cluster::raft::node::{RaftNode, RaftNodeConfig};
use strata_cluster::{Error, KvService};
use strata_engine::fs::FaultFs;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// One running node.
pub struct TestNode {
    pub id: u64,
    pub addr: SocketAddr,
    pub kv: RaftKv,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

/// A cluster of nodes; a stopped node's slot is `None`.
pub struct Cluster {
    pub dirs: Vec<tempfile::TempDir>,
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Option<TestNode>>,
    pub partitions: u16,
    /// Per node: whether it joined a running cluster (it then never bootstraps).
    pub joined: Vec<bool>,
    /// Per node, when the cluster runs on in-memory disks: the node's disk.
    pub disks: Option<Vec<FaultFs>>,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openraft=error".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A node's store options, as the server opens it: room for the partition prefix.
pub fn store_options() -> strata_engine::Options {
    strata_engine::Options {
        key_prefix_room: strata_cluster::partition::DATA_PREFIX_LEN,
        ..Default::default()
    }
}

/// Node `id`'s configuration: every node of `addrs` as a member, or only itself when it
/// `joins` a running cluster.
fn config(id: u64, addrs: &[SocketAddr], partitions: u16, joins: bool) -> RaftNodeConfig {
    let members: BTreeMap<u64, String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as u64 + 1, a.to_string()))
        .filter(|(i, _)| !joins || *i == id)
        .collect();
    let mut cfg = RaftNodeConfig::new(id, members);
    cfg.partitions = PartitionMap::new(partitions).unwrap();
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    // Small, so the tests compact logs and a restarted node needs snapshots.
    cfg.snapshot_after_logs = 20;
    cfg.logs_kept_after_snapshot = 0;
    cfg
}

async fn start_node(
    id: u64,
    dir: PathBuf,
    listener: TcpListener,
    addrs: &[SocketAddr],
    partitions: u16,
    joins: bool,
    disk: Option<&FaultFs>,
) -> TestNode {
    let addr = listener.local_addr().unwrap();
    let mut opts = store_options();
    if let Some(disk) = disk {
        opts.fs = Arc::new(disk.clone());
    }
    // A restarted node may find its store still held for a moment by tasks of its old life.
    let deadline = Instant::now() + Duration::from_secs(10);
    let db = loop {
        match strata_engine::Db::open(&dir, opts.clone()) {
            Ok(db) => break db,
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "store not free yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot reopen node {id}'s store: {e}"),
        }
    };
    let node = RaftNode::start(config(id, addrs, partitions, joins), Arc::new(db))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = node.service().into_server();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    if !joins {
        node.bootstrap().await.unwrap();
    }
    TestNode {
        id,
        addr,
        kv: RaftKv::new(node),
        stop: Some(stop),
        server,
    }
}

impl Cluster {
    /// Starts `n` nodes with `partitions` partitions and bootstraps them.
    pub async fn start(n: usize, partitions: u16) -> Cluster {
        Self::start_with_disks(n, partitions, None).await
    }

    /// [`Cluster::start`] with every node's engine on an in-memory disk of its own, so that
    /// [`Cluster::power_loss`] can take what a node had not synced.
    pub async fn start_on_fault_disks(n: usize, partitions: u16) -> Cluster {
        Self::start_with_disks(
            n,
            partitions,
            Some((0..n).map(|_| FaultFs::new()).collect()),
        )
        .await
    }

    async fn start_with_disks(n: usize, partitions: u16, disks: Option<Vec<FaultFs>>) -> Cluster {
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            nodes.push(Some(
                start_node(
                    i as u64 + 1,
                    dirs[i].path().to_path_buf(),
                    l,
                    &addrs,
                    partitions,
                    false,
                    disks.as_ref().map(|d| &d[i]),
                )
                .await,
            ));
        }
        Cluster {
            dirs,
            addrs,
            nodes,
            partitions,
            joined: vec![false; n],
            disks,
        }
    }

    /// Starts a new node that knows only itself (nothing bootstrapped): it serves once the
    /// cluster adds it. Returns its id.
    pub async fn start_joining_node(&mut self) -> u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addrs.push(listener.local_addr().unwrap());
        self.dirs.push(tempfile::tempdir().unwrap());
        let id = self.addrs.len() as u64;
        let dir = self.dirs.last().unwrap().path().to_path_buf();
        assert!(self.disks.is_none(), "joining nodes run on real disks only");
        let node = start_node(id, dir, listener, &self.addrs, self.partitions, true, None).await;
        self.nodes.push(Some(node));
        self.joined.push(true);
        id
    }

    /// Stops node `id` as a crash would: its server and groups stop, its store is closed.
    pub async fn kill(&mut self, id: u64) {
        let slot = &mut self.nodes[(id - 1) as usize];
        if let Some(mut n) = slot.take() {
            if let Some(stop) = n.stop.take() {
                let _ = stop.send(());
            }
            n.server.abort();
            let _ = (&mut n.server).await;
            n.kv.node().shutdown().await;
        }
    }

    /// Restarts node `id` on its old address and store.
    pub async fn restart(&mut self, id: u64) {
        let i = (id - 1) as usize;
        let listener = TcpListener::bind(self.addrs[i]).await.unwrap();
        let node = start_node(
            id,
            self.dirs[i].path().to_path_buf(),
            listener,
            &self.addrs,
            self.partitions,
            self.joined[i],
            self.disks.as_ref().map(|d| &d[i]),
        )
        .await;
        self.nodes[i] = Some(node);
    }

    /// Node `id` loses power (the cluster runs on in-memory disks): from this instant its disk
    /// fails every write and sync, and once its old life has let go of the store the disk holds
    /// only what was synced. Restart it with [`Cluster::restart`].
    pub async fn power_loss(&mut self, id: u64) {
        let disk =
            self.disks.as_ref().expect("a cluster on in-memory disks")[(id - 1) as usize].clone();
        disk.set_fail_writes(true);
        disk.set_fail_syncs(true);
        disk.power_loss();
        let store = self.nodes[(id - 1) as usize]
            .as_ref()
            .map(|n| Arc::downgrade(n.kv.node().db()));
        self.kill(id).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.as_ref().is_some_and(|s| s.strong_count() > 0) {
            assert!(Instant::now() < deadline, "node {id}'s store is still held");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        disk.power_loss();
        disk.set_fail_writes(false);
        disk.set_fail_syncs(false);
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes[(id - 1) as usize].as_ref().unwrap()
    }

    pub fn live(&self) -> impl Iterator<Item = &TestNode> {
        self.nodes.iter().flatten()
    }

    fn by_addr(&self, addr: &str) -> Option<&TestNode> {
        self.live().find(|n| n.addr.to_string() == addr)
    }

    /// The leader of `partition` that a live node reports and that is itself live.
    pub fn leader_of(&self, partition: u16) -> Option<u64> {
        for n in self.live() {
            if let Some(l) = n.kv.node().leader(partition)
                && self
                    .nodes
                    .get((l - 1) as usize)
                    .is_some_and(|s| s.is_some())
            {
                return Some(l);
            }
        }
        None
    }

    /// Waits until every partition has a live leader; returns how long it took.
    pub async fn await_leaders(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if (0..self.partitions).all(|p| self.leader_of(p).is_some()) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "partitions without a leader after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `f` against the node that leads `key`'s partition, following `NotLeader` redirects
    /// and retrying while there is no leader, for up to 10 s.
    pub async fn on_leader<T, F, Fut>(&self, key: &[u8], f: F) -> Result<T, Error>
    where
        F: Fn(RaftKv) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let map = PartitionMap::new(self.partitions).unwrap();
        let partition = map.partition_of(key);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut target = self
            .leader_of(partition)
            .and_then(|l| self.nodes[(l - 1) as usize].as_ref());
        loop {
            let node = target.or_else(|| self.live().next()).unwrap();
            match f(node.kv.clone()).await {
                Err(Error::NotLeader { leader: Some(addr) }) if Instant::now() < deadline => {
                    target = self.by_addr(&addr);
                    if target.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(Error::NotLeader { .. } | Error::Unavailable(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    target = self
                        .leader_of(partition)
                        .and_then(|l| self.nodes[(l - 1) as usize].as_ref());
                }
                other => return other,
            }
        }
    }

    /// Waits until every live node holds identical data in every partition; returns the
    /// per-partition (count, checksum).
    pub async fn await_converged(&self, within: Duration) -> Vec<(u64, u64)> {
        let started = Instant::now();
        loop {
            let sums: Vec<Vec<(u64, u64)>> = self
                .live()
                .map(|n| {
                    (0..self.partitions)
                        .map(|p| n.kv.node().partition_checksum(p).unwrap())
                        .collect()
                })
                .collect();
            if sums.windows(2).all(|w| w[0] == w[1]) {
                return sums.into_iter().next().unwrap();
            }
            assert!(
                started.elapsed() < within,
                "replicas differ after {within:?}: {sums:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for id in 1..=self.nodes.len() as u64 {
            self.kill(id).await;
        }
    }
}

/// Puts through the key's leader.
pub async fn put(c: &Cluster, key: &str, value: &str) {
    let (k, v) = (key.as_bytes().to_vec(), value.as_bytes().to_vec());
    c.on_leader(&k, |kv| {
        let (k, v) = (k.clone(), v.clone());
        async move { kv.put(k, v).await }
    })
    .await
    .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// A linearizable get through the key's leader.
pub async fn get(c: &Cluster, key: &str) -> Option<String> {
    let k = key.as_bytes().to_vec();
    c.on_leader(&k, |kv| {
        let k = k.clone();
        async move { kv.get(k, Default::default()).await }
    })
    .await
    .unwrap_or_else(|e| panic!("get {key}: {e}"))
    .map(|v| String::from_utf8(v).unwrap())
}
