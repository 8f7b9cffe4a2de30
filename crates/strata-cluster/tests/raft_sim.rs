//! Deterministic network simulation (turmoil) of 3- and 5-node clusters: every node runs its real
//! engine on a disk of its own (the engine's [`FaultFs`], which keeps apart what was written and
//! what was synced; snapshot files go to a temporary directory), its Raft groups and the `strata.raft.v1` tonic service over turmoil's
//! simulated TCP, and concurrent clients on every node write and read through [`RaftKv`] (so
//! followers forward to leaders over the simulated network). The network delays every message
//! and randomly cuts links; the schedule adds explicit partitions and crashes and restarts of
//! nodes. A crash is a power loss: the node's disk keeps only what was synced, so a write
//! reported durable too early is lost on it. Checked throughout and at the end:
//!
//! - state machine safety: no two nodes apply different entries at the same log index of a
//!   partition (every node's last applied log id, sampled every few simulated milliseconds);
//! - election safety in openraft's default ("advanced") mode: a leader id is the pair
//!   (term, node id), a term may see several leaders and the greatest one wins, so what must
//!   hold is that no leader id is ever held by two nodes and that a node's leader ids only grow;
//! - no acknowledged write is lost: every acknowledged write of a unique key is on every replica;
//! - all replicas converge: identical per-partition checksums on every node;
//! - the history of puts and linearizable gets on a few hot keys is linearizable (a crashed
//!   client's or timed-out put is indeterminate in it).
//!
//! One scenario also changes the membership under these faults: a node that started knowing
//! only itself is added, and an original node is removed, each change recorded in the meta group
//! by one node and carried out by the groups' leaders; the members at the end must converge and
//! hold every acknowledged write.
//!
//! Network faults, latencies and the schedule come from a fixed seed; openraft's election
//! timers and the engine's real I/O are not under turmoil's control, so two runs need not
//! interleave identically, but every run must pass. A soak run adds seeds: `STRATA_SIM_SEEDS=N`
//! runs every scenario with N more, and `STRATA_SIM_SEED=N` replays the one seed a failure names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use openraft::ServerState;
use strata_cluster::linearizability::{Op, Operation, Ret, Verdict, check};
use strata_cluster::partition::PartitionMap;
use strata_cluster::raft::kv::RaftKv;
use strata_cluster::raft::membership::MembershipChange;
use strata_cluster::raft::network::{PeerConnector, PeerStream};
use strata_cluster::raft::node::{RaftNode, RaftNodeConfig};
use strata_cluster::{Error, KvService};
use strata_engine::fs::FaultFs;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil::net::{TcpListener, TcpStream};

const PORT: u16 = 7400;
const HOT_KEYS: u64 = 6;
const PATIENCE: Duration = Duration::from_secs(3);

/// An accepted simulated connection, as tonic's server wants it.
struct Accepted(TcpStream);

