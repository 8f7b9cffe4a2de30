//! Starting and stopping a server: [`Server::bind`] opens the store and binds every listener
//! (so the addresses are known before any request is served), [`Server::serve`] runs the gRPC,
//! Redis and HTTP front ends until the shutdown future resolves, then drains in-flight requests
//! and flushes the store. [`run`] does both and prints the `listening` line.
//!
//! In cluster mode ([`ServerConfig::cluster`]), [`Server::bind`] also starts the node's Raft
//! groups over the store and bootstraps the cluster (a no-op on a restart or once the groups
//! have a leader), requests go through [`RaftKv`], the Raft service shares the gRPC listener,
//! and shutdown stops the groups after the drain and before the flush.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strata_cluster::partition::PartitionMap;
use strata_cluster::raft::kv::RaftKv;
use strata_cluster::raft::node::{RaftNode, RaftNodeConfig};
use strata_cluster::{KvService, LocalKv};
use strata_engine::{Db, Options};
use strata_proto::v1::admin_server::AdminServer;
use strata_proto::v1::kv_server::KvServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ClusterConfig, ServerConfig};
use crate::grpc::{admin::AdminApi, auth_interceptor, kv::KvApi};
use crate::state::{BoundAddrs, Shared};
use crate::tls::TlsMaterial;
use crate::{Error, Result, http, metrics, resp};

/// A server whose store is open and whose listeners are bound, ready to [`serve`](Self::serve).
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    grpc: TcpListener,
    redis: TcpListener,
    http: TcpListener,
    tls: Option<TlsMaterial>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

fn local_addr(l: &TcpListener, what: &'static str, addr: SocketAddr) -> Result<SocketAddr> {
    l.local_addr()
        .map_err(|source| Error::Bind { what, addr, source })
}

/// The listeners of a server, bound but not yet serving.
struct Listeners {
    grpc: TcpListener,
    redis: TcpListener,
    http: TcpListener,
    tls: Option<TlsMaterial>,
    addrs: BoundAddrs,
}

impl Listeners {
    async fn bind(config: &ServerConfig) -> Result<Listeners> {
        let tls = config.tls.as_ref().map(TlsMaterial::load).transpose()?;
        let grpc = bind("gRPC", config.grpc_addr).await?;
        let redis = bind("redis", config.redis_addr).await?;
        let http = bind("HTTP", config.http_addr).await?;
        let addrs = BoundAddrs {
            grpc: local_addr(&grpc, "gRPC", config.grpc_addr)?,
            redis: local_addr(&redis, "redis", config.redis_addr)?,
            http: local_addr(&http, "HTTP", config.http_addr)?,
        };
        Ok(Listeners {
            grpc,
            redis,
            http,
            tls,
            addrs,
        })
    }

    fn into_server(self, shared: Shared) -> Server {
        Server {
            shared: Arc::new(shared),
            grpc: self.grpc,
            redis: self.redis,
            http: self.http,
            tls: self.tls,
        }
    }
}

impl Server {
    /// Opens the store in `config.data_dir` and binds the listeners; in cluster mode also
    /// starts the node's Raft groups and bootstraps the cluster (see [`Self::bind_cluster`]).
    pub async fn bind(config: ServerConfig) -> Result<Server> {
        if let Some(cluster) = config.cluster.clone() {
            return Self::bind_cluster(config, &cluster).await;
        }
        let db = open_store(&config).await?;
        Self::bind_with_service(config, Arc::new(LocalKv::new(db))).await
    }

    /// Binds the listeners in front of an existing key-value service (`config.data_dir` is
    /// then only reported, not opened).
    pub async fn bind_with_service(config: ServerConfig, kv: Arc<dyn KvService>) -> Result<Server> {
        let listeners = Listeners::bind(&config).await?;
        let addrs = listeners.addrs;
        Ok(listeners.into_server(Shared::new(kv, config, addrs)))
    }

