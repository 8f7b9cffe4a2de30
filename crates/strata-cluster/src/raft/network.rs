//! The client side of the Raft transport: [`Peers`], one lazily connected HTTP/2 connection per
//! peer shared by every group on the node ([`Transport`]: h2 driven directly in plaintext, so
//! a call is one socket write; tonic's channel with TLS), and [`GroupNetwork`], the openraft
//! `RaftNetworkFactory` of one group, whose RPCs carry the group id. Every RPC carries the
//! cluster's access token when one is configured ([`BearerToken`]), and travels over TLS when
//! the nodes' gRPC listeners use it ([`PeerTls`]: the peers' certificates are checked against
//! the cluster's CA).
//!
//! Every group's AppendEntries to a peer go through that peer's [`AppendQueue`], which sends
//! those waiting at the same time as one call. An AppendEntries of a replication stream that
//! only passes on a new commit index is answered at once and left to the queue as a commit
//! notice, which the group's next append usually makes redundant (see
//! [`PeerClient::append_entries`]). Requests and replies are openraft's own types
//! encoded with postcard inside the `strata.raft.v1` messages. A peer that cannot be connected
//! to is reported as `Unreachable`, so openraft backs off instead of retrying in a tight loop;
//! every RPC is bounded by openraft's time-to-live for it, so a dead or stopped peer costs a
//! timer, not a stuck task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;

use openraft::LogId;
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
use strata_proto::transport::{Connector, H2Channel, KeepAlive, Transport};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

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

/// A byte stream to a peer made by a [`PeerConnector`]: the transport's own stream type, so a
/// connector's streams go to the HTTP/2 channel as they are.
pub use strata_proto::transport::Io as PeerStream;

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

/// A Raft client to one peer over its shared connection, sending the access token.
pub type RaftPeer = RaftClient<InterceptedService<Transport, BearerToken>>;

/// One connection per peer address, shared by all groups (HTTP/2 multiplexes their RPCs on
/// it), and by the requests this node forwards to leaders; and one
/// [`AppendQueue`] per peer, through which every group sends its AppendEntries. Cheap to
/// clone.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    channels: Arc<RwLock<HashMap<String, Transport>>>,
    appends: Arc<Mutex<HashMap<String, AppendQueue>>>,
    connector: Option<PeerConnector>,
    auth: BearerToken,
    tls: Option<PeerTls>,
}

/// Why a connection to a peer could not be made.
#[derive(Debug, thiserror::Error)]
#[error("bad peer address {addr}: {source}")]
pub struct BadPeerAddress {
    addr: String,
    #[source]
    source: BoxError,
}

/// Any error, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

    /// The connection to `addr` (`host:port`), created on first use; it connects lazily and
    /// reconnects after failures, and a PING checks it every `KEEP_ALIVE_INTERVAL`.
    pub fn channel(&self, addr: &str) -> Result<Transport, BadPeerAddress> {
        if let Ok(map) = self.channels.read()
            && let Some(ch) = map.get(addr)
        {
            return Ok(ch.clone());
        }
        let channel = match &self.tls {
            None => self.plaintext_channel(addr),
            Some(tls) => self.tls_channel(addr, tls),
        }
        .map_err(|source| BadPeerAddress {
            addr: addr.to_string(),
            source,
        })?;
        if let Ok(mut map) = self.channels.write() {
            return Ok(map.entry(addr.to_string()).or_insert(channel).clone());
        }
        Ok(channel)
    }

    /// A plaintext connection to `addr`: h2 driven directly, through the connector if any.
    fn plaintext_channel(&self, addr: &str) -> Result<Transport, BoxError> {
        let uri = format!("http://{addr}").parse()?;
        let keep_alive = KeepAlive {
            interval: KEEP_ALIVE_INTERVAL,
            timeout: KEEP_ALIVE_TIMEOUT,
        };
        let connector = self.connector.as_ref().map(|PeerConnector(connect)| {
            let connect = Arc::clone(connect);
            let target = addr.to_string();
            let connector: Connector = Arc::new(move || connect(target.clone()));
            connector
        });
        let channel = H2Channel::build(&uri, CONNECT_TIMEOUT, connector, Some(keep_alive))?;
        Ok(Transport::Direct(channel))
    }

    /// A TLS connection to `addr`: tonic's channel, checking the peer against the cluster's CA.
    fn tls_channel(&self, addr: &str, tls: &PeerTls) -> Result<Transport, BoxError> {
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem)))?
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
                        async move { stream.await.map(hyper_util::rt::TokioIo::new) }
                    },
                ))
            }
        };
        Ok(Transport::Tonic(channel))
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
            appended: false,
            commit_sent: None,
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
    /// Whether this client has sent an AppendEntries: only a replication stream's client sends
    /// more than one.
    appended: bool,
    /// The highest commit index this client has passed on.
    commit_sent: Option<LogId<NodeId>>,
}

/// A transport failure as a plain error for openraft's error wrappers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

