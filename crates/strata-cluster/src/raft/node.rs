//! [`RaftNode`]: every Raft group hosted by one node, the meta group and the partition groups.
//! It opens a log store and a state machine per group over the node's engine, starts an
//! openraft instance for each, registers them with the [`Router`] the gRPC [`RaftService`]
//! serves, bootstraps a new cluster idempotently, runs the [`reconcile`] task, and offers the
//! request path: proposals and linearizable reads served by the group's leader, this node or
//! the one it forwards them to ([`forward`]), read barriers (a read index confirmed by a
//! quorum) and local reads. Membership changes are recorded in the meta group
//! ([`ClusterMeta`]) and carried out by the reconciler.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{Config, Raft, RaftMetrics, SnapshotPolicy};
use strata_engine::Db;
use strata_proto::auth::BearerToken;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::partition::{
    AllNodes, Keyspace, PartitionId, PartitionMap, Placement, data_key, data_range, user_key,
};
use crate::raft::forward::{self, ForwardError, ForwardRpc};
use crate::raft::group::Group;
use crate::raft::log_store::LogStore;
use crate::raft::membership::MembershipChange;
use crate::raft::meta::{self, CLUSTER_KEY, ClusterMeta};
use crate::raft::network::{GroupNetwork, PeerConnector, PeerTls, Peers, RaftPeer};
use crate::raft::reconcile;
use crate::raft::rounds::ProposalRounds;
use crate::raft::service::{RaftService, Router};
use crate::raft::state_machine::StateMachine;
use crate::raft::status::{ClusterStatus, PartitionStatus};
use crate::raft::types::{Command, Node, NodeId, Response};
use crate::{Error, Result};

/// How a node runs its Raft groups.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// This node's id (`--node-id`).
    pub id: NodeId,
    /// Every member of the cluster, this node included: id to gRPC address (`--peers`).
    pub members: BTreeMap<NodeId, String>,
    /// The partition map (fixed at cluster creation).
    pub partitions: PartitionMap,
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Election timeout range; a follower that hears nothing for a random time in it campaigns.
    pub election_timeout: (Duration, Duration),
    /// Applied entries after which a group snapshots and compacts its log.
    pub snapshot_after_logs: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging follower catches up from
    /// the log rather than a snapshot.
    pub logs_kept_after_snapshot: u64,
    /// The longest a request may take on this node, waiting for a leader and forwarding to it
    /// included; a write still unanswered then is reported with an unknown outcome.
    pub request_timeout: Duration,
    /// How peers are connected to (`None`: TCP); a simulated network in tests.
    pub connector: Option<PeerConnector>,
    /// Whether a leader serves linearizable reads under a read lease (see
    /// [`Group`]) for half the minimum election timeout after each
    /// quorum confirmation, rather than confirming for every batch of reads. It assumes that
    /// the nodes' clocks advance at the same rate to within that margin (one machine's
    /// monotonic clock, or NTP-disciplined hosts).
    pub lease_reads: bool,
    /// The access token the nodes' gRPC listeners require (`--token`), sent with every Raft
    /// RPC; `None` when they require none.
    pub token: Option<String>,
    /// How often the reconciler compares the groups this node leads with the meta group's
    /// record when nothing wakes it earlier.
    pub reconcile_interval: Duration,
    /// TLS to the peers (their gRPC listeners use TLS), with the CA their certificates are
    /// checked against; `None`: plain gRPC.
    pub peer_tls: Option<PeerTls>,
}

impl RaftNodeConfig {
    /// A configuration with the defaults: 64 partitions, 100 ms heartbeats, 1–2 s elections
    /// (etcd's default is 1 s: with 500 ms, a CPU-saturated node missed enough heartbeats under
    /// load to depose healthy leaders), snapshots every 10 000 entries.
    pub fn new(id: NodeId, members: BTreeMap<NodeId, String>) -> Self {
        RaftNodeConfig {
            id,
            members,
            partitions: PartitionMap::default(),
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(1000), Duration::from_millis(2000)),
            snapshot_after_logs: 10_000,
            logs_kept_after_snapshot: 1_000,
            request_timeout: Duration::from_secs(5),
            connector: None,
            lease_reads: true,
            token: None,
            reconcile_interval: Duration::from_millis(500),
            peer_tls: None,
        }
    }

    fn raft_config(&self) -> Result<Arc<Config>> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "strata".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout.0),
            election_timeout_max: ms(self.election_timeout.1),
            install_snapshot_timeout: 2_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_logs),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..Default::default()
        };
        config
            .validate()
            .map(Arc::new)
            .map_err(|e| Error::InvalidArgument(format!("raft config: {e}")))
    }
}