impl tonic::transport::server::Connected for Accepted {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// State shared by the hosts and the test thread.
#[derive(Default)]
struct Shared {
    /// The running node of each host (index: id - 1); cleared when the host crashes.
    nodes: Mutex<Vec<Option<Arc<RaftNode>>>>,
    /// Each host's disk (index: id - 1).
    disks: Vec<FaultFs>,
    /// Each host's latest store, to wait at a restart until a crashed life has let go of it.
    stores: Mutex<Vec<Weak<strata_engine::Db>>>,
    /// Puts and gets on the hot keys; `None` entries were certainly without effect.
    history: Mutex<Vec<Option<Operation>>>,
    /// Acknowledged writes of unique keys.
    acked: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    stop: AtomicBool,
    /// Whether every client only reads for now.
    writes_paused: AtomicBool,
    /// The node whose clients only read from now on (0: none).
    readers_only_on: AtomicU64,
    next_client: AtomicU64,
    clients_running: AtomicU64,
    /// The members once every scheduled membership change is made.
    members: Mutex<BTreeSet<u64>>,
    /// Membership changes waiting to be recorded, by the node that records each.
    changes: Mutex<Vec<(u64, MembershipChange)>>,
}

fn now() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_nanos() as u64
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One client on node `node`: hot-key puts and gets recorded for the checker, and writes of
/// unique keys remembered when acknowledged.
async fn client(node: u64, kv: RaftKv, shared: Arc<Shared>) {
    let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
    shared.clients_running.fetch_add(1, Ordering::Relaxed);
    // Counts the client out however it ends: stopped, or dropped with its crashed host.
    struct Running(Arc<Shared>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.clients_running.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _running = Running(Arc::clone(&shared));
    let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (id + 1);
    let mut n = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        n += 1;
        tokio::time::sleep(Duration::from_millis(10 + xorshift(&mut rng) % 30)).await;
        let dice = if shared.writes_paused.load(Ordering::Relaxed)
            || shared.readers_only_on.load(Ordering::Relaxed) == node
        {
            9
        } else {
            xorshift(&mut rng) % 10
        };
        if dice < 3 {
            let key = format!("u{id}-{n}").into_bytes();
            let value = format!("v{id}-{n}").into_bytes();
            if let Ok(Ok(())) =
                tokio::time::timeout(PATIENCE, kv.put(key.clone(), value.clone())).await
            {
                shared.acked.lock().unwrap().push((key, value));
            }
            continue;
        }
        let key = format!("hot{}", xorshift(&mut rng) % HOT_KEYS).into_bytes();
        let is_put = dice < 7;
        let value = format!("c{id}-{n}").into_bytes();
        let slot = {
            let mut h = shared.history.lock().unwrap();
            h.push(Some(Operation {
                client: id,
                key: key.clone(),
                op: if is_put {
                    Op::Put(value.clone())
                } else {
                    Op::Get
                },
                invoked: now(),
                completed: None,
            }));
            h.len() - 1
        };
        // Left `completed: None` (indeterminate) if the host crashes meanwhile.
        let completed = if is_put {
            match tokio::time::timeout(PATIENCE, kv.put(key, value)).await {
                Ok(Ok(())) => Some(Ret::Ok),
                Ok(Err(Error::NotLeader { .. })) => {
                    shared.history.lock().unwrap()[slot] = None;
                    continue;
                }
                // The outcome may be unknown.
                Ok(Err(_)) | Err(_) => None,
            }
        } else {
            match tokio::time::timeout(PATIENCE, kv.get(key, Default::default())).await {
                Ok(Ok(v)) => Some(Ret::Value(v)),
                _ => {
                    shared.history.lock().unwrap()[slot] = None;
                    continue;
                }
            }
        };
        if let Some(ret) = completed {
            let done = now();
            if let Some(op) = shared.history.lock().unwrap()[slot].as_mut() {
                op.completed = Some((done, ret));
            }
        }
    }
}

fn host_name(id: u64) -> String {
    format!("node{id}")
}

/// Opens host `id`'s store on its disk once a crashed life's store is gone: until then the
/// disk stays dead (writes and syncs fail), so the old store's threads change nothing on it.
fn open_db(id: u64, dir: &PathBuf, shared: &Shared) -> Arc<strata_engine::Db> {
    let index = (id - 1) as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.stores.lock().unwrap()[index].strong_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "node {id}'s crashed store is still held after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let disk = &shared.disks[index];
    disk.power_loss();
    disk.set_fail_writes(false);
    disk.set_fail_syncs(false);
    let db = strata_engine::Db::open(
        dir,
        strata_engine::Options {
            fs: Arc::new(disk.clone()),
            key_prefix_room: strata_cluster::partition::DATA_PREFIX_LEN,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("cannot reopen node {id}'s store: {e}"));
    let db = Arc::new(db);
    shared.stores.lock().unwrap()[index] = Arc::downgrade(&db);
    db
}

/// Host `id` loses power: its disk fails every write and sync from now on and keeps only what
/// was synced; its software stops.
fn power_loss(sim: &mut turmoil::Sim<'_>, shared: &Shared, id: u64) {
    shared.nodes.lock().unwrap()[(id - 1) as usize] = None;
    let disk = &shared.disks[(id - 1) as usize];
    disk.set_fail_writes(true);
    disk.set_fail_syncs(true);
    disk.power_loss();
    sim.crash(host_name(id));
}

fn addr(id: u64) -> String {
    format!("{}:{PORT}", host_name(id))
}

/// Node `id`'s configuration: nodes `1..=nodes` as members, or only itself when it `joins`.
fn config(id: u64, nodes: u64, partitions: u16, joins: bool) -> RaftNodeConfig {
    let members: BTreeMap<u64, String> = if joins {
        BTreeMap::from([(id, addr(id))])
    } else {
        (1..=nodes).map(|i| (i, addr(i))).collect()
    };
    let mut cfg = RaftNodeConfig::new(id, members);
    cfg.partitions = PartitionMap::new(partitions).unwrap();
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    cfg.snapshot_after_logs = 40;
    cfg.logs_kept_after_snapshot = 5;
    cfg.request_timeout = Duration::from_secs(2);
    cfg.connector = Some(PeerConnector::new(|addr: String| {
        Box::pin(async move {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| std::io::Error::other(format!("bad address {addr}")))?;
            let port: u16 = port.parse().map_err(std::io::Error::other)?;
            let stream = TcpStream::connect((host.to_string(), port)).await?;
            Ok(Box::new(stream) as Box<dyn PeerStream>)
        })
    }));
    cfg
}

/// A node's software: its engine, Raft groups, the Raft service, its clients, and the task
/// that records the membership changes scheduled on it. A node that `joins` bootstraps
/// nothing and has no clients.
async fn run_node(
    id: u64,
    nodes: u64,
    partitions: u16,
    joins: bool,
    dir: PathBuf,
    clients: u64,
    shared: Arc<Shared>,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = open_db(id, &dir, &shared);
    let node = RaftNode::start(config(id, nodes, partitions, joins), db).await?;
    shared.nodes.lock().unwrap()[(id - 1) as usize] = Some(Arc::clone(&node));
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(s, _)| Accepted(s));
        Some((accepted, listener))
    });
    let server = tonic::transport::Server::builder()
        .add_service(node.service().into_server())
        .serve_with_incoming(incoming);
    if !joins {
        node.bootstrap().await?;
        for _ in 0..clients {
            tokio::spawn(client(
                id,
                RaftKv::new(Arc::clone(&node)),
                Arc::clone(&shared),
            ));
        }
    }
    tokio::spawn(record_changes(id, Arc::clone(&node), Arc::clone(&shared)));
    server.await?;
    Ok(())
}

