//! Request forwarding between nodes: what a partition's leader does with an operation a
//! follower forwarded to it (the same code serves the leader's own clients), the
//! [`ForwardError`] it may answer with, and the follower's side of the `Forward`, `ForwardRead`
//! and `ReadIndex` RPCs of `strata.raft.v1`.
//!
//! The errors keep one distinction the client-facing error must not lose: whether the operation
//! certainly did not happen ([`ForwardError::NotLeader`], [`ForwardError::Refused`]) or may
//! have ([`ForwardError::Unknown`]). Only the first may be retried on another node.

use std::sync::Arc;

use openraft::Raft;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strata_engine::Db;
use strata_proto::raft_v1::RaftRequest;
use strata_proto::transport::NotSent;

use crate::partition::Keyspace;
use crate::raft::group::Group;
use crate::raft::network::RaftPeer;
use crate::raft::types::{Command, NodeId, Response, TypeConfig, decode, encode};
use crate::{Error, point_read};

/// Why a node did not serve an operation (forwarded or its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardError {
    /// The node does not lead the partition, and the operation certainly was not and will not
    /// be applied. `leader` is the node's view of the leader: its id and address.
    NotLeader {
        /// The leader the refusing node knows of.
        leader: Option<(NodeId, String)>,
    },
    /// Not served, certainly without effect (the partition is not here, it stopped before the
    /// operation was proposed); retry later.
    Refused(String),
    /// The operation may or may not have been applied (the leader lost its leadership or
    /// stopped after proposing it, the reply was lost, the time ran out).
    Unknown(String),
    /// The request failed in a way retrying will not fix (an engine error, a bug).
    Failed(String),
}

impl ForwardError {
    /// Whether the operation certainly had no effect.
    pub fn certainly_not_applied(&self) -> bool {
        matches!(
            self,
            ForwardError::NotLeader { .. } | ForwardError::Refused(_)
        )
    }
}

impl From<ForwardError> for Error {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::NotLeader {
                leader: Some((_, addr)),
            } => Error::NotLeader { leader: Some(addr) },
            ForwardError::NotLeader { leader: None } => {
                Error::Unavailable("the partition has no leader; retry".into())
            }
            ForwardError::Refused(msg) => Error::Unavailable(msg),
            ForwardError::Unknown(msg) => Error::Unavailable(format!(
                "outcome unknown, the write may have applied: {msg}"
            )),
            ForwardError::Failed(msg) => Error::Internal(msg),
        }
    }
}

/// openraft's refusal naming the leader, as [`ForwardError::NotLeader`].
pub(crate) fn leader_of_error(
    f: &openraft::error::ForwardToLeader<NodeId, crate::raft::types::Node>,
) -> ForwardError {
    ForwardError::NotLeader {
        leader: match (f.leader_id, &f.leader_node) {
            (Some(id), Some(node)) => Some((id, node.addr.clone())),
            _ => None,
        },
    }
}

/// Proposes `cmd` to `raft` (which should lead the group of `keyspace`) and waits until it is
/// committed and applied here. openraft answers `ForwardToLeader` only when it refused the
/// proposal or truncated its uncommitted entry, so that refusal is certain.
pub async fn leader_write(
    raft: &Raft<TypeConfig>,
    keyspace: Keyspace,
    cmd: Command,
) -> Result<Response, ForwardError> {
    match raft.client_write(cmd).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(leader_of_error(&f)),
        Err(RaftError::APIError(e)) => Err(ForwardError::Failed(format!("{keyspace}: {e}"))),
        Err(RaftError::Fatal(e)) => Err(ForwardError::Unknown(format!("{keyspace} stopped: {e}"))),
    }
}

/// openraft's read index: confirms with a quorum that `raft` still leads after the call began
/// and returns the index a replica must have applied to serve a linearizable read. Waits until
/// this node applied it too.
pub async fn leader_read_index(
    raft: &Raft<TypeConfig>,
    keyspace: Keyspace,
) -> Result<Option<u64>, ForwardError> {
    match raft.ensure_linearizable().await {
        Ok(log_id) => Ok(log_id.map(|l| l.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
            Err(leader_of_error(&f))
        }
        Err(RaftError::APIError(e)) => Err(ForwardError::Refused(format!("{keyspace}: {e}"))),
        Err(RaftError::Fatal(e)) => Err(ForwardError::Refused(format!("{keyspace} stopped: {e}"))),
    }
}

/// Linearizable reads of `keys` (of the group's keyspace) on its leader: the (coalesced) read
/// barrier, then the local replica.
pub async fn leader_read(
    group: &Arc<Group>,
    db: &Arc<Db>,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, ForwardError> {
    group.read_index().await?;
    let keyspace = group.keyspace();
    let keys = keys.iter().map(|k| keyspace.key(k)).collect();
    point_read::get_many(db, keys)
        .await
        .map_err(|e| ForwardError::Failed(format!("storage error: {e}")))
}

/// Which forwarding RPC to call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ForwardRpc {
    Write,
    Read,
    ReadIndex,
}

/// Calls `rpc` for the group of `keyspace` on the peer behind `client`. Transport failures are
/// [`ForwardError::Refused`] when the request certainly never reached the peer (the connection
/// was refused) and [`ForwardError::Unknown`] otherwise.
pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
    mut client: RaftPeer,
    rpc: ForwardRpc,
    keyspace: Keyspace,
    req: &Req,
) -> Result<Resp, ForwardError> {
    let payload = encode(req).map_err(|e| ForwardError::Failed(format!("encode: {e}")))?;
    let request = tonic::Request::new(RaftRequest {
        group: keyspace.group(),
        payload,
    });
    let reply = match rpc {
        ForwardRpc::Write => client.forward(request).await,
        ForwardRpc::Read => client.forward_read(request).await,
        ForwardRpc::ReadIndex => client.read_index(request).await,
    };
    let reply = match reply {
        Ok(r) => r.into_inner(),
        Err(status) if never_sent(&status) => {
            return Err(ForwardError::Refused(format!(
                "leader unreachable: {status}"
            )));
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Err(ForwardError::Refused(status.message().to_string()));
        }
        Err(status) => {
            return Err(ForwardError::Unknown(format!(
                "forwarding failed: {status}"
            )));
        }
    };
    decode::<Result<Resp, ForwardError>>(&reply.payload)
        .map_err(|e| ForwardError::Unknown(format!("undecodable reply from the leader: {e}")))?
}

/// Whether a failed call certainly never reached the peer: connecting to it failed.
fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<NotSent>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
            )
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("tcp connect error") || text.contains("error trying to connect") {
            return true;
        }
        source = e.source();
    }
    false
}
