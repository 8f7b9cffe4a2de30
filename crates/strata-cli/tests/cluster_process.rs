//! A 3-node cluster of real `strata server` processes on loopback, 8 partitions: writers record
//! every acknowledged write over RESP while the node leading the most partitions is killed with
//! SIGKILL; writes to its partitions resume within seconds on new leaders; the killed node
//! restarts on its data and rejoins; a follower is frozen with SIGSTOP and resumed with SIGCONT
//! while writes go on; then every replica of every partition has the same data (checksums from
//! `/cluster/checksums`), every acknowledged write reads back through every node, and each node
//! stops cleanly on SIGTERM. Before the faults, a `strata-client` connected to one node sends
//! each put straight to its partition's leader. After them, under load again, a fourth node
//! started with `--join` is added (`strata admin add-node`) and node 1 removed
//! (`strata admin remove-node`) and killed; the three left converge and serve every write, and
//! the meta group's record names them.
//!
//! Every process is killed if the test fails (`ServerProcess` kills on drop), and the writer
//! threads stop with the [`Writers`] guard.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::process::{ServerProcess, server_command, wait_timeout};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use strata_cluster::partition::PartitionMap;

const NODES: usize = 3;
const PARTITIONS: u16 = 8;
const WRITERS: usize = 4;

/// `n` loopback ports that were free a moment ago (bound, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A plain HTTP/1.0 GET; the body of a 200 reply, `None` for anything else.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_owned()))
}

fn json(addr: SocketAddr, path: &str) -> Option<Value> {
    serde_json::from_str(&http_get(addr, path)?).ok()
}

fn signal(p: &ServerProcess, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(p.child.id()).unwrap()), sig).unwrap();
}

/// The cluster: one slot per node, `None` while a node is down.
struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    grpc: Vec<SocketAddr>,
    peers: String,
    nodes: Vec<Option<ServerProcess>>,
}

impl Cluster {
    fn start() -> Cluster {
        let grpc: Vec<SocketAddr> = free_ports(NODES)
            .into_iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let peers = grpc
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            dirs: (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect(),
            grpc,
            peers,
            nodes: (0..NODES).map(|_| None).collect(),
        };
        for i in 0..NODES {
            cluster.start_node(i);
        }
        cluster
    }

    /// Starts node `i` (id `i + 1`) on its data directory and gRPC port.
    fn start_node(&mut self, i: usize) {
        let id = (i + 1).to_string();
        let grpc = self.grpc[i].to_string();
        let partitions = PARTITIONS.to_string();
        let cmd = server_command(
            self.dirs[i].path(),
            &[
                "--node-id",
                &id,
                "--peers",
                &self.peers,
                "--partitions",
                &partitions,
                "--grpc",
                &grpc,
            ],
        );
        self.nodes[i] = Some(ServerProcess::start_command(cmd));
    }

    fn node(&self, i: usize) -> &ServerProcess {
        self.nodes[i].as_ref().expect("node is down")
    }

    fn up(&self) -> Vec<usize> {
        (0..NODES).filter(|&i| self.nodes[i].is_some()).collect()
    }

    /// Node `i`'s `/status` `cluster` section.
    fn status(&self, i: usize) -> Option<Value> {
        json(self.node(i).http, "/status").map(|s| s["cluster"].clone())
    }