/// The Raft side of one node: the meta group and all its partition groups.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    db: Arc<Db>,
    map: PartitionMap,
    /// Every node this node knows the address of: the configured members and the members of
    /// the meta group's record (the groups' memberships carry the addresses too).
    members: RwLock<BTreeMap<NodeId, Node>>,
    placement: Arc<dyn Placement>,
    router: Router,
    peers: Peers,
    request_timeout: Duration,
    /// How long a request waits for a leaderless group to elect one.
    leader_wait: Duration,
    /// The record this node creates in the meta group if it leads it before any record
    /// exists: set by [`RaftNode::bootstrap`], never on a node that joins.
    seed: Mutex<Option<ClusterMeta>>,
    /// Wakes the reconciler before its interval ends.
    reconcile_wake: Arc<Notify>,
    reconcile_interval: Duration,
    stopped: AtomicBool,
}

/// Where one attempt of a request goes.
enum Target {
    /// This node leads the partition.
    Local(Arc<Group>),
    /// Another node does, reached through this client.
    Remote(NodeId, Box<RaftPeer>),
}

impl RaftNode {
    /// Starts a Raft instance for every partition placed on this node, over `db`. Existing Raft
    /// state in `db` (a restart) is picked up; nothing is bootstrapped.
    pub async fn start(config: RaftNodeConfig, db: Arc<Db>) -> Result<Arc<RaftNode>> {
        let raft_config = config.raft_config()?;
        let peers = Peers::new(
            config.connector.clone(),
            BearerToken::new(config.token.as_deref()).map_err(|_| {
                Error::InvalidArgument("the access token must be printable ASCII".into())
            })?,
            config.peer_tls.clone(),
        );
        let router = Router::default();
        let rounds = Arc::new(ProposalRounds::default());
        let placement: Arc<dyn Placement> = Arc::new(AllNodes);
        let member_ids: BTreeSet<NodeId> = config.members.keys().copied().collect();
        let read_lease = if config.lease_reads {
            config.election_timeout.0 / 2
        } else {
            Duration::ZERO
        };
        // Every member hosts the meta group, and the partitions placed on it.
        let hosted = keyspaces(config.partitions).filter(|k| match k {
            Keyspace::Meta => true,
            Keyspace::Partition(p) => placement.replicas(*p, &member_ids).contains(&config.id),
        });
        for keyspace in hosted {
            let group = keyspace.group();
            let log = LogStore::open(Arc::clone(&db), group, config.id).map_err(raft_storage)?;
            let sm = StateMachine::new(Arc::clone(&db), keyspace, log.unsynced());
            let network = GroupNetwork::new(group, peers.clone(), log.unsynced());
            let raft = Raft::new(config.id, Arc::clone(&raft_config), network, log, sm)
                .await
                .map_err(|e| Error::Internal(format!("starting raft group {group}: {e}")))?;
            router.insert(
                group,
                Group::new(raft, keyspace, read_lease, Arc::clone(&rounds)),
            );
        }
        tracing::info!(
            node = config.id,
            partitions = config.partitions.partitions(),
            "raft node started"
        );
        let node = Arc::new(RaftNode {
            id: config.id,
            db,
            map: config.partitions,
            members: RwLock::new(
                config
                    .members
                    .into_iter()
                    .map(|(id, addr)| (id, Node::new(addr)))
                    .collect(),
            ),
            placement,
            router,
            peers,
            request_timeout: config.request_timeout,
            leader_wait: config.election_timeout.1 * 2,
            seed: Mutex::new(None),
            reconcile_wake: Arc::new(Notify::new()),
            reconcile_interval: config.reconcile_interval,
            stopped: AtomicBool::new(false),
        });
        if let Some(meta) = node.local_meta()?
            && meta.partitions != node.map.partitions()
        {
            node.shutdown().await;
            return Err(Error::InvalidArgument(format!(
                "this store belongs to a cluster of {} partitions, not {}",
                meta.partitions,
                node.map.partitions()
            )));
        }
        tokio::spawn(reconcile::run(
            Arc::downgrade(&node),
            Arc::clone(&node.reconcile_wake),
            node.reconcile_interval,
        ));
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The node's engine.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The partition map.
    pub fn partition_map(&self) -> PartitionMap {
        self.map
    }

    /// The gRPC service carrying this node's Raft traffic, to mount on its gRPC listener.
    pub fn service(&self) -> RaftService {
        RaftService::new(self.router.clone(), Arc::clone(&self.db))
    }

    /// Initializes every group with the configured members, once: on a restart, or on a node
    /// whose groups already heard from a leader, it does nothing. Every member may call it with
    /// the same member list. The first leader of the meta group then records the cluster there
    /// (once: a record that exists is never replaced by a bootstrap).
    pub async fn bootstrap(&self) -> Result<()> {
        let members = self.members();
        let ids: BTreeSet<NodeId> = members.keys().copied().collect();
        if let Ok(mut seed) = self.seed.lock() {
            *seed = Some(ClusterMeta::new(self.map.partitions(), addrs(&members)));
        }
        for (n, keyspace) in keyspaces(self.map).enumerate() {
            let Some(group) = self.router.get(keyspace.group()) else {
                continue;
            };
            let replicas = self.desired_replicas(keyspace, &ids);
            let nodes: BTreeMap<NodeId, Node> = members
                .iter()
                .filter(|(id, _)| replicas.contains(id))
                .map(|(id, n)| (*id, n.clone()))
                .collect();
            match group.raft().initialize(nodes).await {
                Ok(()) => {
                    // Spread the first leaders: the n-th group's first election is started at
                    // once by its n-th replica (ids in order, wrapping), before any election
                    // timer fires. Left alone, every node campaigns in term 1 and the highest
                    // id wins them all (openraft orders equal-term votes by node id), so one
                    // node would lead every group and do all the leaders' work.
                    let first_leader = replicas.iter().nth(n % replicas.len().max(1));
                    if first_leader == Some(&self.id)
                        && let Err(e) = group.raft().trigger().elect().await
                    {
                        tracing::debug!(%keyspace, "first election not started: {e}");
                    }
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    tracing::debug!(%keyspace, "group already initialized");
                }
                Err(e) => {
                    return Err(Error::Internal(format!("bootstrapping {keyspace}: {e}")));
                }
            }
        }
        Ok(())
    }

    fn group(&self, keyspace: Keyspace) -> Result<Arc<Group>> {
        self.router
            .get(keyspace.group())
            .ok_or_else(|| Error::Unavailable(format!("{keyspace} is not on this node")))
    }

    /// The nodes that should hold replicas of `keyspace`'s group, of the cluster `members`:
    /// all of them for the meta group, the placement's choice for a partition.
    pub(crate) fn desired_replicas(
        &self,
        keyspace: Keyspace,
        members: &BTreeSet<NodeId>,
    ) -> BTreeSet<NodeId> {
        match keyspace {
            Keyspace::Meta => members.clone(),
            Keyspace::Partition(p) => self.placement.replicas(p, members),
        }
    }

    /// Every group hosted here.
    pub(crate) fn groups(&self) -> Vec<Arc<Group>> {
        self.router.all()
    }

    /// The leader of `keyspace`'s group to send an attempt to: `hint` (from a refusal) if
    /// given, else the leader this node knows of other than `avoid`, waiting for one to be
    /// elected for up to the leader wait (within `deadline`). Leaderless:
    /// [`Error::Unavailable`], retryable.
    async fn target(
        &self,
        keyspace: Keyspace,
        group: &Arc<Group>,
        hint: Option<(NodeId, String)>,
        avoid: Option<NodeId>,
        deadline: Instant,
    ) -> Result<Target> {
        let (id, addr) = match hint {
            Some((id, addr)) if Some(id) != avoid => (id, Some(addr)),
            _ => {
                // The leader known now, read in place; only without one is it waited for
                // (which copies the metrics on every change).
                let known = {
                    let metrics = group.raft().metrics();
                    let m = metrics.borrow();
                    m.current_leader
                        .filter(|&l| self.usable_leader(&m, l, avoid))
                        .map(|l| (l, (l != self.id).then(|| self.node_addr(&m, l)).flatten()))
                };
                match known {
                    Some(known) => known,
                    None => self.await_leader(keyspace, group, avoid, deadline).await?,
                }
            }
        };
        if id == self.id {
            return Ok(Target::Local(Arc::clone(group)));
        }
        let addr = addr
            .ok_or_else(|| Error::Unavailable(format!("{keyspace}: leader {id} has no address")))?;
        let client = self
            .peers
            .client(&addr)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Target::Remote(id, Box::new(client)))
    }

