//! # strata-server
//!
//! Strata's network server. Three front ends share one
//! [`KvService`](strata_cluster::KvService) ([`LocalKv`](strata_cluster::LocalKv) over the
//! engine for a single node; [`RaftKv`](strata_cluster::raft::kv::RaftKv) when
//! [`ServerConfig::cluster`] makes the server one node of a Raft cluster, whose Raft service
//! then shares the gRPC listener): the `strata.v1` gRPC KV and Admin services (tonic), the
//! Redis protocol (RESP2, a hand-written codec with size limits, pipelining, `redis-cli` and
//! `redis-benchmark` compatible), and an admin HTTP port (axum) with Prometheus `/metrics`,
//! `/health` and `/status`. Optional TLS (rustls, ring) on gRPC and RESP, an optional access
//! token checked in constant time, connection limits, idle timeouts, and a graceful shutdown
//! that drains in-flight requests and flushes the store.
//!
//! ```no_run
//! # async fn demo() -> strata_server::Result<()> {
//! let config = strata_server::ServerConfig::ephemeral("/tmp/strata-data");
//! let server = strata_server::Server::bind(config).await?;
//! println!("listening {}", server.addrs());
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! # Layout
//!
//! - [`server`]: [`Server::bind`], [`Server::serve`] and [`run`]: start-up, the three listeners,
//!   graceful shutdown.
//! - [`config`]: [`ServerConfig`], loadable from TOML.
//! - [`state`]: [`Shared`](state::Shared) state of one server and [`BoundAddrs`].
//! - [`grpc`]: the KV and Admin services, the token interceptor, error-to-status mapping.
//! - [`resp`]: the Redis protocol: accept loop, [`codec`](resp::codec), connection loop,
//!   replies held until a pipeline's writes are synced ([`pipeline`](resp::pipeline)), runs of
//!   plain GETs and SETs coalesced into one call ([`coalesce`](resp::coalesce)), sessions, glob
//!   matching and one module per command family.
//! - [`http`]: the admin HTTP router.
//! - [`listener`]: the accept loop with a connection limit, shared by gRPC and RESP.
//! - [`metrics`]: request, connection and engine metrics (Prometheus).
//! - [`auth`]: the access token and its constant-time check.
//! - [`tls`]: loading certificates and keys for rustls and tonic.
//! - [`error`]: the [`Error`] enum and [`Result`].

pub mod auth;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod resp;
pub mod server;
pub mod state;
pub mod tls;

pub use config::{ClusterConfig, LimitsConfig, PeerConfig, ServerConfig, TlsConfig};
pub use error::{Error, Result};
pub use server::{Server, run};
pub use state::BoundAddrs;