    /// Cluster mode: checks `cluster`, binds the listeners, opens the store, starts a Raft
    /// group per partition over it (picking up the Raft state of an earlier run), bootstraps
    /// the cluster with every member (idempotent: a restarted node rejoins with its data) and
    /// serves requests through [`RaftKv`].
    async fn bind_cluster(config: ServerConfig, cluster: &ClusterConfig) -> Result<Server> {
        let members = cluster.members()?;
        let partitions = PartitionMap::new(cluster.partitions)
            .map_err(|e| Error::Config(format!("partitions: {e}")))?;
        // With TLS, the members call each other over it too, checking certificates against
        // the cluster's CA.
        let peer_ca = match &config.tls {
            None => None,
            Some(tls) => {
                let ca = tls.ca.as_deref().ok_or_else(|| {
                    Error::Config(
                        "TLS in cluster mode needs the CA that signed the members' \
                         certificates (--tls-ca, or `ca` under [tls])"
                            .into(),
                    )
                })?;
                Some(crate::tls::load_ca(ca)?)
            }
        };
        let listeners = Listeners::bind(&config).await?;
        let db = open_store(&config).await?;
        let mut members = members;
        let advertised = listeners.addrs.grpc.to_string();
        if cluster.join.is_some() {
            members.insert(cluster.node_id, advertised.clone());
        }
        let mut raft_config = RaftNodeConfig::new(cluster.node_id, members);
        raft_config.partitions = partitions;
        raft_config.snapshot_after_logs = cluster.snapshot_after_logs;
        raft_config.token = config.token.clone();
        raft_config.peer_tls = peer_ca
            .clone()
            .map(|ca_pem| strata_cluster::raft::network::PeerTls { ca_pem });
        let node = RaftNode::start(raft_config, db).await?;
        match &cluster.join {
            Some(seed) => {
                if listeners.addrs.grpc.ip().is_unspecified() {
                    tracing::warn!(
                        addr = %advertised,
                        "joining with an unspecified gRPC address: other nodes need a reachable \
                         one (bind --grpc to this host's address)"
                    );
                }
                tokio::spawn(join_cluster(
                    seed.clone(),
                    cluster.node_id,
                    advertised,
                    config.token.clone(),
                    peer_ca,
                ));
            }
            None => {
                if let Err(e) = node.bootstrap().await {
                    node.shutdown().await;
                    return Err(e.into());
                }
            }
        }
        tracing::info!(
            node = cluster.node_id,
            partitions = cluster.partitions,
            "cluster node started"
        );
        let kv: Arc<dyn KvService> = Arc::new(RaftKv::new(Arc::clone(&node)));
        let addrs = listeners.addrs;
        Ok(listeners.into_server(Shared::new(kv, config, addrs).with_cluster(node)))
    }

    /// Where the listeners are bound.
    pub fn addrs(&self) -> BoundAddrs {
        self.shared.addrs
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests finish
    /// (for at most `drain_timeout_secs`), flushes the store and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server {
            shared,
            grpc,
            redis,
            http,
            tls,
        } = self;
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        let prometheus = metrics::init();
        let config = &shared.config;
        tracing::info!(addrs = %shared.addrs, "serving");

        let interceptor = auth_interceptor(shared.token.clone());
        let max_msg = config.limits.max_grpc_message_bytes;
        let max_connections = config.max_connections;
        let kv_svc = tonic::service::interceptor::InterceptedService::new(
            KvServer::new(KvApi::new(Arc::clone(&shared.kv)))
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
            interceptor.clone(),
        );
        let admin_svc = tonic::service::interceptor::InterceptedService::new(
            AdminServer::new(AdminApi::new(Arc::clone(&shared))).max_decoding_message_size(max_msg),
            interceptor.clone(),
        );
        // Peers send the same token (RaftNodeConfig::token): without it here, anyone reaching
        // the port could write through the Forward RPC or disrupt elections.
        let raft_svc = shared.cluster.as_ref().map(|node| {
            tonic::service::interceptor::InterceptedService::new(
                node.service().into_server(),
                interceptor,
            )
        });
        let mut builder = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(config.grpc_concurrency_per_connection.max(1))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(t) = &tls {
            builder = builder.tls_config(
                tonic::transport::ServerTlsConfig::new().identity(t.identity.clone()),
            )?;
        }
        let grpc_task = {
            let cancel = cancel.clone();
            let router = builder
                .add_optional_service(raft_svc)
                .add_service(kv_svc)
                .add_service(admin_svc);
            tokio::spawn(async move {
                router
                    .serve_with_incoming_shutdown(
                        // TCP_NODELAY on every connection: without it, Nagle's algorithm held
                        // replies back for a delayed ACK, and 2-3% of requests took 40 ms more.
                        crate::listener::incoming(grpc, "gRPC", max_connections),
                        cancel.cancelled_owned(),
                    )
                    .await
            })
        };

