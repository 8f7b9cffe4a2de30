//! The client side of the Raft transport: [`Peers`], one lazily connected tonic channel per
//! peer shared by every group on the node, and [`GroupNetwork`], the openraft
//! `RaftNetworkFactory` of one group, whose RPCs carry the group id. Every RPC carries the
//! cluster's access token when one is configured ([`BearerToken`]), and travels over TLS when
//! the nodes' gRPC listeners use it ([`PeerTls`]: the peers' certificates are checked against
//! the cluster's CA).
//!
//! Every group's AppendEntries to a peer go through that peer's [`AppendQueue`], which sends
//! those waiting at the same time as one call. Requests and replies are openraft's own types
//! encoded with postcard inside the `strata.raft.v1` messages. A peer that cannot be connected
//! to is reported as `Unreachable`, so openraft backs off instead of retrying in a tight loop;
//! every RPC is bounded by openraft's time-to-live for it, so a dead or stopped peer costs a
//! timer, not a stuck task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_proto::auth::BearerToken;
use strata_proto::raft_v1::RaftRequest;
use strata_proto::raft_v1::raft_client::RaftClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::partition::GroupId;
use crate::raft::append_batch::AppendQueue;
use crate::raft::lock;
use crate::raft::types::{Node, NodeId, TypeConfig, decode, encode};
use crate::raft::unsynced::UnsyncedTail;

/// The largest Raft message accepted or sent (entries batches and snapshot chunks).
pub const MAX_RAFT_MESSAGE: usize = 64 << 20;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often an HTTP/2 PING checks a peer connection, busy or idle. The peer's HTTP/2 layer
/// answers it without waiting for any Raft work, so a slow follower does not fail it.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a PING may go unanswered before the connection is dropped and the next RPC makes
/// a new one. A connection whose packets are black-holed (a peer that vanished without a
/// reset, a path cut mid-stream) would otherwise hold every group's RPCs to that peer until
/// they time out, one after the other, long after the network healed.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// A byte stream to a peer made by a [`PeerConnector`].
pub trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerStream for T {}

/// The future a [`PeerConnector`] returns.
pub type PeerConnect = BoxFuture<'static, std::io::Result<Box<dyn PeerStream>>>;

/// Makes the connections to peers instead of tokio's TCP (a simulated network in tests): given
/// a peer's `host:port`, a stream to it.
#[derive(Clone)]
pub struct PeerConnector(Arc<dyn Fn(String) -> PeerConnect + Send + Sync>);

impl PeerConnector {
    /// A connector calling `connect` with the peer's `host:port`.
    pub fn new(connect: impl Fn(String) -> PeerConnect + Send + Sync + 'static) -> Self {
        PeerConnector(Arc::new(connect))
    }
}

impl std::fmt::Debug for PeerConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerConnector")
    }
}

/// How a node checks its peers' TLS certificates: the CA (PEM) that signed them. A peer's
/// certificate must name the host of the address the node reaches it at (an IP address or a
/// DNS name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTls {
    /// The CA certificate(s), PEM.
    pub ca_pem: Vec<u8>,
}

/// A Raft client to one peer over its shared channel, sending the access token.
pub type RaftPeer = RaftClient<InterceptedService<Channel, BearerToken>>;

/// One tonic channel per peer address, shared by all groups (HTTP/2 multiplexes their RPCs on
/// one connection), and by the requests this node forwards to leaders; and one
/// [`AppendQueue`] per peer, through which every group sends its AppendEntries. Cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    channels: Arc<RwLock<HashMap<String, Channel>>>,
    appends: Arc<Mutex<HashMap<String, AppendQueue>>>,
    connector: Option<PeerConnector>,
    auth: BearerToken,
    tls: Option<PeerTls>,
}

/// Why a channel to a peer could not be made.
#[derive(Debug, thiserror::Error)]
#[error("bad peer address {addr}: {source}")]
pub struct BadPeerAddress {
    addr: String,
    #[source]
    source: tonic::transport::Error,
}

impl Peers {
    /// Peers reached through `connector` (`None`: TCP), over TLS checked with `tls` when
    /// given, sent `auth` with every RPC.
    pub fn new(connector: Option<PeerConnector>, auth: BearerToken, tls: Option<PeerTls>) -> Self {
        Peers {
            channels: Arc::default(),
            appends: Arc::default(),
            connector,
            auth,
            tls,
        }
    }

    /// A Raft client to `addr` over its shared channel, with the Raft message limits.
    pub fn client(&self, addr: &str) -> Result<RaftPeer, BadPeerAddress> {
        Ok(
            RaftClient::with_interceptor(self.channel(addr)?, self.auth.clone())
                .max_decoding_message_size(MAX_RAFT_MESSAGE)
                .max_encoding_message_size(MAX_RAFT_MESSAGE),
        )
    }

