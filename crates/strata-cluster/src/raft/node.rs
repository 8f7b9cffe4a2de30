//! [`RaftNode`]: every partition group hosted by one node. It opens a log store and a state
//! machine per partition over the node's engine, starts an openraft instance for each, registers
//! them with the [`Router`] the gRPC [`RaftService`] serves, bootstraps a new cluster
//! idempotently, and offers the request path: proposals to a partition's leader, linearizable
//! read barriers (read index confirmed by a quorum) and local reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    CheckIsLeaderError, ClientWriteError, ForwardToLeader, InitializeError, RaftError,
};
use openraft::{Config, Raft, RaftMetrics, SnapshotPolicy};
use strata_engine::Db;

use crate::partition::{
    AllNodes, PartitionId, PartitionMap, Placement, data_key, data_range, group_of, user_key,
};
use crate::raft::log_store::LogStore;
use crate::raft::network::{GroupNetwork, Peers};
use crate::raft::service::{RaftService, Router};
use crate::raft::state_machine::StateMachine;
use crate::raft::types::{Command, Node, NodeId, Response, TypeConfig};
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
}

impl RaftNodeConfig {
    /// A configuration with the defaults: 64 partitions, 100 ms heartbeats, 500–1000 ms
    /// elections, snapshots every 10 000 entries.
    pub fn new(id: NodeId, members: BTreeMap<NodeId, String>) -> Self {
        RaftNodeConfig {
            id,
            members,
            partitions: PartitionMap::default(),
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
            snapshot_after_logs: 10_000,
            logs_kept_after_snapshot: 1_000,
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
    members: BTreeMap<NodeId, Node>,
    placement: Arc<dyn Placement>,
    router: Router,
}

impl RaftNode {
    /// Starts a Raft instance for every partition placed on this node, over `db`. Existing Raft
    /// state in `db` (a restart) is picked up; nothing is bootstrapped.
    pub async fn start(config: RaftNodeConfig, db: Arc<Db>) -> Result<Arc<RaftNode>> {
        let raft_config = config.raft_config()?;
        let peers = Peers::default();
        let router = Router::default();
        let placement: Arc<dyn Placement> = Arc::new(AllNodes);
        let member_ids: BTreeSet<NodeId> = config.members.keys().copied().collect();
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
            router.insert(group, raft);
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
            members: config
                .members
                .into_iter()
                .map(|(id, addr)| (id, Node::new(addr)))
                .collect(),
            placement,
            router,
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
        RaftService::new(self.router.clone())
    }

    /// Initializes every group with the configured members, once: on a restart, or on a node
    /// whose groups already heard from a leader, it does nothing. Every member may call it with
    /// the same member list.
    pub async fn bootstrap(&self) -> Result<()> {
        let ids: BTreeSet<NodeId> = self.members.keys().copied().collect();
        for partition in self.map.all() {
            let Some(raft) = self.router.get(group_of(partition)) else {
                continue;
            };
            let replicas = self.placement.replicas(partition, &ids);
            let nodes: BTreeMap<NodeId, Node> = self
                .members
                .iter()
                .filter(|(id, _)| replicas.contains(id))
                .map(|(id, n)| (*id, n.clone()))
                .collect();
            match raft.initialize(nodes).await {
                Ok(()) => {}
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

    fn raft(&self, partition: PartitionId) -> Result<Raft<TypeConfig>> {
        self.router
            .get(group_of(partition))
            .ok_or_else(|| Error::Unavailable(format!("partition {partition} is not on this node")))
    }

    /// Replicates `cmd` through `partition`'s group and returns its outcome once a majority has
    /// it and this node (the leader) has applied it. Not the leader: [`Error::NotLeader`] with
    /// the leader's address (`None` while there is none, which the server should answer as
    /// retryable: gRPC `UNAVAILABLE`, RESP `-TRYAGAIN`). `NotLeader` means the command certainly
    /// was not and will not be applied: openraft answers `ForwardToLeader` only when it refused
    /// the proposal or truncated its uncommitted entry. Any other error leaves the outcome
    /// unknown.
    pub async fn client_write(&self, partition: PartitionId, cmd: Command) -> Result<Response> {
        let raft = self.raft(partition)?;
        match raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader(partition, &f))
            }
            Err(RaftError::APIError(e)) => {
                Err(Error::Internal(format!("partition {partition}: {e}")))
            }
            Err(RaftError::Fatal(e)) => Err(Error::Unavailable(format!(
                "partition {partition} stopped: {e}"
            ))),
        }
    }

    /// Waits until a read of `partition` on this node is linearizable: this node is the leader,
    /// a quorum confirmed it after the read began, and it has applied everything committed
    /// before (openraft's read index). A deposed leader fails here instead of reading stale data.
    pub async fn read_barrier(&self, partition: PartitionId) -> Result<()> {
        let raft = self.raft(partition)?;
        match raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(not_leader(partition, &f))
            }
            Err(RaftError::APIError(e)) => {
                Err(Error::Unavailable(format!("partition {partition}: {e}")))
            }
            Err(RaftError::Fatal(e)) => Err(Error::Unavailable(format!(
                "partition {partition} stopped: {e}"
            ))),
        }
    }

    /// Reads `key` from this node's replica of its partition, as applied so far.
    pub fn read_local(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let partition = self.map.partition_of(key);
        Ok(self.db.get(&data_key(partition, key))?)
    }

    /// The leader of `partition` as this node knows it.
    pub fn leader(&self, partition: PartitionId) -> Option<NodeId> {
        self.raft(partition).ok()?.metrics().borrow().current_leader
    }

    /// The Raft metrics of `partition`'s group on this node (role, term, leader, indexes).
    pub fn metrics(&self, partition: PartitionId) -> Option<RaftMetrics<NodeId, Node>> {
        Some(self.raft(partition).ok()?.metrics().borrow().clone())
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

    /// Stops every group. The node serves nothing afterwards.
    pub async fn shutdown(&self) {
        for raft in self.router.drain() {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(node = self.id, error = %e, "raft group did not stop cleanly");
            }
        }
    }
}

fn not_leader(partition: PartitionId, f: &ForwardToLeader<NodeId, Node>) -> Error {
    match &f.leader_node {
        Some(node) => Error::NotLeader {
            leader: Some(node.addr.clone()),
        },
        None => {
            tracing::debug!(partition, "no leader known");
            Error::NotLeader { leader: None }
        }
    }
}

fn raft_storage(e: openraft::StorageError<NodeId>) -> Error {
    Error::Internal(format!("raft storage: {e}"))
}