/// Records the membership changes scheduled on node `id`, each until it is recorded: a change
/// stays scheduled until then, so a node that crashes meanwhile retries it once restarted.
async fn record_changes(id: u64, node: Arc<RaftNode>, shared: Arc<Shared>) {
    let mut in_flight: Vec<(MembershipChange, tokio::task::JoinHandle<bool>)> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut done = Vec::new();
        in_flight.retain(|(change, task)| {
            if !task.is_finished() {
                return true;
            }
            done.push(change.clone());
            false
        });
        let scheduled: Vec<MembershipChange> = shared
            .changes
            .lock()
            .unwrap()
            .iter()
            .filter(|(on, _)| *on == id)
            .map(|(_, c)| c.clone())
            .collect();
        for change in scheduled {
            if in_flight.iter().any(|(c, _)| *c == change) || done.contains(&change) {
                continue;
            }
            let node = Arc::clone(&node);
            let shared = Arc::clone(&shared);
            let task = tokio::spawn({
                let change = change.clone();
                async move {
                    match node.record_membership(&change, PATIENCE).await {
                        Ok(meta) => {
                            eprintln!("node {id} recorded {change:?}: version {}", meta.version);
                            shared
                                .changes
                                .lock()
                                .unwrap()
                                .retain(|(on, c)| !(*on == id && *c == change));
                            true
                        }
                        Err(e) => {
                            eprintln!("node {id} did not record {change:?} yet: {e}");
                            false
                        }
                    }
                }
            });
            in_flight.push((change, task));
        }
    }
}

