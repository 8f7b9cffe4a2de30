//! [`RaftNode`]: every partition group hosted by one node. It opens a log store and a state
//! machine per partition over the node's engine, starts an openraft instance for each, registers
//! them with the [`Router`] the gRPC [`RaftService`] serves, bootstraps a new cluster
//! idempotently, and offers the request path: proposals and linearizable reads served by the
//! partition's leader, this node or the one it forwards them to ([`forward`]), read barriers
//! (a read index confirmed by a quorum) and local reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{Config, Raft, RaftMetrics, SnapshotPolicy};
use strata_engine::Db;
use strata_proto::auth::BearerToken;
use tokio::time::Instant;

use crate::partition::{
    AllNodes, PartitionId, PartitionMap, Placement, data_key, data_range, group_of, user_key,
};
use crate::raft::forward::{self, ForwardError, ForwardRpc};
use crate::raft::group::Group;
use crate::raft::log_store::LogStore;
use crate::raft::membership::{self, MembershipChange};
use crate::raft::network::{GroupNetwork, PeerConnector, Peers, RaftPeer};
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
    /// [`Group`](crate::raft::group::Group)) for half the minimum election timeout after each
    /// quorum confirmation, rather than confirming for every batch of reads. It assumes that
    /// the nodes' clocks advance at the same rate to within that margin (one machine's
    /// monotonic clock, or NTP-disciplined hosts).
    pub lease_reads: bool,
    /// The access token the nodes' gRPC listeners require (`--token`), sent with every Raft
    /// RPC; `None` when they require none.
    pub token: Option<String>,
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

