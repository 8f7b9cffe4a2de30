//! Multi-Raft on openraft: one Raft group per partition and a meta group holding the cluster's
//! membership, all sharing the node's engine and one gRPC connection per peer.
//!
//! - [`types`]: the openraft type configuration, [`Command`](types::Command) and
//!   [`Response`](types::Response).
//! - [`log_store`]: the Raft log, vote and committed id of a group in the engine.
//! - [`unsynced`]: a leader's own entries appended ahead of their sync, and what they hold back.
//! - [`state_machine`]: a group's key range, its applied index and its snapshots.
//! - [`snapshot_codec`]: the byte format of a partition snapshot.
//! - [`forward`]: request forwarding from any node to a partition's leader.
//! - [`group`]: [`Group`](group::Group), one partition group: its openraft instance and the
//!   coalescing of concurrent writes and read barriers on its leader.
//! - [`rounds`]: the node's groups propose their writes in rounds, together.
//! - [`membership`]: adding and removing a node in one group, on its leader.
//! - [`meta`]: the meta group's record of the cluster, [`ClusterMeta`](meta::ClusterMeta).
//! - [`reconcile`]: the task that brings the groups a node leads in line with that record.
//! - [`network`]: the client side of the transport, one channel per peer shared by all groups.
//! - [`append_batch`]: the groups' AppendEntries to one peer, sent together.
//! - [`service`]: the `strata.raft.v1.Raft` gRPC service, routing requests by group id.
//! - [`node`]: [`RaftNode`](node::RaftNode), all the groups of one node and the request path.
//! - [`status`]: [`ClusterStatus`](status::ClusterStatus), a node's view of its groups.
//! - [`kv`]: [`RaftKv`](kv::RaftKv), the cluster's [`KvService`](crate::KvService).

pub mod append_batch;
pub mod forward;
pub mod group;
pub mod kv;
pub mod log_store;
pub mod membership;
pub mod meta;
pub mod network;
pub mod node;
pub mod reconcile;
pub mod rounds;
pub mod service;
pub mod snapshot_codec;
pub mod state_machine;
pub mod status;
#[cfg(test)]
mod test_peer;
pub mod types;
pub mod unsynced;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, also after a panic elsewhere while it was held: the raft modules' mutexes guard
/// values that every update leaves whole (a swap, a push, a take), never half-done.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