/// One scheduled fault.
#[derive(Clone)]
enum Fault {
    /// Cut every link between the two groups of nodes.
    Partition(Vec<u64>, Vec<u64>),
    /// Every client only reads until the next [`Fault::IsolateLeader`], so that no write is
    /// in flight when it comes.
    PauseWrites,
    /// Cut every link between the node leading partition 0 at that moment and the others (no
    /// fault if it has no leader); from now on the clients of that node only read (through it,
    /// deposed) and the others write again.
    IsolateLeader,
    /// Heal every link.
    RepairAll,
    Crash(u64),
    Restart(u64),
    /// Node `.0` records the change in the meta group (retrying until it can).
    Change(u64, MembershipChange),
}

struct Scenario {
    /// Nodes bootstrapped as the cluster.
    nodes: u64,
    /// More nodes, started knowing only themselves, to be added by [`Fault::Change`].
    joining: u64,
    partitions: u16,
    clients_per_node: u64,
    seed: u64,
    /// Faults at simulated times.
    schedule: Vec<(Duration, Fault)>,
    /// When the clients stop and the network heals.
    quiesce_at: Duration,
}

/// Runs scenario `s` with its own seed and then, for a soak run, with as many more seeds as
/// `STRATA_SIM_SEEDS` says (for example `STRATA_SIM_SEEDS=20 cargo test -p strata-cluster
/// --test raft_sim --release`). `STRATA_SIM_SEED=N` runs seed N alone, to replay a failure a
/// soak run reported (`== seed N` precedes each run's output).
fn run(s: Scenario) {
    if let Some(seed) = std::env::var("STRATA_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        eprintln!("== seed {seed}");
        run_seed(&s, seed);
        return;
    }
    let more: u64 = std::env::var("STRATA_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for k in 0..=more {
        let seed = s.seed + k * 1_000;
        eprintln!("== seed {seed}");
        run_seed(&s, seed);
    }
}

