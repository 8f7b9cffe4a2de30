//! The server side of the Raft transport: [`RaftService`] implements the `strata.raft.v1.Raft`
//! gRPC service and routes each request by its group id to the node's openraft instance of
//! that group ([`Router`]). It also serves the operations other nodes forward to the leaders
//! here ([`forward`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use openraft::Raft;
use serde::Serialize;
use strata_engine::Db;
use strata_proto::raft_v1::raft_server::{Raft as RaftRpc, RaftServer};
use strata_proto::raft_v1::{RaftBatch, RaftBatchReply, RaftReply, RaftRequest};
use tonic::{Request, Response, Status};

use crate::partition::{GroupId, Keyspace};
use crate::raft::append_batch::{MAX_STRAGGLER_WAIT, batch_reply, join_bounded};
use crate::raft::forward::{self, ForwardError};
use crate::raft::group::Group;
use crate::raft::network::MAX_RAFT_MESSAGE;
use crate::raft::types::{TypeConfig, decode, encode};

/// The node's Raft groups by id. Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct Router {
    groups: Arc<RwLock<HashMap<GroupId, Arc<Group>>>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.groups.read().map(|g| g.len()).unwrap_or(0);
        f.debug_struct("Router").field("groups", &n).finish()
    }
}

impl Router {
    /// Registers `instance` as the node's group `group`.
    pub fn insert(&self, group: GroupId, instance: Arc<Group>) {
        if let Ok(mut g) = self.groups.write() {
            g.insert(group, instance);
        }
    }

    /// The group `group`, if this node hosts it.
    pub fn get(&self, group: GroupId) -> Option<Arc<Group>> {
        self.groups.read().ok()?.get(&group).cloned()
    }

    /// Every group this node hosts.
    pub fn all(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes every group (at shutdown), returning them.
    pub fn drain(&self) -> Vec<Arc<Group>> {
        self.groups
            .write()
            .map(|mut g| g.drain().map(|(_, r)| r).collect())
            .unwrap_or_default()
    }
}

/// The `strata.raft.v1.Raft` gRPC service of one node.
#[derive(Debug, Clone)]
pub struct RaftService {
    router: Router,
    db: Arc<Db>,
}

impl RaftService {
    /// A service routing to `router`'s groups, whose partitions' data is in `db`.
    pub fn new(router: Router, db: Arc<Db>) -> Self {
        RaftService { router, db }
    }

    /// The tonic server to mount on the node's gRPC listener (message limits raised for entry
    /// batches and snapshot chunks).
    pub fn into_server(self) -> RaftServer<RaftService> {
        RaftServer::new(self)
            .max_decoding_message_size(MAX_RAFT_MESSAGE)
            .max_encoding_message_size(MAX_RAFT_MESSAGE)
    }

    fn group(&self, group: GroupId) -> Result<Raft<TypeConfig>, Status> {
        self.router
            .get(group)
            .map(|g| g.raft().clone())
            .ok_or_else(|| Status::not_found(format!("raft group {group} is not on this node")))
    }
}

/// The group of a forwarded request, or the refusal to send back.
fn forwarded(router: &Router, group: GroupId) -> Result<Arc<Group>, ForwardError> {
    let keyspace = Keyspace::of_group(group)
        .ok_or_else(|| ForwardError::Failed(format!("there is no raft group {group}")))?;
    router
        .get(group)
        .ok_or_else(|| ForwardError::Refused(format!("{keyspace} is not on this node")))
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftReply>, Status> {
    let payload = encode(result).map_err(|e| Status::internal(format!("encode reply: {e}")))?;
    Ok(Response::new(RaftReply { payload }))
}

fn bad_payload(e: postcard::Error) -> Status {
    Status::invalid_argument(format!("undecodable raft request: {e}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let raft = self.group(req.group)?;
        let rpc = decode(&req.payload).map_err(bad_payload)?;
        reply(&raft.append_entries(rpc).await)
    }

    async fn append_entries_batch(
        &self,
        request: Request<RaftBatch>,
    ) -> Result<Response<RaftBatchReply>, Status> {
        // Served concurrently: the groups' log appends share one sync. An append still running
        // well after the first is answered (its group busy, say installing a snapshot) is left
        // out rather than holding back the others' replies; its group sends it again.
        let appends = request
            .into_inner()
            .requests
            .into_iter()
            .map(|req| async move {
                let raft = self.group(req.group)?;
                let rpc = decode(&req.payload).map_err(bad_payload)?;
                encode(&raft.append_entries(rpc).await)
                    .map_err(|e| Status::internal(format!("encode reply: {e}")))
            });
        Ok(Response::new(batch_reply(
            join_bounded(appends, MAX_STRAGGLER_WAIT).await,
        )))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        // A campaign has begun: this node's vote may elect another leader, so its own read
        // lease ends before openraft decides.
        if let Some(group) = self.router.get(req.group) {
            group.revoke_lease();
        }
        let raft = self.group(req.group)?;
        let rpc = decode(&req.payload).map_err(bad_payload)?;
        reply(&raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let raft = self.group(req.group)?;
        let rpc = decode(&req.payload).map_err(bad_payload)?;
        reply(&raft.install_snapshot(rpc).await)
    }

    async fn forward(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let cmd = decode(&req.payload).map_err(bad_payload)?;
        let result = match forwarded(&self.router, req.group) {
            Ok(group) => group.write(cmd).await,
            Err(e) => Err(e),
        };
        reply(&result)
    }

    async fn forward_read(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let keys: Vec<Vec<u8>> = decode(&req.payload).map_err(bad_payload)?;
        let result = match forwarded(&self.router, req.group) {
            Ok(group) => forward::leader_read(&group, &self.db, keys).await,
            Err(e) => Err(e),
        };
        reply(&result)
    }

    async fn read_index(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let result = match forwarded(&self.router, req.group) {
            Ok(group) => group.read_index().await,
            Err(e) => Err(e),
        };
        reply(&result)
    }
}
