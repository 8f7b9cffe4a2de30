//! The reconciler: a task on every node that brings each Raft group the node leads in line with
//! the meta group's record ([`ClusterMeta`]).
//!
//! A membership change is made in two steps. First it is recorded in the meta group (see
//! [`RaftNode::record_membership`]); from then on the record is the cluster's desired state.
//! Then, on every node, this task compares each group it leads with what the record asks of
//! that group (every member for the meta group, the placement's replicas for a partition) and
//! carries out the difference with [`membership::leader_change`]: a missing node is added as a
//! learner, caught up and promoted; a node the record no longer names is removed. Nothing about
//! a change in progress lives anywhere but in the record and the groups' own memberships, so
//! the work resumes after any crash: a group whose leader died is finished by its next leader,
//! and a node that restarts reads the record from its own store.
//!
//! Before acting the task reads the record linearizably, so a node whose replica of the meta
//! group lags never undoes a newer change. A node that leads any group also checks the
//! committed record every [`CONFIRM_EVERY`] passes even when its own replica shows nothing to
//! do: a node removed from the cluster while it was down never receives the meta group's
//! entries again, so its replica would show it a member for ever, and a group it came back to
//! lead would keep it (and, asked through the other members, the record tells it to leave).
//! It also creates the record once, on the first leader of a bootstrapped cluster's meta group.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::{ServerState, StoredMembership};
use tokio::sync::Notify;

use crate::partition::Keyspace;
use crate::raft::group::Group;
use crate::raft::membership::{self, MembershipChange};
use crate::raft::meta::ClusterMeta;
use crate::raft::node::RaftNode;
use crate::raft::types::{Node, NodeId};
use crate::{Error, Result};

/// The longest one step may take: adding a node waits for it to catch up from the log or a
/// snapshot. A step cut short is taken again by a later pass.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Every how many passes a node that leads a group compares it with the committed record even
/// when its own replica of the record shows nothing to do.
const CONFIRM_EVERY: u64 = 10;

/// Runs passes every `interval`, or sooner when `wake` is notified, until the node stops.
pub(crate) async fn run(node: Weak<RaftNode>, wake: Arc<Notify>, interval: Duration) {
    for passes in 1u64.. {
        {
            let Some(node) = node.upgrade() else {
                return;
            };
            if node.is_stopped() {
                return;
            }
            let confirm = passes.is_multiple_of(CONFIRM_EVERY);
            if let Err(e) = pass(&node, confirm).await {
                tracing::debug!(node = node.id(), error = %e, "reconcile pass cut short");
            }
        }
        let _ = tokio::time::timeout(interval, wake.notified()).await;
    }
}

/// One comparison of every group this node leads with the record, and the steps it calls for.
/// With `confirm`, the committed record is read even if this node's replica shows every group
/// in line.
async fn pass(node: &RaftNode, confirm: bool) -> Result<()> {
    let Some(local) = node.local_meta()? else {
        let leads_meta = node
            .group_metrics(Keyspace::Meta)
            .is_some_and(|m| m.state == ServerState::Leader);
        if leads_meta {
            node.create_meta().await?;
        }
        return Ok(());
    };
    node.learn_members(&local);
    let out_of_line = |meta: &ClusterMeta| -> Vec<(Arc<Group>, BTreeSet<NodeId>)> {
        let members = meta.member_ids();
        node.groups()
            .into_iter()
            .filter_map(|group| {
                let m = group.raft().metrics().borrow().clone();
                let desired = node.desired_replicas(group.keyspace(), &members);
                (m.state == ServerState::Leader && !in_line(&m.membership_config, &desired))
                    .then_some((group, desired))
            })
            .collect()
    };
    let leads_a_group = || {
        node.groups()
            .iter()
            .any(|g| g.raft().metrics().borrow().state == ServerState::Leader)
    };
    if out_of_line(&local).is_empty() && !(confirm && leads_a_group()) {
        return Ok(());
    }
    // This replica of the record may lag the meta group's: act on the committed one, asked of
    // the other members when this node's meta group knows no leader.
    let meta = match node.meta().await {
        Ok(meta) => meta,
        Err(Error::Unavailable(_)) => node.meta_via_members(&local).await?,
        Err(e) => return Err(e),
    };
    node.learn_members(&meta);
    let work = out_of_line(&meta);
    futures::future::join_all(
        work.iter()
            .map(|(group, desired)| bring_in_line(group, desired, &meta)),
    )
    .await;
    Ok(())
}

/// Whether a group's membership is exactly `desired`: one configuration (no change under way),
/// those voters, no learners.
fn in_line(membership: &StoredMembership<NodeId, Node>, desired: &BTreeSet<NodeId>) -> bool {
    let m = membership.membership();
    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
    m.get_joint_config().len() == 1 && &voters == desired && m.learner_ids().next().is_none()
}

/// Whether node `me`'s view of a group shows that it has taken up a change to `desired`: the
/// group's target configuration is `desired`, and, unless `me` is leaving it, the change is
/// complete (a leaving node may never hear the last step).
pub(crate) fn took_up(
    membership: &StoredMembership<NodeId, Node>,
    desired: &BTreeSet<NodeId>,
    me: NodeId,
) -> bool {
    let configs = membership.membership().get_joint_config();
    if configs.last() != Some(desired) {
        return false;
    }
    !desired.contains(&me) || in_line(membership, desired)
}

/// Adds the nodes `desired` names that the group lacks, then removes those it has and
/// `desired` does not name: adding first keeps the group's quorum as large as it was.
async fn bring_in_line(group: &Group, desired: &BTreeSet<NodeId>, meta: &ClusterMeta) {
    let keyspace = group.keyspace();
    let membership = group.raft().metrics().borrow().membership_config.clone();
    let m = membership.membership();
    if m.get_joint_config().len() > 1 {
        let step = membership::finish_joint(group.raft(), keyspace);
        match tokio::time::timeout(STEP_TIMEOUT, step).await {
            Ok(Ok(())) => tracing::info!(%keyspace, "finished a joint configuration"),
            Ok(Err(e)) => tracing::info!(%keyspace, error = ?e, "joint configuration left"),
            Err(_) => tracing::info!(%keyspace, "finishing a joint configuration timed out"),
        }
        // The next pass compares the finished configuration with the record.
        return;
    }
    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
    let nodes: BTreeSet<NodeId> = m.nodes().map(|(id, _)| *id).collect();
    let adds = desired.difference(&voters).filter_map(|id| {
        Some(MembershipChange::Add {
            id: *id,
            addr: meta.members.get(id)?.clone(),
        })
    });
    let removes = nodes
        .difference(desired)
        .map(|id| MembershipChange::Remove { id: *id });
    for change in adds.chain(removes).collect::<Vec<_>>() {
        let step = membership::leader_change(group.raft(), keyspace, &change);
        match tokio::time::timeout(STEP_TIMEOUT, step).await {
            Ok(Ok(())) => tracing::info!(%keyspace, ?change, "group in line with the record"),
            Ok(Err(e)) => {
                tracing::info!(%keyspace, ?change, error = ?e, "step not taken; retried later");
                return;
            }
            Err(_) => {
                tracing::info!(%keyspace, ?change, "step timed out; a later pass retries");
                return;
            }
        }
    }
}