fn run_seed(s: &Scenario, seed: u64) {
    let started = Instant::now();
    let hosts = s.nodes + s.joining;
    let dirs: Vec<tempfile::TempDir> = (0..hosts).map(|_| tempfile::tempdir().unwrap()).collect();
    let shared = Arc::new(Shared {
        disks: (0..hosts).map(|_| FaultFs::new()).collect(),
        stores: Mutex::new((0..hosts).map(|_| Weak::new()).collect()),
        ..Shared::default()
    });
    *shared.nodes.lock().unwrap() = vec![None; hosts as usize];
    *shared.members.lock().unwrap() = (1..=s.nodes).collect();
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(15))
        .fail_rate(0.0005)
        .repair_rate(0.05)
        .rng_seed(seed)
        .build();
    for id in 1..=hosts {
        let dir = dirs[(id - 1) as usize].path().to_path_buf();
        let shared = Arc::clone(&shared);
        let (nodes, partitions, clients) = (s.nodes, s.partitions, s.clients_per_node);
        sim.host(host_name(id), move || {
            run_node(
                id,
                nodes,
                partitions,
                id > nodes,
                dir.clone(),
                clients,
                Arc::clone(&shared),
            )
        });
    }

    let mut observed = Observed::default();
    let mut schedule = s.schedule.iter().cloned().peekable();
    let mut quiesced = false;
    let mut steps = 0u64;
    let all: Vec<String> = (1..=hosts).map(host_name).collect();
    loop {
        sim.step().unwrap();
        steps += 1;
        let t = sim.elapsed();
        while let Some((at, _)) = schedule.peek()
            && *at <= t
        {
            let (_, fault) = schedule.next().unwrap();
            match fault {
                Fault::Partition(a, b) => {
                    eprintln!("{t:?}: partition {a:?} | {b:?}");
                    for x in &a {
                        for y in &b {
                            sim.partition(host_name(*x), host_name(*y));
                        }
                    }
                }
                Fault::PauseWrites => {
                    eprintln!("{t:?}: clients only read");
                    shared.writes_paused.store(true, Ordering::Relaxed);
                }
                Fault::IsolateLeader => {
                    let leader = leader_of_partition_0(&shared);
                    eprintln!("{t:?}: isolate the leader of partition 0, {leader:?}");
                    shared
                        .readers_only_on
                        .store(leader.unwrap_or(0), Ordering::Relaxed);
                    shared.writes_paused.store(false, Ordering::Relaxed);
                    for other in (1..=hosts).filter(|&o| Some(o) != leader) {
                        if let Some(l) = leader {
                            sim.partition(host_name(l), host_name(other));
                        }
                    }
                }
                Fault::RepairAll => {
                    eprintln!("{t:?}: repair");
                    repair_all(&sim, &all);
                }
                Fault::Crash(id) => {
                    eprintln!("{t:?}: crash node {id} (power loss)");
                    power_loss(&mut sim, &shared, id);
                }
                Fault::Restart(id) => {
                    eprintln!("{t:?}: restart node {id}");
                    sim.bounce(host_name(id));
                }
                Fault::Change(on, change) => {
                    eprintln!("{t:?}: node {on} records {change:?}");
                    let mut members = shared.members.lock().unwrap();
                    match &change {
                        MembershipChange::Add { id, .. } => members.insert(*id),
                        MembershipChange::Remove { id } => members.remove(id),
                    };
                    shared.changes.lock().unwrap().push((on, change));
                }
            }
        }
        // After the faults, so that a power loss may catch the writes of the last step not yet
        // synced, as a real one catches a disk mid-write.
        settle_disk_io(&shared);
        if steps.is_multiple_of(5) {
            sample(&shared, s.partitions, &mut observed);
        }
        if !quiesced && t >= s.quiesce_at {
            eprintln!("{t:?}: quiesce");
            quiesced = true;
            shared.stop.store(true, Ordering::Relaxed);
            sim.set_fail_rate(0.0);
            repair_all(&sim, &all);
        }
        if quiesced
            && shared.clients_running.load(Ordering::Relaxed) == 0
            && steps.is_multiple_of(100)
            && converged(&shared, s.partitions).is_some()
        {
            break;
        }
        if t >= s.quiesce_at + Duration::from_secs(30) {
            for node in shared.nodes.lock().unwrap().iter().flatten() {
                for p in 0..s.partitions {
                    eprintln!("node {} partition {p}: {:?}", node.id(), node.metrics(p));
                }
            }
            panic!(
                "replicas did not converge within 30 s of quiescence ({} clients running): {:?}",
                shared.clients_running.load(Ordering::Relaxed),
                checksums(&shared, s.partitions)
            );
        }
    }
    let sums = converged(&shared, s.partitions).unwrap();
    eprintln!(
        "converged at {:?} ({steps} steps, {:?} real); {} keys; {} (partition, term) pairs with \
         a leader, {} of them with several; {} applied log ids compared",
        sim.elapsed(),
        started.elapsed(),
        sums.iter().map(|s| s.0).sum::<u64>(),
        observed.leaders.len(),
        observed.leaders.values().filter(|l| l.len() > 1).count(),
        observed.applied.len()
    );

    // No acknowledged write is lost, on any replica of the members at the end.
    let acked = shared.acked.lock().unwrap().clone();
    let nodes = member_nodes(&shared);
    assert_eq!(nodes.len(), shared.members.lock().unwrap().len());
    for node in &nodes {
        for (k, v) in &acked {
            assert_eq!(
                node.read_local(k).unwrap().as_ref(),
                Some(v),
                "node {} lost acknowledged write of {}",
                node.id(),
                String::from_utf8_lossy(k)
            );
        }
    }

    // The history is linearizable.
    let history: Vec<Operation> = shared
        .history
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .cloned()
        .collect();
    let completed = history.iter().filter(|o| o.completed.is_some()).count();
    eprintln!(
        "{} acknowledged unique writes; history of {} hot-key operations, {completed} completed",
        acked.len(),
        history.len()
    );
    assert!(acked.len() > 50, "too few writes acknowledged");
    assert!(completed > 100, "too few operations completed");
    let verdict = check(&history);
    if let Verdict::NotLinearizable { key } = &verdict {
        let mut ops: Vec<&Operation> = history.iter().filter(|o| &o.key == key).collect();
        ops.sort_by_key(|o| o.invoked);
        eprintln!("the history of {}:", String::from_utf8_lossy(key));
        for o in ops {
            eprintln!("  {o:?}");
        }
    }
    assert_eq!(verdict, Verdict::Linearizable);
    eprintln!("checked; total {:?}", started.elapsed());
    drop(nodes);
    drop(sim);
}