    /// Whether `leader`, named by the group metrics `m`, is one to send a request to: not the
    /// node to avoid, and one the membership still names (a removed node that led until its
    /// removal is no leader to send to: the next one is waited for).
    fn usable_leader(
        &self,
        m: &RaftMetrics<NodeId, Node>,
        leader: NodeId,
        avoid: Option<NodeId>,
    ) -> bool {
        Some(leader) != avoid
            && (m.membership_config.membership().get_node(&leader).is_some() || leader == self.id)
    }

    /// Waits until `group` has a usable leader (at most until `deadline`, and at most the
    /// node's leader wait), and returns its id and address.
    async fn await_leader(
        &self,
        keyspace: Keyspace,
        group: &Arc<Group>,
        avoid: Option<NodeId>,
        deadline: Instant,
    ) -> Result<(NodeId, Option<String>)> {
        let wait_until = deadline.min(Instant::now() + self.leader_wait);
        let wait = wait_until.saturating_duration_since(Instant::now());
        let found = group
            .raft()
            .wait(Some(wait))
            .metrics(
                |m| {
                    m.current_leader
                        .is_some_and(|l| self.usable_leader(m, l, avoid))
                },
                "a leader",
            )
            .await;
        let no_leader = || Error::Unavailable(format!("{keyspace} has no leader; retry"));
        let m = found.map_err(|_| no_leader())?;
        let id = m.current_leader.ok_or_else(no_leader)?;
        Ok((id, self.node_addr(&m, id)))
    }

