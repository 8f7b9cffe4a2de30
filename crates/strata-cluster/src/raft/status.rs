//! [`ClusterStatus`]: what one node knows of the cluster's members (from the meta group) and of
//! every partition group it hosts (role, term, leader, commit and applied index, log size and,
//! on leaders, each follower's replication lag), for `/status`, `strata admin status` and
//! metrics.

use std::collections::BTreeMap;

use openraft::{RaftMetrics, ServerState};
use serde::Serialize;

use crate::partition::PartitionId;
use crate::raft::types::{Node, NodeId};

/// A node's view of the cluster and of each of its partition groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The node reporting.
    pub node: NodeId,
    /// Every member: id to gRPC address, as the meta group's record on this node says (the
    /// configured members until the record exists here).
    pub members: BTreeMap<NodeId, String>,
    /// The version of the meta group's record applied on this node (`None`: no record yet).
    pub meta_version: Option<u64>,
    /// The leader of the meta group this node knows of.
    pub meta_leader: Option<NodeId>,
    /// The partition groups hosted on this node, by partition.
    pub partitions: Vec<PartitionStatus>,
}

impl ClusterStatus {
    /// How many of the partitions this node leads.
    pub fn leading(&self) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.role == Role::Leader)
            .count()
    }
}

/// A node's role in one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Leads the group.
    Leader,
    /// Follows a leader (or waits for one).
    Follower,
    /// Campaigns for leadership.
    Candidate,
    /// Receives the log without voting.
    Learner,
    /// The group stopped on this node.
    Shutdown,
}

/// One partition group as seen from one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: PartitionId,
    /// This node's role in it.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The commit index: known on the leader (the highest index a quorum of voters matched);
    /// elsewhere `None` (`applied` is a lower bound).
    pub committed: Option<u64>,
    /// The last index applied to this replica.
    pub applied: Option<u64>,
    /// The last index in this node's log.
    pub last_log_index: Option<u64>,
    /// Entries in the log not yet purged behind a snapshot: last log index minus last purged.
    pub log_size: u64,
    /// The last index covered by this node's latest snapshot.
    pub snapshot: Option<u64>,
    /// On the leader: per follower (and learner), its matched index and how many entries it is
    /// behind the leader's last log index. Empty elsewhere.
    pub replication: Vec<FollowerLag>,
    /// The group failed on this node (a storage error): the error.
    pub fatal: Option<String>,
    /// How this node served linearizable reads as the group's leader.
    pub reads: ReadCounts,
}

/// Linearizable reads a node served as a group's leader since the group started there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadCounts {
    /// Reads answered under the read lease, without asking the other nodes.
    pub leased: u64,
    /// Leadership confirmations (a heartbeat round to a quorum), each answering the reads
    /// that waited for it and renewing the lease.
    pub confirmations: u64,
}

/// How far one follower is behind the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowerLag {
    /// The follower.
    pub node: NodeId,
    /// The last index known to be replicated to it.
    pub matched: Option<u64>,
    /// Leader's last log index minus `matched`.
    pub lag: u64,
}

impl PartitionStatus {
    /// The status of `partition` from its group's metrics on `node`.
    pub fn from_metrics(
        node: NodeId,
        partition: PartitionId,
        m: &RaftMetrics<NodeId, Node>,
    ) -> Self {
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let last = m.last_log_index;
        let applied = m.last_applied.map(|l| l.index);
        let purged = m.purged.map(|l| l.index);
        let log_size = match (last, purged) {
            (Some(l), Some(p)) => l.saturating_sub(p),
            (Some(l), None) => l + 1,
            (None, _) => 0,
        };
        let mut replication = Vec::new();
        let mut committed = None;
        if let Some(repl) = &m.replication {
            let lead_last = last.unwrap_or(0);
            for (&id, matched) in repl {
                if id == node {
                    continue;
                }
                let matched = matched.map(|l| l.index);
                replication.push(FollowerLag {
                    node: id,
                    matched,
                    lag: lead_last.saturating_sub(matched.unwrap_or(0))
                        + u64::from(matched.is_none() && last.is_some()),
                });
            }
            // The commit index: the highest index a majority of voters holds (the leader holds
            // its whole log).
            let membership = m.membership_config.membership();
            let mut voters: Vec<Option<u64>> = membership
                .voter_ids()
                .map(|id| {
                    if id == node {
                        last
                    } else {
                        repl.get(&id).copied().flatten().map(|l| l.index)
                    }
                })
                .collect();
            voters.sort_unstable_by(|a, b| b.cmp(a));
            if !voters.is_empty() {
                committed = voters[voters.len() / 2];
            }
        }
        PartitionStatus {
            partition,
            role,
            term: m.current_term,
            leader: m.current_leader,
            committed,
            applied,
            last_log_index: last,
            log_size,
            snapshot: m.snapshot.map(|l| l.index),
            replication,
            fatal: m.running_state.as_ref().err().map(|e| e.to_string()),
            reads: ReadCounts::default(),
        }
    }
}