/// Waits until every running node's engine has committed the writes its tasks queued during
/// the last step. Those commits run on the engine's committer thread, in real time and outside
/// turmoil's clock, which would otherwise keep running while a log append waits for its sync:
/// on a loaded machine simulated seconds would pass per real fsync and clients would time out.
/// Waiting here makes disk I/O take no simulated time, so the network is what the run tests.
fn settle_disk_io(shared: &Shared) {
    let nodes = shared.nodes.lock().unwrap().clone();
    for node in nodes.iter().flatten() {
        // A failed write is reported to the task that queued it; the wait itself only orders.
        let _ = node.db().wait_queued_writes();
    }
}

/// The leader of partition 0 as the first running node knows it.
fn leader_of_partition_0(shared: &Shared) -> Option<u64> {
    shared
        .nodes
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .find_map(|n| n.metrics(0).and_then(|m| m.current_leader))
}

fn repair_all(sim: &turmoil::Sim<'_>, all: &[String]) {
    for a in all {
        for b in all {
            if a < b {
                sim.repair(a.as_str(), b.as_str());
            }
        }
    }
}

/// What the sampler has seen of every node's Raft metrics.
#[derive(Default)]
struct Observed {
    /// (partition, log index) -> the log id (leader id and index) applied there, and by whom.
    applied: HashMap<(u16, u64), (openraft::LogId<u64>, u64)>,
    /// (partition, node) -> the greatest vote the node has been seen to hold.
    votes: HashMap<(u16, u64), openraft::Vote<u64>>,
    /// (partition, term) -> the nodes seen leading it (several are legal in advanced mode).
    leaders: HashMap<(u16, u64), BTreeSet<u64>>,
}

fn sample(shared: &Shared, partitions: u16, seen: &mut Observed) {
    let nodes = shared.nodes.lock().unwrap().clone();
    for node in nodes.iter().flatten() {
        for p in 0..partitions {
            let Some(m) = node.metrics(p) else { continue };
            if let Some(applied) = m.last_applied {
                let (first, by) = *seen
                    .applied
                    .entry((p, applied.index))
                    .or_insert((applied, node.id()));
                assert_eq!(
                    first,
                    applied,
                    "partition {p}: node {by} applied {first} but node {} applied {applied} at index {}",
                    node.id(),
                    applied.index
                );
            }
            // A vote's leader id never goes backwards on a node, across restarts too (it is
            // persisted; a leader's own comes back uncommitted, so it is not resumed).
            let vote = m.vote;
            if let Some(old) = seen.votes.insert((p, node.id()), vote) {
                assert!(
                    vote.leader_id() >= old.leader_id(),
                    "partition {p}: node {} went back from vote {old} to {vote}",
                    node.id()
                );
            }
            if m.state == ServerState::Leader {
                assert_eq!(
                    vote.leader_id().voted_for(),
                    Some(node.id()),
                    "partition {p}: node {} leads under another node's leader id {vote}",
                    node.id()
                );
                seen.leaders
                    .entry((p, m.current_term))
                    .or_default()
                    .insert(node.id());
            }
        }
    }
}

/// The running nodes among the members at the end.
fn member_nodes(shared: &Shared) -> Vec<Arc<RaftNode>> {
    let members = shared.members.lock().unwrap().clone();
    let nodes = shared.nodes.lock().unwrap().clone();
    nodes
        .into_iter()
        .flatten()
        .filter(|n| members.contains(&n.id()))
        .collect()
}

fn checksums(shared: &Shared, partitions: u16) -> Vec<(u64, Vec<(u64, u64)>)> {
    member_nodes(shared)
        .iter()
        .map(|n| {
            let sums = (0..partitions)
                .map(|p| n.partition_checksum(p).unwrap())
                .collect();
            (n.id(), sums)
        })
        .collect()
}