/// The Raft side of one node: all its partition groups.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    db: Arc<Db>,
    map: PartitionMap,
    /// Every node this node knows the address of: the configured members and the nodes added
    /// since (the groups' memberships carry the addresses too).
    members: RwLock<BTreeMap<NodeId, Node>>,
    placement: Arc<dyn Placement>,
    router: Router,
    peers: Peers,
    request_timeout: Duration,
    /// How long a request waits for a leaderless partition to elect one.
    leader_wait: Duration,
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
        );
        let router = Router::default();
        let placement: Arc<dyn Placement> = Arc::new(AllNodes);
        let member_ids: BTreeSet<NodeId> = config.members.keys().copied().collect();
        let read_lease = if config.lease_reads {
            config.election_timeout.0 / 2
        } else {
            Duration::ZERO
        };
        for partition in config.partitions.all() {
            if !placement
                .replicas(partition, &member_ids)
                .contains(&config.id)
            {
                continue;
            }
            let group = group_of(partition);
            let log = LogStore::open(Arc::clone(&db), group).map_err(raft_storage)?;
            let sm = StateMachine::new(Arc::clone(&db), partition);
            let network = GroupNetwork::new(group, peers.clone());
            let raft = Raft::new(config.id, Arc::clone(&raft_config), network, log, sm)
                .await
                .map_err(|e| Error::Internal(format!("starting raft group {group}: {e}")))?;
            router.insert(group, Group::new(raft, partition, read_lease));
        }
        tracing::info!(
            node = config.id,
            partitions = config.partitions.partitions(),
            "raft node started"
        );
        Ok(Arc::new(RaftNode {
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
        }))
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
    /// the same member list.
    pub async fn bootstrap(&self) -> Result<()> {
        let members = self.members();
        let ids: BTreeSet<NodeId> = members.keys().copied().collect();
        for partition in self.map.all() {
            let Some(group) = self.router.get(group_of(partition)) else {
                continue;
            };
            let replicas = self.placement.replicas(partition, &ids);
            let nodes: BTreeMap<NodeId, Node> = members
                .iter()
                .filter(|(id, _)| replicas.contains(id))
                .map(|(id, n)| (*id, n.clone()))
                .collect();
            match group.raft().initialize(nodes).await {
                Ok(()) => {
                    // Spread the first leaders: partition p's first election is started at
                    // once by its p-th replica (ids in order), before any election timer
                    // fires. Left alone, every node campaigns in term 1 and the highest id
                    // wins them all (openraft orders equal-term votes by node id), so one node
                    // would lead every partition and do all the leaders' work.
                    let first_leader = replicas
                        .iter()
                        .nth(usize::from(partition) % replicas.len().max(1));
                    if first_leader == Some(&self.id)
                        && let Err(e) = group.raft().trigger().elect().await
                    {
                        tracing::debug!(partition, "first election not started: {e}");
                    }
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                    tracing::debug!(partition, "group already initialized");
                }
                Err(e) => {
                    return Err(Error::Internal(format!(
                        "bootstrapping partition {partition}: {e}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn group(&self, partition: PartitionId) -> Result<Arc<Group>> {
        self.router
            .get(group_of(partition))
            .ok_or_else(|| Error::Unavailable(format!("partition {partition} is not on this node")))
    }

    /// The leader of `partition` to send an attempt to: `hint` (from a refusal) if given, else
    /// the leader this node knows of other than `avoid`, waiting for one to be elected for up to
    /// the leader wait (within `deadline`). Leaderless: [`Error::Unavailable`], retryable.
    async fn target(
        &self,
        partition: PartitionId,
        group: &Arc<Group>,
        hint: Option<(NodeId, String)>,
        avoid: Option<NodeId>,
        deadline: Instant,
    ) -> Result<Target> {
        let (id, addr) = match hint {
            Some((id, addr)) if Some(id) != avoid => (id, Some(addr)),
            _ => {
                let wait_until = deadline.min(Instant::now() + self.leader_wait);
                let wait = wait_until.saturating_duration_since(Instant::now());
                let found = group
                    .raft()
                    .wait(Some(wait))
                    .metrics(
                        // A leader the membership no longer names (a removed node that led
                        // until its removal) is no leader to send to: wait for the next one.
                        |m| {
                            m.current_leader.is_some_and(|l| {
                                Some(l) != avoid
                                    && (m.membership_config.membership().get_node(&l).is_some()
                                        || l == self.id)
                            })
                        },
                        "a leader",
                    )
                    .await;
                let Ok(m) = found else {
                    return Err(Error::Unavailable(format!(
                        "partition {partition} has no leader; retry"
                    )));
                };
                let Some(id) = m.current_leader else {
                    return Err(Error::Unavailable(format!(
                        "partition {partition} has no leader; retry"
                    )));
                };
                (id, self.node_addr(&m, id))
            }
        };
        if id == self.id {
            return Ok(Target::Local(Arc::clone(group)));
        }
        let addr = addr.ok_or_else(|| {
            Error::Unavailable(format!("partition {partition}: leader {id} has no address"))
        })?;
        let client = self
            .peers
            .client(&addr)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Target::Remote(id, Box::new(client)))
    }

    /// Runs `attempt` against `partition`'s leader, here or forwarded, within the request
    /// timeout. An attempt refused with certainty (the target does not lead, or could not be
    /// reached at all) is retried once, on the leader the refusal names or another one. A write
    /// (`is_write`) that may have happened is never retried and is reported as an unknown
    /// outcome; a read is retried like a refusal.
    async fn route<T, F, Fut>(
        &self,
        partition: PartitionId,
        is_write: bool,
        attempt: F,
    ) -> Result<T>
    where
        F: Fn(Target) -> Fut,
        Fut: Future<Output = std::result::Result<T, ForwardError>>,
    {
        let group = self.group(partition)?;
        let deadline = Instant::now() + self.request_timeout;
        let (mut hint, mut avoid) = (None, None);
        let mut last = None;
        for retry in [false, true] {
            let target = self
                .target(partition, &group, hint.take(), avoid, deadline)
                .await?;
            let target_id = match &target {
                Target::Local(_) => self.id,
                Target::Remote(id, _) => *id,
            };
            let outcome = match tokio::time::timeout_at(deadline, attempt(target)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ForwardError::Unknown(format!(
                    "partition {partition}: no reply from node {target_id} within {:?}",
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
            tracing::debug!(partition, node = target_id, error = ?e, "retrying on another leader");
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
        self.route(partition, true, |target| {
            let cmd = cmd.clone();
            async move {
                match target {
                    Target::Local(group) => group.write(cmd).await,
                    Target::Remote(_, client) => {
                        forward::call(*client, ForwardRpc::Write, partition, &cmd).await
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
        self.route(partition, false, |target| {
            let keys = keys.clone();
            let db = Arc::clone(&self.db);
            async move {
                match target {
                    Target::Local(group) => forward::leader_read(&group, &db, keys).await,
                    Target::Remote(_, client) => {
                        forward::call(*client, ForwardRpc::Read, partition, &keys).await
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
        let index: Option<u64> = self
            .route(partition, false, |target| async move {
                match target {
                    Target::Local(group) => group.read_index().await,
                    Target::Remote(_, client) => {
                        forward::call(*client, ForwardRpc::ReadIndex, partition, &()).await
                    }
                }
            })
            .await?;
        self.group(partition)?
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
        self.group(partition)
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
        Some(
            self.group(partition)
                .ok()?
                .raft()
                .metrics()
                .borrow()
                .clone(),
        )
    }

    /// Role, term, leader, commit and applied index, log size and replication lag of every
    /// partition group on this node, and the cluster's members as its groups know them.
    pub fn status(&self) -> ClusterStatus {
        let metrics: Vec<_> = self
            .map
            .all()
            .filter_map(|p| Some((p, self.metrics(p)?)))
            .collect();
        // The members as the groups know them (nodes added or removed since this node started
        // included): the first group's membership, else the configured members.
        let members: BTreeMap<NodeId, String> = metrics
            .first()
            .map(|(_, m)| {
                m.membership_config
                    .nodes()
                    .map(|(id, n)| (*id, n.addr.clone()))
                    .collect::<BTreeMap<_, _>>()
            })
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                self.members()
                    .iter()
                    .map(|(id, n)| (*id, n.addr.clone()))
                    .collect()
            });
        ClusterStatus {
            node: self.id,
            members,
            partitions: metrics
                .iter()
                .map(|(p, m)| {
                    let mut status = PartitionStatus::from_metrics(self.id, *p, m);
                    if let Ok(group) = self.group(*p) {
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

    /// Carries out `change` on every partition group, one after the other, each on its leader
    /// (here or forwarded). Idempotent, so a change cut short by a failure is finished by
    /// running it again; every step is retried for up to `within` while leaders move or another
    /// change is in progress. Returns how many partitions were brought into line.
    pub async fn change_membership(
        &self,
        change: &MembershipChange,
        within: Duration,
    ) -> Result<usize> {
        let deadline = Instant::now() + within;
        let mut done = 0;
        for partition in self.map.all() {
            let group = self.group(partition)?;
            let mut hint = None;
            loop {
                let target = self
                    .target(partition, &group, hint.take(), None, deadline)
                    .await?;
                let outcome = match target {
                    Target::Local(group) => {
                        membership::leader_change(group.raft(), partition, change).await
                    }
                    Target::Remote(id, client) => {
                        let call =
                            forward::call(*client, ForwardRpc::Membership, partition, change);
                        match tokio::time::timeout_at(deadline, call).await {
                            Ok(outcome) => outcome,
                            Err(_) => Err(ForwardError::Unknown(format!(
                                "partition {partition}: no reply from node {id} in time"
                            ))),
                        }
                    }
                };
                let e = match outcome {
                    Ok(()) => break,
                    Err(e) => e,
                };
                if matches!(e, ForwardError::Failed(_)) || Instant::now() >= deadline {
                    return Err(Error::from(e));
                }
                if let ForwardError::NotLeader {
                    leader: Some(leader),
                } = &e
                {
                    hint = Some(leader.clone());
                }
                tracing::info!(partition, error = ?e, "membership change: retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done += 1;
        }
        if let Ok(mut members) = self.members.write() {
            match change {
                MembershipChange::Add { id, addr } => {
                    members.insert(*id, Node::new(addr.clone()));
                }
                MembershipChange::Remove { id } => {
                    members.remove(id);
                }
            }
        }
        tracing::info!(?change, partitions = done, "membership changed");
        Ok(done)
    }

    /// Stops every group. The node serves nothing afterwards.
    pub async fn shutdown(&self) {
        for group in self.router.drain() {
            if let Err(e) = group.raft().shutdown().await {
                tracing::warn!(node = self.id, error = %e, "raft group did not stop cleanly");
            }
        }
    }
}

fn raft_storage(e: openraft::StorageError<NodeId>) -> Error {
    Error::Internal(format!("raft storage: {e}"))
}