    /// Runs `attempt` against `keyspace`'s leader, here or forwarded, within the request
    /// timeout. An attempt refused with certainty (the target does not lead, or could not be
    /// reached at all) is retried once, on the leader the refusal names or another one. A write
    /// (`is_write`) that may have happened is never retried and is reported as an unknown
    /// outcome; a read is retried like a refusal.
    async fn route<T, F, Fut>(&self, keyspace: Keyspace, is_write: bool, attempt: F) -> Result<T>
    where
        F: Fn(Target) -> Fut,
        Fut: Future<Output = std::result::Result<T, ForwardError>>,
    {
        let group = self.group(keyspace)?;
        let deadline = Instant::now() + self.request_timeout;
        let (mut hint, mut avoid) = (None, None);
        let mut last = None;
        for retry in [false, true] {
            let target = self
                .target(keyspace, &group, hint.take(), avoid, deadline)
                .await?;
            let target_id = match &target {
                Target::Local(_) => self.id,
                Target::Remote(id, _) => *id,
            };
            let outcome = match tokio::time::timeout_at(deadline, attempt(target)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ForwardError::Unknown(format!(
                    "{keyspace}: no reply from node {target_id} within {:?}",
                    self.request_timeout
                ))),
            };
            let e = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let retryable = e.certainly_not_applied() || (!is_write && Instant::now() < deadline);
            if !retryable || retry {
                last = Some(e);
                break;
            }
            match &e {
                ForwardError::NotLeader {
                    leader: Some((id, addr)),
                } if *id != target_id => hint = Some((*id, addr.clone())),
                // A leader that could not confirm its leadership in time (a slow follower under
                // load) most likely still leads, and a node that just stepped down to campaign
                // (it names no leader) may well win: ask whoever leads now, which may be it
                // again. Avoiding it made the retry wait for another leader that never came,
                // and a healthy partition answered "no leader".
                ForwardError::Refused(_) | ForwardError::NotLeader { .. } => {}
                _ => avoid = Some(target_id),
            }
            tracing::debug!(%keyspace, node = target_id, error = ?e, "retrying on another leader");
            last = Some(e);
        }
        Err(match last {
            Some(ForwardError::Unknown(msg)) if !is_write => Error::Unavailable(msg),
            Some(e) => e.into(),
            None => Error::Internal("request routed nowhere".into()),
        })
    }

    /// Replicates `cmd` through `partition`'s group and returns its outcome once a majority has
    /// it and the leader has applied it. A node that does not lead the partition forwards the
    /// command to the leader. Errors: [`Error::Unavailable`] while the partition has no leader
    /// (certainly not applied, retryable) or when the outcome is unknown (the message says so:
    /// the leader failed or the time ran out after the command was sent); [`Error::NotLeader`]
    /// when even the second leader tried refused it (certainly not applied).
    pub async fn client_write(&self, partition: PartitionId, cmd: Command) -> Result<Response> {
        self.write_to(Keyspace::Partition(partition), cmd).await
    }

    /// Replicates `cmd` through `keyspace`'s group, as [`RaftNode::client_write`] does.
    async fn write_to(&self, keyspace: Keyspace, cmd: Command) -> Result<Response> {
        self.route(keyspace, true, |target| {
            let cmd = cmd.clone();
            async move {
                match target {
                    Target::Local(group) => group.write(cmd).await,
                    Target::Remote(_, client) => {
                        forward::call(*client, ForwardRpc::Write, keyspace, &cmd).await
                    }
                }
            }
        })
        .await
    }

    /// Linearizable reads of `keys`, all in `partition`, served by its leader (this node or the
    /// one the request is forwarded to) after a read index confirmed by a quorum, so a deposed
    /// leader never answers.
    pub async fn linearizable_get(
        &self,
        partition: PartitionId,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.read_from(Keyspace::Partition(partition), keys).await
    }

    /// Linearizable reads of `keys` of `keyspace`, as [`RaftNode::linearizable_get`] does.
    async fn read_from(
        &self,
        keyspace: Keyspace,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.route(keyspace, false, |target| {
            let keys = keys.clone();
            let db = Arc::clone(&self.db);
            async move {
                match target {
                    Target::Local(group) => forward::leader_read(&group, &db, keys).await,
                    Target::Remote(_, client) => {
                        forward::call(*client, ForwardRpc::Read, keyspace, &keys).await
                    }
                }
            }
        })
        .await
    }

    /// Waits until a read of `partition` from this node's replica is linearizable: the leader
    /// (this node, or asked over the network) confirmed its leadership with a quorum after the
    /// call began and gave its read index, and this node has applied up to it.
    pub async fn read_barrier(&self, partition: PartitionId) -> Result<()> {
        let keyspace = Keyspace::Partition(partition);
        let index: Option<u64> = self
            .route(keyspace, false, |target| async move {
                match target {
                    Target::Local(group) => group.read_index().await,
                    Target::Remote(_, client) => {
                        forward::call(*client, ForwardRpc::ReadIndex, keyspace, &()).await
                    }
                }
            })
            .await?;
        self.group(keyspace)?
            .raft()
            .wait(Some(self.request_timeout))
            .applied_index_at_least(index, "read index")
            .await
            .map_err(|e| {
                Error::Unavailable(format!(
                    "partition {partition}: replica behind the read index: {e}"
                ))
            })?;
        Ok(())
    }

    /// Reads `key` from this node's replica of its partition, as applied so far.
    pub fn read_local(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let partition = self.map.partition_of(key);
        Ok(self.db.get(&data_key(partition, key))?)
    }

    /// The leader of `partition` as this node knows it.
    pub fn leader(&self, partition: PartitionId) -> Option<NodeId> {
        self.group(Keyspace::Partition(partition))
            .ok()?
            .raft()
            .metrics()
            .borrow()
            .current_leader
    }

    /// The gRPC address of `partition`'s leader as this node knows it.
    pub fn leader_addr(&self, partition: PartitionId) -> Option<String> {
        let m = self.metrics(partition)?;
        self.node_addr(&m, m.current_leader?)
    }

    /// Node `id`'s gRPC address: from the group's membership (`m`), else from the nodes this
    /// node was configured with or has added.
    fn node_addr(&self, m: &RaftMetrics<NodeId, Node>, id: NodeId) -> Option<String> {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .or_else(|| self.members().get(&id).map(|n| n.addr.clone()))
    }

    /// The Raft metrics of `partition`'s group on this node (role, term, leader, indexes).
    pub fn metrics(&self, partition: PartitionId) -> Option<RaftMetrics<NodeId, Node>> {
        self.group_metrics(Keyspace::Partition(partition))
    }

    /// The Raft metrics of `keyspace`'s group on this node.
    pub fn group_metrics(&self, keyspace: Keyspace) -> Option<RaftMetrics<NodeId, Node>> {
        Some(self.group(keyspace).ok()?.raft().metrics().borrow().clone())
    }

    /// Role, term, leader, commit and applied index, log size and replication lag of every
    /// partition group on this node, and the cluster's members as the meta group records them.
    pub fn status(&self) -> ClusterStatus {
        let metrics: Vec<_> = self
            .map
            .all()
            .filter_map(|p| Some((p, self.metrics(p)?)))
            .collect();
        let meta = self.local_meta().ok().flatten();
        let members = match &meta {
            Some(meta) => meta.members.clone(),
            None => addrs(&self.members()),
        };
        ClusterStatus {
            node: self.id,
            members,
            meta_version: meta.map(|m| m.version),
            meta_leader: self
                .group_metrics(Keyspace::Meta)
                .and_then(|m| m.current_leader),
            partitions: metrics
                .iter()
                .map(|(p, m)| {
                    let mut status = PartitionStatus::from_metrics(self.id, *p, m);
                    if let Ok(group) = self.group(Keyspace::Partition(*p)) {
                        status.reads = group.read_counts();
                    }
                    status
                })
                .collect(),
        }
    }

    /// A checksum of this replica's data of `partition` (keys and values in order), to compare
    /// replicas.
    pub fn partition_checksum(&self, partition: PartitionId) -> Result<(u64, u64)> {
        let (start, end) = data_range(partition);
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut count = 0;
        for item in self.db.range(Some(&start), Some(&end))? {
            let (k, v) = item?;
            let user = user_key(partition, &k).unwrap_or_default();
            hasher.update(&(user.len() as u64).to_le_bytes());
            hasher.update(user);
            hasher.update(&(v.len() as u64).to_le_bytes());
            hasher.update(&v);
            count += 1;
        }
        Ok((count, hasher.digest()))
    }

    /// The nodes this node knows, by id.
    fn members(&self) -> BTreeMap<NodeId, Node> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The meta group's record as this node's replica has applied it (`None`: not yet).
    pub fn local_meta(&self) -> Result<Option<ClusterMeta>> {
        self.db
            .get(&Keyspace::Meta.key(CLUSTER_KEY))?
            .map(|bytes| decode_meta(&bytes))
            .transpose()
    }

    /// The meta group's record, read linearizably through the meta group's leader, with its
    /// stored bytes (what a compare-and-swap of it must name). [`Error::Unavailable`] until a
    /// bootstrapped cluster recorded itself.
    async fn meta_record(&self) -> Result<(Vec<u8>, ClusterMeta)> {
        let values = self
            .read_from(Keyspace::Meta, vec![CLUSTER_KEY.to_vec()])
            .await?;
        record_of(values)
    }

    /// The meta group's record, read linearizably (see [`RaftNode::local_meta`] for this
    /// node's replica of it). [`Error::Unavailable`] until a bootstrapped cluster recorded
    /// itself.
    pub async fn meta(&self) -> Result<ClusterMeta> {
        Ok(self.meta_record().await?.1)
    }

    /// The meta group's record, read linearizably through the other members `known` names,
    /// for a node whose own replica of the meta group cannot reach a leader: a node removed from
    /// the cluster while it was down is no longer sent the meta group's entries, so its replica
    /// stays at the record from before its removal and never learns a leader. Each member is
    /// asked in turn; one that does not lead the meta group names the leader, who is asked next.
    pub(crate) async fn meta_via_members(&self, known: &ClusterMeta) -> Result<ClusterMeta> {
        let keys = vec![CLUSTER_KEY.to_vec()];
        let mut last = None;
        for addr in known
            .members
            .iter()
            .filter(|(id, _)| **id != self.id)
            .map(|(_, addr)| addr)
        {
            let mut addr = addr.clone();
            // The member asked, then the leader it names.
            for _ in 0..2 {
                let client = self
                    .peers
                    .client(&addr)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                let read = forward::call::<_, Vec<Option<Vec<u8>>>>(
                    client,
                    ForwardRpc::Read,
                    Keyspace::Meta,
                    &keys,
                );
                match tokio::time::timeout(self.request_timeout, read).await {
                    Ok(Ok(values)) => return Ok(record_of(values)?.1),
                    Ok(Err(ForwardError::NotLeader {
                        leader: Some((_, leader)),
                    })) if leader != addr => {
                        last = Some(Error::Unavailable(format!(
                            "{addr} does not lead the meta group; {leader} may"
                        )));
                        addr = leader;
                    }
                    Ok(Err(e)) => {
                        last = Some(Error::from(e));
                        break;
                    }
                    Err(_) => {
                        last = Some(Error::Unavailable(format!(
                            "no reply from {addr} within {:?}",
                            self.request_timeout
                        )));
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::Unavailable("no other member to read the cluster record from".into())
        }))
    }

    /// Creates the meta group's record from this node's bootstrap configuration, if this node
    /// was bootstrapped and no record exists: the same command from every bootstrapped node,
    /// applied only once. Voters the partition groups already have are members too, so a
    /// cluster whose stores predate the meta group (nodes joined since its bootstrap) is
    /// recorded as it is, not shrunk back to the configured peers.
    pub(crate) async fn create_meta(&self) -> Result<()> {
        let seed = self.seed.lock().ok().and_then(|s| s.clone());
        let Some(mut seed) = seed else {
            return Ok(());
        };
        for p in self.map.all() {
            let Some(m) = self.metrics(p) else { continue };
            let membership = m.membership_config.membership();
            for id in membership.voter_ids() {
                if let Some(node) = membership.get_node(&id) {
                    seed.members.entry(id).or_insert_with(|| node.addr.clone());
                }
            }
        }
        self.write_to(Keyspace::Meta, meta::create_command(&seed))
            .await?;
        Ok(())
    }

    /// Records `change` in the meta group (compare-and-swap of the record, retried for up to
    /// `within` while other changes race it or the meta group has no leader) and returns the
    /// record that includes it. The groups are brought in line with it afterwards by every
    /// leader's reconciler.
    pub async fn record_membership(
        &self,
        change: &MembershipChange,
        within: Duration,
    ) -> Result<ClusterMeta> {
        let deadline = Instant::now() + within;
        loop {
            let attempt = async {
                let (bytes, current) = self.meta_record().await?;
                let next = match current.changed(change) {
                    Ok(Some(next)) => next,
                    Ok(None) => return Ok(Some(current)),
                    Err(e) => return Err(Error::InvalidArgument(e.to_string())),
                };
                match self
                    .write_to(Keyspace::Meta, meta::replace_command(&bytes, &next))
                    .await?
                {
                    Response::Batch { applied: true, .. } => Ok(Some(next)),
                    // Another change got in first: read the record again.
                    _ => Ok(None),
                }
            };
            let retry_in = match attempt.await {
                Ok(Some(meta)) => {
                    self.learn_members(&meta);
                    self.reconcile_wake.notify_one();
                    tracing::info!(?change, version = meta.version, "membership recorded");
                    return Ok(meta);
                }
                Ok(None) => Duration::ZERO,
                // A write whose outcome is unknown is retried too: the record read again
                // tells whether it applied.
                Err(e @ (Error::Unavailable(_) | Error::NotLeader { .. }))
                    if Instant::now() < deadline =>
                {
                    tracing::info!(?change, "recording the change: {e}; retrying");
                    Duration::from_millis(200)
                }
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "membership change {change:?} not recorded within {within:?}"
                )));
            }
            tokio::time::sleep(retry_in).await;
        }
    }

    /// Records `change` in the meta group, then waits (within `within` in all) until every
    /// group on this node, the meta group and the partitions', has taken it up, as carried out
    /// by the groups' leaders' reconcilers. Idempotent: a change already made changes nothing.
    /// Returns how many partitions are in line with it.
    pub async fn change_membership(
        &self,
        change: &MembershipChange,
        within: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now() + within;
        let meta = self.record_membership(change, within).await?;
        let members = meta.member_ids();
        loop {
            let lagging: Vec<Keyspace> = keyspaces(self.map)
                .filter(|&keyspace| {
                    let desired = self.desired_replicas(keyspace, &members);
                    !self.group_metrics(keyspace).is_some_and(|m| {
                        reconcile::took_up(&m.membership_config, &desired, self.id)
                    })
                })
                .collect();
            if lagging.is_empty() {
                let done = usize::from(self.map.partitions());
                tracing::info!(?change, partitions = done, "membership changed");
                return Ok(done);
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "membership change {change:?} recorded, but {} groups have not taken it up \
                     within {within:?}; the reconcilers go on with it",
                    lagging.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Remembers the addresses of `meta`'s members, so requests can be forwarded to them.
    pub(crate) fn learn_members(&self, meta: &ClusterMeta) {
        if let Ok(mut members) = self.members.write() {
            for (id, addr) in &meta.members {
                members.insert(*id, Node::new(addr.clone()));
            }
        }
    }

    /// Whether [`RaftNode::shutdown`] was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Stops the reconciler and every group. The node serves nothing afterwards.
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.reconcile_wake.notify_one();
        for group in self.router.drain() {
            if let Err(e) = group.raft().shutdown().await {
                tracing::warn!(node = self.id, error = %e, "raft group did not stop cleanly");
            }
        }
    }
}

/// Every keyspace of a cluster of `map`'s partitions: the meta group's, then each partition's.
fn keyspaces(map: PartitionMap) -> impl Iterator<Item = Keyspace> {
    std::iter::once(Keyspace::Meta).chain(map.all().map(Keyspace::Partition))
}

/// The gRPC address of each of `members`.
fn addrs(members: &BTreeMap<NodeId, Node>) -> BTreeMap<NodeId, String> {
    members
        .iter()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect()
}

/// The one value a linearizable read of one key returned.
pub(crate) fn single_value(mut values: Vec<Option<Vec<u8>>>) -> Result<Option<Vec<u8>>> {
    match (values.pop(), values.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(Error::Internal(
            "the leader answered a read with the wrong count".into(),
        )),
    }
}

/// The record a linearizable read of [`CLUSTER_KEY`] returned, with its stored bytes;
/// [`Error::Unavailable`] until a bootstrapped cluster recorded itself.
fn record_of(values: Vec<Option<Vec<u8>>>) -> Result<(Vec<u8>, ClusterMeta)> {
    let bytes = single_value(values)?
        .ok_or_else(|| Error::Unavailable("the cluster is not recorded yet; retry".into()))?;
    let meta = decode_meta(&bytes)?;
    Ok((bytes, meta))
}

fn decode_meta(bytes: &[u8]) -> Result<ClusterMeta> {
    ClusterMeta::decode(bytes)
        .map_err(|e| Error::Internal(format!("the meta group's record is damaged: {e}")))
}

fn raft_storage(e: openraft::StorageError<NodeId>) -> Error {
    Error::Internal(format!("raft storage: {e}"))
}