        let tracker = TaskTracker::new();
        let resp_task = tokio::spawn(resp::serve(
            redis,
            Arc::clone(&shared),
            tls.map(|t| t.acceptor),
            cancel.clone(),
            tracker.clone(),
        ));

        let http_task = {
            let app = http::router(Arc::clone(&shared), prometheus);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                axum::serve(http, app)
                    .with_graceful_shutdown(cancel.cancelled_owned())
                    .await
            })
        };

        let drained = async {
            let grpc_res = grpc_task.await;
            let _ = resp_task.await;
            tracker.close();
            tracker.wait().await;
            let http_res = http_task.await;
            (grpc_res, http_res)
        };
        tokio::pin!(drained);
        let drain_limit = Duration::from_secs(config.drain_timeout_secs);
        let outcome = tokio::select! {
            r = &mut drained => Some(r),
            () = async { cancel.cancelled().await; tokio::time::sleep(drain_limit).await } => None,
        };
        match outcome {
            Some((grpc_res, http_res)) => {
                grpc_res??;
                if let Err(e) = http_res? {
                    tracing::warn!("admin HTTP server failed: {e}");
                }
            }
            None => tracing::warn!("in-flight requests did not finish in {drain_limit:?}"),
        }
        if let Some(node) = &shared.cluster {
            tracing::info!("stopping the raft groups");
            node.shutdown().await;
        }
        tracing::info!("flushing the store");
        shared.kv.flush().await?;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Opens the store in `config.data_dir` on the blocking pool, with room for the cluster's
/// partition prefix in front of user keys of the full length.
async fn open_store(config: &ServerConfig) -> Result<Arc<Db>> {
    let dir = config.data_dir.clone();
    let opts = Options {
        key_prefix_room: strata_cluster::partition::DATA_PREFIX_LEN,
        ..Options::default()
    };
    let db = tokio::task::spawn_blocking(move || Db::open(dir, opts)).await??;
    Ok(Arc::new(db))
}

/// Binds every listener, prints `listening grpc=ADDR redis=ADDR http=ADDR` on stdout once they
/// are all bound, and serves until `shutdown` resolves (see [`Server::serve`]).
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let server = Server::bind(config).await?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", server.addrs());
        let _ = out.flush();
    }
    server.serve(shutdown).await
}

/// How long a joining node keeps asking to be added before it gives up (and logs it).
const JOIN_ATTEMPTS: u32 = 150;

/// Asks the cluster node at `seed` to add this node (`id`, reachable at `addr`) to every
/// partition, retrying every 2 s while the seed is unreachable or the change fails, up to
/// [`JOIN_ATTEMPTS`] times. Sends this node's access token, which a cluster shares, over TLS
/// checked against the cluster's CA when the cluster uses TLS (`ca_pem`). Runs
/// beside the server, which must serve for the new replicas to catch up.
async fn join_cluster(
    seed: String,
    id: u64,
    addr: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
) {
    // The loop below paces the attempts; each is one call with a deadline that outlasts the
    // change.
    let opts = strata_client::ClientOptions {
        request_timeout: strata_client::MEMBERSHIP_TIMEOUT,
        max_retries: 0,
        token,
        route_to_leaders: false,
        tls: ca_pem.map(|ca| strata_client::TlsOptions {
            ca_pem: Some(ca),
            domain: None,
        }),
        ..Default::default()
    };
    for attempt in 1..=JOIN_ATTEMPTS {
        let outcome = async {
            let client = strata_client::Client::connect(&seed, opts.clone()).await?;
            client.add_node(id, &addr).await
        };
        match outcome.await {
            Ok(reply) => {
                tracing::info!(%seed, id, partitions = reply.partitions, "joined the cluster");
                return;
            }
            Err(e) => {
                tracing::warn!(%seed, id, attempt, error = %e, "cannot join the cluster yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    tracing::error!(%seed, id, "gave up joining the cluster; run `strata admin add-node`");
}