    /// The queue of AppendEntries to `addr`, started on first use (on the current tokio
    /// runtime), and again if its task has stopped.
    pub fn append_queue(&self, addr: &str) -> Result<AppendQueue, BadPeerAddress> {
        let mut queues = lock(&self.appends);
        if let Some(q) = queues.get(addr)
            && !q.is_closed()
        {
            return Ok(q.clone());
        }
        let queue = AppendQueue::start(self.client(addr)?);
        queues.insert(addr.to_string(), queue.clone());
        Ok(queue)
    }

    /// The channel to `addr` (`host:port`), created on first use; it connects lazily and
    /// reconnects after failures.
    pub fn channel(&self, addr: &str) -> Result<Channel, BadPeerAddress> {
        if let Ok(map) = self.channels.read()
            && let Some(ch) = map.get(addr)
        {
            return Ok(ch.clone());
        }
        let bad = |source| BadPeerAddress {
            addr: addr.to_string(),
            source,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(bad)?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem)),
                )
                .map_err(bad)?;
        }
        let endpoint = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = match &self.connector {
            None => endpoint.connect_lazy(),
            Some(PeerConnector(connect)) => {
                let connect = Arc::clone(connect);
                let target = addr.to_string();
                endpoint.connect_with_connector_lazy(tower::service_fn(
                    move |_: tonic::transport::Uri| {
                        let stream = connect(target.clone());
                        async move { stream.await.map(TokioIo::new) }
                    },
                ))
            }
        };
        if let Ok(mut map) = self.channels.write() {
            return Ok(map.entry(addr.to_string()).or_insert(channel).clone());
        }
        Ok(channel)
    }
}

/// The openraft network factory of one group.
#[derive(Debug, Clone)]
pub struct GroupNetwork {
    group: GroupId,
    peers: Peers,
    unsynced: UnsyncedTail,
}

impl GroupNetwork {
    /// The network of `group` over the node's shared `peers`, telling followers of no commit
    /// beyond what `unsynced` (the group's log) holds back.
    pub fn new(group: GroupId, peers: Peers, unsynced: UnsyncedTail) -> Self {
        GroupNetwork {
            group,
            peers,
            unsynced,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        let client = self
            .peers
            .client(&node.addr)
            .and_then(|c| Ok((c, self.peers.append_queue(&node.addr)?)));
        if let Err(e) = &client {
            tracing::warn!(target, error = %e, "cannot reach peer");
        }
        PeerClient {
            group: self.group,
            target,
            node: node.clone(),
            client: client.map_err(|e| e.to_string()),
            unsynced: self.unsynced.clone(),
        }
    }
}

/// The connection of one group to one peer: the shared channel, and the shared queue its
/// AppendEntries go through.
#[derive(Debug)]
pub struct PeerClient {
    group: GroupId,
    target: NodeId,
    node: Node,
    client: Result<(RaftPeer, AppendQueue), String>,
    unsynced: UnsyncedTail,
}

/// A transport failure as a plain error for openraft's error wrappers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let (client, appends) = match &mut self.client {
            Ok((client, appends)) => (client, appends),
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                    e.clone(),
                ))));
            }
        };
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let request = tonic::Request::new(RaftRequest {
            group: self.group,
            payload,
        });
        let ttl = option.hard_ttl();
        let fut = async {
            let reply = match rpc {
                Rpc::Append => return appends.call(request.into_inner(), ttl).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::Snapshot => client.install_snapshot(request).await,
            };
            reply.map(|r| r.into_inner().payload)
        };
        // Only a peer that cannot be connected to is `Unreachable` (openraft then backs off
        // for a while). A reply slower than the time-to-live is a `Network` error that is
        // retried at once: under load a follower's synced append can outlast one heartbeat
        // interval, and backing off then stalled replication and lost leaders.
        let payload = match tokio::time::timeout(ttl, fut).await {
            Err(_) => {
                return Err(RPCError::Network(NetworkError::new(&TransportError(
                    format!("no reply from node {} within {ttl:?}", self.target),
                ))));
            }
            Ok(Err(status)) => {
                let err = TransportError(format!("node {}: {status}", self.target));
                return Err(match status.code() {
                    tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&err)),
                    _ => RPCError::Network(NetworkError::new(&err)),
                });
            }
            Ok(Ok(payload)) => payload,
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        rpc.leader_commit = self.unsynced.commit_bound(rpc.leader_commit);
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