/// The per-partition checksums when every member is up, has every partition's group made of
/// exactly the members, has applied everything and agrees.
fn converged(shared: &Shared, partitions: u16) -> Option<Vec<(u64, u64)>> {
    let members = shared.members.lock().unwrap().clone();
    let live = member_nodes(shared);
    if live.len() != members.len() {
        return None;
    }
    for node in &live {
        for p in 0..partitions {
            let m = node.metrics(p)?;
            m.current_leader?;
            if m.last_applied.map(|l| l.index) != m.last_log_index {
                return None;
            }
            let voters: BTreeSet<u64> = m.membership_config.membership().voter_ids().collect();
            if voters != members {
                return None;
            }
        }
    }
    let sums = checksums(shared, partitions);
    sums.windows(2)
        .all(|w| w[0].1 == w[1].1)
        .then(|| sums[0].1.clone())
}

fn secs(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn three_nodes_loss_delay_partitions_and_crashes() {
    init_tracing();
    run(Scenario {
        nodes: 3,
        joining: 0,
        partitions: 8,
        clients_per_node: 3,
        seed: 7,
        schedule: vec![
            (secs(3_000), Fault::Partition(vec![1], vec![2, 3])),
            (secs(5_000), Fault::RepairAll),
            (secs(6_000), Fault::Crash(2)),
            (secs(8_000), Fault::Restart(2)),
            (secs(9_000), Fault::Partition(vec![3], vec![1, 2])),
            (secs(10_500), Fault::Crash(1)),
            (secs(11_000), Fault::RepairAll),
            (secs(12_500), Fault::Restart(1)),
        ],
        quiesce_at: secs(14_000),
    });
}

/// A leader cut off from the others keeps its clients, which keep reading through it (and only
/// reading, with no write in flight at the cut, so no uncommitted entry in its log holds the
/// reads back) while the others elect a new leader and write: a read lease that outlived the followers' promise
/// not to vote would answer them with stale values (checked: a lease 20 times too long fails
/// here).
#[test]
fn isolated_leader_serves_no_stale_reads() {
    init_tracing();
    run(Scenario {
        nodes: 3,
        joining: 0,
        partitions: 1,
        clients_per_node: 6,
        seed: 5,
        schedule: vec![
            (secs(2_700), Fault::PauseWrites),
            (secs(3_000), Fault::IsolateLeader),
            (secs(8_000), Fault::RepairAll),
        ],
        quiesce_at: secs(10_000),
    });
}

#[test]
fn five_nodes_loss_delay_partitions_and_crashes() {
    init_tracing();
    run(Scenario {
        nodes: 5,
        joining: 0,
        partitions: 4,
        clients_per_node: 2,
        seed: 11,
        schedule: vec![
            (secs(3_000), Fault::Partition(vec![1, 2], vec![3, 4, 5])),
            (secs(5_000), Fault::RepairAll),
            (secs(6_000), Fault::Crash(3)),
            (secs(6_200), Fault::Crash(4)),
            (secs(8_000), Fault::Restart(3)),
            (secs(8_500), Fault::Partition(vec![5], vec![1, 2, 3, 4])),
            (secs(9_500), Fault::Restart(4)),
            (secs(10_000), Fault::RepairAll),
            (secs(10_500), Fault::Crash(1)),
            (secs(12_000), Fault::Restart(1)),
        ],
        quiesce_at: secs(13_000),
    });
}

/// A fourth node is added while a partition cuts one node off and another crashes, and one of
/// the original nodes then records its own removal and crashes; the three members left
/// converge and hold every acknowledged write.
#[test]
fn membership_changes_under_partitions_and_crashes() {
    init_tracing();
    run(Scenario {
        nodes: 3,
        joining: 1,
        partitions: 4,
        clients_per_node: 3,
        seed: 13,
        schedule: vec![
            (
                secs(2_000),
                Fault::Change(
                    2,
                    MembershipChange::Add {
                        id: 4,
                        addr: addr(4),
                    },
                ),
            ),
            (secs(2_300), Fault::Partition(vec![3], vec![1, 2, 4])),
            (secs(4_000), Fault::RepairAll),
            (secs(5_000), Fault::Crash(2)),
            (secs(6_500), Fault::Restart(2)),
            (
                secs(7_500),
                Fault::Change(1, MembershipChange::Remove { id: 1 }),
            ),
            (secs(7_600), Fault::Crash(1)),
            (secs(9_000), Fault::Restart(1)),
        ],
        quiesce_at: secs(12_000),
    });
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openraft=error".into()),
        )
        .with_test_writer()
        .try_init();
}