enum Rpc {
    /// An AppendEntries carrying the leader's commit index.
    Append(Option<u64>),
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
                Rpc::Append(commit) => {
                    return appends.call(request.into_inner(), commit, ttl).await;
                }
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
    /// Sends `rpc`, with the commit index it carries bounded by the leader's synced log.
    ///
    /// A replication stream sends each follower an AppendEntries without entries whenever the
    /// group's commit index moves, and waits for its reply before it sends the next entries:
    /// one more round trip per entry, on the path of the next one. Such a commit notice is
    /// answered here at once, as the follower would (the leader learns nothing from the reply
    /// to a heartbeat but that the follower still follows, which the next real call tells it
    /// within a heartbeat interval), and left to the [`AppendQueue`], which drops it if the
    /// group's next append passes the index on first. openraft 0.9 confirms leadership for a
    /// linearizable read with AppendEntries through a client of its own, made for that one
    /// call, and a replication stream sends its first call only once it has one: so a notice
    /// is only ever the second or later AppendEntries of a client, one that raises the commit
    /// index it has passed on and carries no entries. A leadership confirmation always goes to
    /// the follower and back.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        rpc.leader_commit = self.unsynced.commit_bound(rpc.leader_commit);
        let commit = rpc.leader_commit.map(|c| c.index);
        let notice =
            self.appended && rpc.entries.is_empty() && rpc.leader_commit > self.commit_sent;
        self.appended = true;
        self.commit_sent = self.commit_sent.max(rpc.leader_commit);
        if notice && let Ok((_, appends)) = &self.client {
            let payload = encode(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            let request = RaftRequest {
                group: self.group,
                payload,
            };
            appends.notice(request, commit);
            return Ok(AppendEntriesResponse::Success);
        }
        self.call(Rpc::Append(commit), &rpc, &option).await
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on the first broken assumption"
    )]

    use openraft::{CommittedLeaderId, Vote};
    use strata_proto::raft_v1::RaftBatchReply;
    use tonic::Status;

    use super::*;
    use crate::raft::append_batch::batch_reply;
    use crate::raft::test_peer::{self, Appends};

    /// How long the follower takes to answer: longer than any answer from the leader's side.
    const FOLLOWER_DELAY: Duration = Duration::from_secs(1);

    /// A follower on a real loopback socket that records the commit index of every
    /// AppendEntries as it arrives, and accepts it [`FOLLOWER_DELAY`] later.
    #[derive(Default, Clone)]
    struct Follower {
        commits: Arc<Mutex<Vec<Option<u64>>>>,
    }

    impl Follower {
        async fn accept(&self, req: &RaftRequest) -> Result<Vec<u8>, Status> {
            let rpc: AppendEntriesRequest<TypeConfig> =
                decode(&req.payload).map_err(|e| Status::invalid_argument(e.to_string()))?;
            self.commits
                .lock()
                .unwrap()
                .push(rpc.leader_commit.map(|c| c.index));
            tokio::time::sleep(FOLLOWER_DELAY).await;
            let reply: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
                Ok(AppendEntriesResponse::Success);
            encode(&reply).map_err(|e| Status::internal(e.to_string()))
        }

        fn commits(&self) -> Vec<Option<u64>> {
            self.commits.lock().unwrap().clone()
        }

        /// Waits (boundedly) until the follower has received `n` requests.
        async fn await_commits(&self, n: usize) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while self.commits().len() < n && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    impl Appends for Follower {
        async fn append(&self, request: RaftRequest) -> Result<Vec<u8>, Status> {
            self.accept(&request).await
        }

        async fn append_batch(&self, requests: Vec<RaftRequest>) -> Result<RaftBatchReply, Status> {
            let answers = requests.iter().map(|r| self.accept(r));
            let outcomes = futures::future::join_all(answers)
                .await
                .into_iter()
                .map(Some);
            Ok(batch_reply(outcomes))
        }
    }

    /// The follower, and the network of group 1 on a leader that reaches it.
    async fn start() -> (Follower, GroupNetwork, Node) {
        let follower = Follower::default();
        let addr = test_peer::serve(follower.clone()).await.unwrap();
        let network = GroupNetwork::new(1, Peers::default(), UnsyncedTail::default());
        (follower, network, Node::new(addr))
    }

    /// An AppendEntries of node 1's leadership in term 1 without entries, passing on `commit`.
    fn heartbeat(commit: u64) -> AppendEntriesRequest<TypeConfig> {
        let log_id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(1)),
            leader_commit: Some(log_id(commit)),
            entries: Vec::new(),
        }
    }

    /// Sends `rpc` through `client` and returns the reply and whether it came before the
    /// follower could have answered.
    async fn send(
        client: &mut PeerClient,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> (AppendEntriesResponse<NodeId>, bool) {
        let started = std::time::Instant::now();
        let reply = client
            .append_entries(rpc, RPCOption::new(Duration::from_secs(5)))
            .await
            .unwrap();
        (reply, started.elapsed() < FOLLOWER_DELAY)
    }

    #[tokio::test]
    async fn only_a_replication_streams_commit_notices_are_answered_before_the_follower() {
        let (follower, mut network, node) = start().await;
        // A replication stream: its first call is answered by the follower.
        let mut stream = network.new_client(2, &node).await;
        let (reply, early) = send(&mut stream, heartbeat(1)).await;
        assert!(matches!(reply, AppendEntriesResponse::Success) && !early);
        assert_eq!(follower.commits(), [Some(1)]);

        // A later one that only raises the commit index is answered at once, and reaches the
        // follower when nothing has passed the index on within the notice delay.
        let (reply, early) = send(&mut stream, heartbeat(2)).await;
        assert!(matches!(reply, AppendEntriesResponse::Success) && early);
        follower.await_commits(2).await;
        assert_eq!(follower.commits(), [Some(1), Some(2)]);

        // A heartbeat at the same commit index (the leader's periodic one) waits for the
        // follower.
        let (_, early) = send(&mut stream, heartbeat(2)).await;
        assert!(!early);

        // A leadership confirmation, through a client of its own, always waits for the
        // follower, whatever commit index it carries.
        let mut confirmation = network.new_client(2, &node).await;
        let (_, early) = send(&mut confirmation, heartbeat(3)).await;
        assert!(!early);
        assert_eq!(follower.commits(), [Some(1), Some(2), Some(2), Some(3)]);
    }
}