    /// Waits until every running node reports, for every partition, the same leader, a running
    /// node that itself reports leading it; returns partition -> leader node index.
    fn wait_for_leaders(&self, within: Duration) -> BTreeMap<u64, usize> {
        let deadline = Instant::now() + within;
        loop {
            let why = match self.leaders() {
                Ok(leaders) => return leaders,
                Err(why) => why,
            };
            assert!(
                Instant::now() < deadline,
                "no stable leaders within {within:?}: {why}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn leaders(&self) -> Result<BTreeMap<u64, usize>, String> {
        let mut leaders: BTreeMap<u64, usize> = BTreeMap::new();
        let up = self.up();
        let mut views = HashMap::new();
        for &i in &up {
            let status = self
                .status(i)
                .ok_or(format!("node {} has no status", i + 1))?;
            views.insert(i, status);
        }
        for p in 0..u64::from(PARTITIONS) {
            let mut seen = None;
            for &i in &up {
                let parts = views[&i]["partitions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let entry = parts
                    .iter()
                    .find(|e| e["partition"].as_u64() == Some(p))
                    .ok_or(format!("node {} does not host partition {p}", i + 1))?;
                let leader = entry["leader"]
                    .as_u64()
                    .ok_or(format!("node {} knows no leader of partition {p}", i + 1))?;
                if seen.is_some_and(|s| s != leader) {
                    return Err(format!("partition {p}: nodes disagree on the leader"));
                }
                seen = Some(leader);
                if leader == i as u64 + 1 && entry["role"].as_str() != Some("leader") {
                    return Err(format!("partition {p}: node {} not yet leading", i + 1));
                }
            }
            let leader = seen.ok_or("no node up")?;
            let idx = usize::try_from(leader - 1).map_err(|e| e.to_string())?;
            if !up.contains(&idx) {
                return Err(format!("partition {p}: leader {leader} is down"));
            }
            leaders.insert(p, idx);
        }
        Ok(leaders)
    }

    /// Node `i`'s per-partition checksums: partition -> (applied, keys, checksum).
    fn checksums(&self, i: usize) -> Option<Vec<(u64, u64, u64, String)>> {
        checksums_at(self.node(i).http)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n {
                let log = n.stderr();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                out.push_str(&format!(
                    "--- node {} stderr (last lines, newest first):\n",
                    i + 1
                ));
                out.push_str(&tail.join("\n"));
                out.push('\n');
            }
        }
        out
    }
}

/// One acknowledged write.
#[derive(Clone)]
struct Ack {
    /// When it was sent.
    sent: Instant,
    /// When the acknowledgement came.
    at: Instant,
    key: String,
    value: String,
}

/// Writer threads: each writes unique keys through the nodes' Redis ports, moving to the next
/// node after any error, and records every write acknowledged with `OK`. Stopped on drop.
struct Writers {
    stop: Arc<AtomicBool>,
    targets: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<Vec<Ack>>>,
    failed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(targets: Vec<String>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Arc::new(Mutex::new(targets));
        let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..WRITERS)
            .map(|w| {
                let (stop, targets) = (Arc::clone(&stop), Arc::clone(&targets));
                let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
                std::thread::spawn(move || write_loop(w, &stop, &targets, &acked, &failed))
            })
            .collect();
        Writers {
            stop,
            targets,
            acked,
            failed,
            threads,
        }
    }

    fn acked(&self) -> Vec<Ack> {
        self.acked.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn set_target(&self, i: usize, url: String) {
        self.targets.lock().unwrap()[i] = url;
    }

    fn finish(mut self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        self.acked()
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_millis(500))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    con.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(con)
}

fn write_loop(
    w: usize,
    stop: &AtomicBool,
    targets: &Mutex<Vec<String>>,
    acked: &Mutex<Vec<Ack>>,
    failed: &AtomicU64,
) {
    let mut node = w % NODES;
    let mut con: Option<redis::Connection> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = con.as_mut() else {
            let url = targets.lock().unwrap()[node].clone();
            match connect(&url) {
                Ok(c) => con = Some(c),
                Err(_) => {
                    node = (node + 1) % NODES;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            continue;
        };
        let (key, value) = (format!("w{w}-{i}"), format!("v{w}.{i}"));
        i += 1;
        let sent = Instant::now();
        match redis::cmd("SET").arg(&key).arg(&value).query::<String>(c) {
            Ok(reply) if reply == "OK" => acked.lock().unwrap().push(Ack {
                sent,
                at: Instant::now(),
                key,
                value,
            }),
            _ => {
                // Refused, timed out or disconnected: the outcome may be unknown, so the key is
                // never reused; try the next node.
                failed.fetch_add(1, Ordering::Relaxed);
                con = None;
                node = (node + 1) % NODES;
            }
        }
        // Keep the history (and the read-back at the end) to a few thousand writes.
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn redis_url(p: &ServerProcess) -> String {
    format!("redis://{}/", p.redis)
}

/// For each of `partitions`, how long after `since` the first write sent at or after `since`
/// to a key in it was acknowledged.
fn first_acks_after(
    acks: &[Ack],
    map: PartitionMap,
    partitions: &[u64],
    since: Instant,
) -> BTreeMap<u64, Duration> {
    let mut first = BTreeMap::new();
    for a in acks.iter().filter(|a| a.sent >= since) {
        let p = u64::from(map.partition_of(a.key.as_bytes()));
        if partitions.contains(&p) {
            first.entry(p).or_insert(a.at - since);
        }
    }
    first
}

/// Reads `acks` back through `url` with MGET; the keys whose value is not the acknowledged one.
fn read_back(url: &str, acks: &[Ack]) -> Vec<(String, Option<String>)> {
    let mut con = connect(url).unwrap();
    con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut missing = Vec::new();
    for chunk in acks.chunks(100) {
        let mut cmd = redis::cmd("MGET");
        for a in chunk {
            cmd.arg(&a.key);
        }
        let values: Vec<Option<String>> = cmd.query(&mut con).unwrap();
        for (a, v) in chunk.iter().zip(values) {
            if v.as_deref() != Some(a.value.as_str()) {
                missing.push((a.key.clone(), v));
            }
        }
    }
    missing
}

/// `strata admin status` against `http`.
fn admin_status(http: SocketAddr, dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["admin", "status", "--addr", &http.to_string()])
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the sample `series` (name and labels as rendered) in `http`'s `/metrics`.
fn metric(http: SocketAddr, series: &str) -> Option<f64> {
    http_get(http, "/metrics")?
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// gRPC puts node `i` has served, from its `/metrics`.
fn grpc_puts(cluster: &Cluster, i: usize) -> u64 {
    let text = http_get(cluster.node(i).http, "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("strata_requests_total{")
                && l.contains("protocol=\"grpc\"")
                && l.contains("command=\"put\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A `strata-client` connected to one node learns the leaders and sends each put straight to
/// its partition's leader: every node's gRPC put count grows by exactly the puts of the
/// partitions it leads (a forwarded put would count on the node connected to). Every value
/// then reads back through a client that does not route.
fn routing_client_talks_to_leaders(
    cluster: &Cluster,
    leaders: &BTreeMap<u64, usize>,
    map: &PartitionMap,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before: Vec<u64> = (0..NODES).map(|i| grpc_puts(cluster, i)).collect();
    let addr = cluster.node(0).grpc.to_string();
    let keys: Vec<String> = (0..40).map(|i| format!("routed{i}")).collect();
    let mut expected = [0u64; NODES];
    for k in &keys {
        expected[leaders[&u64::from(map.partition_of(k.as_bytes()))]] += 1;
    }
    rt.block_on(async {
        let client = strata_client::Client::connect(&addr, Default::default())
            .await
            .unwrap();
        assert!(client.routes_to_leaders());
        for k in &keys {
            client.put(k.as_bytes(), k.as_bytes()).await.unwrap();
        }
        let direct = strata_client::ClientOptions {
            route_to_leaders: false,
            ..Default::default()
        };
        let plain = strata_client::Client::connect(&addr, direct).await.unwrap();
        assert!(!plain.routes_to_leaders());
        for k in &keys {
            assert_eq!(
                plain.get(k.as_bytes()).await.unwrap(),
                Some(k.clone().into_bytes())
            );
        }
    });
    let grown: Vec<u64> = (0..NODES)
        .map(|i| grpc_puts(cluster, i) - before[i])
        .collect();
    assert_eq!(
        grown, expected,
        "gRPC puts served per node, leaders {leaders:?}"
    );
}

#[test]
fn three_processes_survive_sigkill_and_sigstop_and_converge() {
    let test_start = Instant::now();
    let map = PartitionMap::new(PARTITIONS).unwrap();
    let mut cluster = Cluster::start();
    let leaders = cluster.wait_for_leaders(Duration::from_secs(20));
    eprintln!(
        "leaders after start: {leaders:?} ({:?})",
        test_start.elapsed()
    );

    // The operator's view, and the cluster's errors on a RESP connection.
    let text = admin_status(cluster.node(0).http, cluster.dirs[0].path());
    assert!(text.contains("leads"), "{text}");
    for p in 0..PARTITIONS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("| {p:>9} |"))),
            "partition {p} missing from:\n{text}"
        );
    }
    // The same per partition in Prometheus metrics: every partition has exactly one leader
    // across the nodes, and each node reports its term.
    for p in 0..PARTITIONS {
        let leading: Vec<f64> = (0..3)
            .map(|i| {
                metric(
                    cluster.node(i).http,
                    &format!("strata_raft_is_leader{{partition=\"{p}\"}}"),
                )
                .unwrap_or_else(|| panic!("node {} exports no role of partition {p}", i + 1))
            })
            .collect();
        assert_eq!(
            leading.iter().sum::<f64>(),
            1.0,
            "partition {p}: {leading:?}"
        );
        assert!(
            metric(
                cluster.node(0).http,
                &format!("strata_raft_term{{partition=\"{p}\"}}")
            )
            .is_some_and(|t| t >= 1.0)
        );
    }
    // The meta group's record, as every node has applied it: created once, three members. The
    // meta group elects its leader beside the partitions' groups, so its record may land a
    // moment after their leaders are known.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..3).any(|i| metric(cluster.node(i).http, "strata_meta_version") != Some(1.0)) {
        assert!(
            Instant::now() < deadline,
            "the meta record did not reach every node within 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = admin_status(cluster.node(0).http, cluster.dirs[0].path());
    assert!(text.contains("meta group: record version 1"), "{text}");
    for i in 0..3 {
        let http = cluster.node(i).http;
        assert_eq!(
            metric(http, "strata_meta_version"),
            Some(1.0),
            "node {}",
            i + 1
        );
        assert_eq!(
            metric(http, "strata_cluster_members"),
            Some(3.0),
            "node {}",
            i + 1
        );
    }
    let mut con = connect(&redis_url(cluster.node(1))).unwrap();
    let cross = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(cross.code(), Some("CROSSSLOT"), "{cross}");
    let same: String = redis::cmd("MSET")
        .arg("{t}a")
        .arg("1")
        .arg("{t}b")
        .arg("2")
        .query(&mut con)
        .unwrap();
    assert_eq!(same, "OK");
    drop(con);

    routing_client_talks_to_leaders(&cluster, &leaders, &map);

    let writers = Writers::start((0..NODES).map(|i| redis_url(cluster.node(i))).collect());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        writers.count() > 0,
        "no write acknowledged\n{}",
        cluster.logs()
    );

    // SIGKILL the node leading the most partitions while the writers go on.
    let mut led = [0usize; NODES];
    for &l in leaders.values() {
        led[l] += 1;
    }
    let victim = (0..NODES).max_by_key(|&i| led[i]).unwrap();
    let victim_partitions: Vec<u64> = leaders
        .iter()
        .filter(|(_, l)| **l == victim)
        .map(|(p, _)| *p)
        .collect();
    let killed_at = Instant::now();
    {
        let mut p = cluster.nodes[victim].take().unwrap();
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    eprintln!(
        "killed node {} leading partitions {victim_partitions:?}",
        victim + 1
    );
    let resume_limit = Duration::from_secs(10);
    let resumed = loop {
        let first = first_acks_after(&writers.acked(), map, &victim_partitions, killed_at);
        if first.len() == victim_partitions.len() {
            break first;
        }
        assert!(
            killed_at.elapsed() < resume_limit,
            "writes to partitions {victim_partitions:?} did not resume within {resume_limit:?} \
             (resumed: {first:?})\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let slowest = resumed.values().max().copied().unwrap_or_default();
    eprintln!("writes resumed after the kill within {slowest:?}: {resumed:?}");
    let leaders = cluster.wait_for_leaders(Duration::from_secs(10));
    assert!(leaders.values().all(|&l| l != victim));

    // Restart the killed node on its data: it rejoins and catches up.
    std::thread::sleep(Duration::from_millis(500));
    cluster.start_node(victim);
    writers.set_target(victim, redis_url(cluster.node(victim)));
    let leaders = cluster.wait_for_leaders(Duration::from_secs(15));
    eprintln!("leaders after the restart: {leaders:?}");

    // SIGSTOP the node leading the fewest partitions for a few seconds: writes go on.
    let mut led = [0usize; NODES];
    for &l in leaders.values() {
        led[l] += 1;
    }
    let frozen = (0..NODES).min_by_key(|&i| (led[i], i != victim)).unwrap();
    let before = writers.count();
    let stopped_at = Instant::now();
    signal(cluster.node(frozen), Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(4));
    let during: Vec<Ack> = writers
        .acked()
        .into_iter()
        .filter(|a| a.sent >= stopped_at + Duration::from_secs(2))
        .collect();
    signal(cluster.node(frozen), Signal::SIGCONT);
    let all: Vec<u64> = (0..u64::from(PARTITIONS)).collect();
    let written = first_acks_after(&during, map, &all, stopped_at);
    eprintln!(
        "node {} (leading {}) stopped for 4 s: {} writes acknowledged meanwhile",
        frozen + 1,
        led[frozen],
        writers.count() - before
    );
    assert_eq!(
        written.len(),
        all.len(),
        "partitions without acknowledged writes while node {} was stopped: {written:?}\n{}",
        frozen + 1,
        cluster.logs()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let failed = writers.failed.load(Ordering::Relaxed);
    let acked = writers.finish();
    eprintln!(
        "{} writes acknowledged, {failed} refused or unknown ({:?} in)",
        acked.len(),
        test_start.elapsed()
    );

    // Convergence: identical applied index, key count and checksum on every replica.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sums: Vec<_> = (0..NODES).map(|i| cluster.checksums(i)).collect();
        if sums.iter().all(Option::is_some) && sums.windows(2).all(|w| w[0] == w[1]) {
            let keys: u64 = sums[0].as_ref().unwrap().iter().map(|s| s.2).sum();
            eprintln!("replicas identical: {keys} keys in {PARTITIONS} partitions");
            assert!(keys >= acked.len() as u64);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {sums:#?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every acknowledged write reads back, linearizably, through every node (four connections
    // per node at once, as each key is read on its own).
    let read_started = Instant::now();
    std::thread::scope(|scope| {
        let part = acked.len().div_ceil(4).max(1);
        let mut readers = Vec::new();
        for i in 0..NODES {
            let url = redis_url(cluster.node(i));
            for slice in acked.chunks(part) {
                let url = url.clone();
                readers.push(scope.spawn(move || (i, read_back(&url, slice), slice.len())));
            }
        }
        for r in readers {
            let (i, missing, of) = r.join().unwrap();
            assert!(
                missing.is_empty(),
                "node {}: {} of {of} acknowledged writes not read back: {:?}",
                i + 1,
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
    });
    eprintln!("read back in {:?}", read_started.elapsed());
    eprintln!(
        "all acknowledged writes read back ({:?} in)",
        test_start.elapsed()
    );

    for i in 0..NODES {
        let log = cluster.node(i).stderr();
        assert!(!log.contains("panicked"), "node {} panicked:\n{log}", i + 1);
    }

    // Membership under load: node 4 starts with --join and is added to every partition, then
    // node 1 is removed and killed, while writers keep writing through the other nodes.
    let writers = Writers::start((0..NODES).map(|i| redis_url(cluster.node(i))).collect());
    let dir4 = tempfile::tempdir().unwrap();
    let seed = cluster.grpc[0].to_string();
    let partitions = PARTITIONS.to_string();
    let node4 = ServerProcess::start_command(server_command(
        dir4.path(),
        &[
            "--node-id",
            "4",
            "--join",
            &seed,
            "--partitions",
            &partitions,
        ],
    ));
    let admin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "strata admin {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let node4_grpc = node4.grpc.to_string();
    let added = admin(&["add-node", "--server", &seed, "4", &node4_grpc]);
    assert_eq!(added.trim(), "node 4 added to 8 partitions");
    writers.set_target(0, redis_url(&node4));
    let node2_grpc = cluster.grpc[1].to_string();
    let removed = admin(&["remove-node", "--server", &node2_grpc, "1"]);
    assert_eq!(removed.trim(), "node 1 removed from 8 partitions");
    {
        let mut p = cluster.nodes[0].take().unwrap();
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let acked_during = writers.finish();
    eprintln!(
        "{} writes acknowledged while node 4 joined and node 1 left ({:?} in)",
        acked_during.len(),
        test_start.elapsed()
    );
    // Nodes 2, 3 and 4 converge, and node 4 serves every acknowledged write.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut sums: Vec<_> = (1..NODES).map(|i| cluster.checksums(i)).collect();
        sums.push(checksums_at(node4.http));
        if sums.iter().all(Option::is_some) && sums.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge after the membership changes: {sums:#?}\n{}",
            node4.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let missing = read_back(&redis_url(&node4), &acked_during);
    assert!(
        missing.is_empty(),
        "not read back through node 4: {missing:?}"
    );
    // The meta group recorded both changes (version 3: created, 4 added, 1 removed), and every
    // member left, the new one included, has applied the record naming nodes 2, 3 and 4.
    let deadline = Instant::now() + Duration::from_secs(10);
    for http in [cluster.node(1).http, cluster.node(2).http, node4.http] {
        while metric(http, "strata_meta_version") != Some(3.0)
            || metric(http, "strata_cluster_members") != Some(3.0)
        {
            assert!(
                Instant::now() < deadline,
                "{http}: meta record {:?} with {:?} members",
                metric(http, "strata_meta_version"),
                metric(http, "strata_cluster_members")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // SIGTERM: each node drains, stops its Raft groups, flushes and exits cleanly.
    let mut last: Vec<(u64, ServerProcess)> = (1..NODES)
        .map(|i| (i as u64 + 1, cluster.nodes[i].take().unwrap()))
        .collect();
    last.push((4, node4));
    for (_, p) in &last {
        p.sigterm();
    }
    for (id, mut p) in last {
        let status = wait_timeout(&mut p.child, Duration::from_secs(30));
        assert!(
            status.success(),
            "node {id} exited with {status}: {}",
            p.stderr()
        );
        assert!(!p.stderr().contains("panicked"), "node {id} panicked");
    }
}

/// The per-partition checksums served at `http` (see [`Cluster::checksums`]).
fn checksums_at(http: SocketAddr) -> Option<Vec<(u64, u64, u64, String)>> {
    let list = json(http, "/cluster/checksums")?;
    list.as_array()?
        .iter()
        .map(|e| {
            Some((
                e["partition"].as_u64()?,
                e["applied"].as_u64()?,
                e["keys"].as_u64()?,
                e["checksum"].as_str()?.to_owned(),
            ))
        })
        .collect()
}
