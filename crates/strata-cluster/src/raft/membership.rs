//! Adding and removing a cluster node in one Raft group.
//!
//! A [`MembershipChange`] is recorded in the meta group first; the reconciler then carries it
//! out on each group's leader with [`leader_change`]: adding a node makes it a learner, waits
//! until the leader believes it has caught up (from the log, or a snapshot when the log was
//! compacted), then promotes it to voter; removing a node takes it out of the group's voters
//! and learners. openraft commits each change through a joint configuration, so a group keeps a
//! quorum throughout. Every step is idempotent (a node already in, or already out, is left
//! alone), so a change interrupted by a crash or a leader change is finished by running it
//! again.

use std::collections::BTreeSet;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft};
use serde::{Deserialize, Serialize};

use crate::partition::Keyspace;
use crate::raft::forward::{ForwardError, leader_of_error};
use crate::raft::types::{Node, NodeId, TypeConfig};

/// A change of the cluster's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add node `id`, reachable at `addr` (its gRPC address), as a voter of every group.
    Add {
        /// The new node's id.
        id: NodeId,
        /// Its gRPC address.
        addr: String,
    },
    /// Remove node `id` from every group.
    Remove {
        /// The node to remove.
        id: NodeId,
    },
}

fn write_error(
    keyspace: Keyspace,
    e: RaftError<NodeId, ClientWriteError<NodeId, Node>>,
) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => leader_of_error(&f),
        // Another change in progress, or a learner that has not caught up yet: try again.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ForwardError::Refused(format!("{keyspace}: {e}"))
        }
        RaftError::Fatal(e) => ForwardError::Unknown(format!("{keyspace} stopped: {e}")),
    }
}

/// Carries out `change` on `raft`, which should lead the group of `keyspace`. Returns once the
/// group's membership includes (or excludes) the node.
pub async fn leader_change(
    raft: &Raft<TypeConfig>,
    keyspace: Keyspace,
    change: &MembershipChange,
) -> Result<(), ForwardError> {
    let membership = raft.metrics().borrow().membership_config.clone();
    let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
    let known: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    match change {
        MembershipChange::Add { id, addr } => {
            if voters.contains(id) {
                return Ok(());
            }
            raft.add_learner(*id, Node::new(addr.clone()), true)
                .await
                .map_err(|e| write_error(keyspace, e))?;
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([*id])), false)
                .await
                .map_err(|e| write_error(keyspace, e))?;
        }
        MembershipChange::Remove { id } => {
            if !known.contains(id) {
                return Ok(());
            }
            if voters.len() == 1 && voters.contains(id) {
                return Err(ForwardError::Failed(format!(
                    "{keyspace}: node {id} is its last voter"
                )));
            }
            if voters.contains(id) {
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([*id])), false)
                    .await
                    .map_err(|e| write_error(keyspace, e))?;
            }
            let learners: BTreeSet<NodeId> = raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .learner_ids()
                .collect();
            if learners.contains(id) {
                raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([*id])), false)
                    .await
                    .map_err(|e| write_error(keyspace, e))?;
            }
        }
    }
    Ok(())
}

/// Completes a joint configuration that `raft` (which should lead the group of `keyspace`)
/// found in its log: a leader that died between the two steps of a change leaves one behind,
/// and its successor does not finish it unasked. Moves to the joint's last configuration.
pub async fn finish_joint(raft: &Raft<TypeConfig>, keyspace: Keyspace) -> Result<(), ForwardError> {
    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::new()), false)
        .await
        .map_err(|e| write_error(keyspace, e))?;
    Ok(())
}
