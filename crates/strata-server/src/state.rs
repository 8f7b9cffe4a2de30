//! [`Shared`]: what every front end of one server holds: the key-value service, the config, the
//! token, the bound addresses and a few live counters for `INFO`, `/status` and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use strata_cluster::KvService;
use strata_cluster::raft::node::RaftNode;

use crate::auth::Token;
use crate::config::ServerConfig;

/// The addresses a server's listeners are bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BoundAddrs {
    /// gRPC.
    pub grpc: SocketAddr,
    /// Redis protocol.
    pub redis: SocketAddr,
    /// Admin HTTP.
    pub http: SocketAddr,
}

impl std::fmt::Display for BoundAddrs {
    /// `grpc=ADDR redis=ADDR http=ADDR`, the tail of the `listening` line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "grpc={} redis={} http={}",
            self.grpc, self.redis, self.http
        )
    }
}

/// State shared by every connection of one server.
pub struct Shared {
    /// The key-value service requests go to.
    pub kv: Arc<dyn KvService>,
    /// The configuration the server was started with.
    pub config: ServerConfig,
    /// The access token, when one is configured.
    pub token: Option<Token>,
    /// Where the listeners are bound.
    pub addrs: BoundAddrs,
    /// When the server started.
    pub started: Instant,
    /// Redis-protocol connections open now.
    pub redis_connections: AtomicU64,
    /// Redis-protocol connections accepted since start.
    pub redis_connections_total: AtomicU64,
    /// Redis-protocol commands processed since start.
    pub redis_commands_total: AtomicU64,
    /// In cluster mode, the node's Raft groups (`kv` serves requests through them).
    pub cluster: Option<Arc<RaftNode>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Builds the shared state.
    pub fn new(kv: Arc<dyn KvService>, config: ServerConfig, addrs: BoundAddrs) -> Self {
        let token = config.token.as_deref().map(Token::new);
        Shared {
            kv,
            config,
            token,
            addrs,
            started: Instant::now(),
            redis_connections: AtomicU64::new(0),
            redis_connections_total: AtomicU64::new(0),
            redis_commands_total: AtomicU64::new(0),
            cluster: None,
        }
    }

    /// Marks the server as a cluster node whose requests go through `node`.
    #[must_use]
    pub fn with_cluster(mut self, node: Arc<RaftNode>) -> Self {
        self.cluster = Some(node);
        self
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Redis-protocol connections open now.
    pub fn connections(&self) -> u64 {
        self.redis_connections.load(Ordering::Relaxed)
    }
}
