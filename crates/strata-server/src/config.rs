//! [`ServerConfig`]: everything a server needs to start, with loopback defaults, loadable from
//! TOML (every field optional; unknown fields are refused so typos are caught).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::resp::codec::Limits;
use crate::{Error, Result};

/// Default gRPC address.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:7400";
/// Default Redis-protocol address.
pub const DEFAULT_REDIS_ADDR: &str = "127.0.0.1:6380";
/// Default admin HTTP address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:7480";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// How a server is run. `Default` binds every listener on 127.0.0.1 at the standard ports and
/// keeps its data in `./data`; a port of 0 picks a free port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The store directory (created if missing).
    pub data_dir: PathBuf,
    /// gRPC (KV and Admin services) listen address.
    pub grpc_addr: SocketAddr,
    /// Redis-protocol (RESP2) listen address.
    pub redis_addr: SocketAddr,
    /// Admin HTTP (`/metrics`, `/health`, `/status`) listen address.
    pub http_addr: SocketAddr,
    /// A name for this node in `/status` and `INFO`.
    pub node_id: String,
    /// When set, every gRPC call needs `authorization: Bearer <token>` and every RESP connection
    /// must `AUTH <token>` first.
    pub token: Option<String>,
    /// When set, gRPC and RESP are served over TLS with this certificate.
    pub tls: Option<TlsConfig>,
    /// Most connections open at once on each of the gRPC and Redis ports (on gRPC, peers' Raft
    /// connections count too); further clients wait to be accepted.
    pub max_connections: usize,
    /// Most concurrent gRPC requests per connection.
    pub grpc_concurrency_per_connection: usize,
    /// Seconds a Redis-protocol connection may stay silent before it is closed (0: never).
    pub idle_timeout_secs: u64,
    /// Seconds in-flight requests get to finish at shutdown before the store is flushed anyway.
    pub drain_timeout_secs: u64,
    /// Allow `FLUSHALL` / `FLUSHDB` over the Redis protocol.
    pub allow_flushall: bool,
    /// Request size limits.
    pub limits: LimitsConfig,
    /// Cluster mode: when set, this server is one node of a Raft cluster and serves every
    /// request through it; when absent, it is a single node over its local store.
    pub cluster: Option<ClusterConfig>,
}

/// Default number of partitions of a new cluster.
pub const DEFAULT_PARTITIONS: u16 = 64;

/// Default number of applied log entries after which a partition group snapshots its state and
/// compacts its log (etcd's `--snapshot-count` is the same idea).
pub const DEFAULT_SNAPSHOT_AFTER_LOGS: u64 = 10_000;

/// One member of a cluster: its numeric id and its gRPC address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The member's node id.
    pub id: u64,
    /// Its gRPC address (`host:port`), where the other members reach its Raft service.
    pub addr: String,
}

/// How this server takes part in a cluster (TOML section `[cluster]`).
///
/// ```toml
/// [cluster]
/// node_id = 1
/// partitions = 64
/// snapshot_after_logs = 10000
/// peers = [
///   { id = 1, addr = "127.0.0.1:7401" },
///   { id = 2, addr = "127.0.0.1:7402" },
///   { id = 3, addr = "127.0.0.1:7403" },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id; must be one of `peers`.
    pub node_id: u64,
    /// Every member of the cluster, this node included.
    pub peers: Vec<PeerConfig>,
    /// Number of partitions (Raft groups), a power of two fixed when the cluster is created.
    #[serde(default = "default_partitions")]
    pub partitions: u16,
    /// A node of a running cluster (its gRPC address) to join: this node then bootstraps
    /// nothing, needs no `peers`, and asks that node to add it (`Admin.AddNode`) until it is a
    /// member. Harmless on a restart: the request is idempotent.
    #[serde(default)]
    pub join: Option<String>,
    /// Applied log entries after which each group snapshots its state and compacts its log:
    /// fewer mean shorter logs and more frequent snapshots.
    #[serde(default = "default_snapshot_after_logs")]
    pub snapshot_after_logs: u64,
}

fn default_partitions() -> u16 {
    DEFAULT_PARTITIONS
}

fn default_snapshot_after_logs() -> u64 {
    DEFAULT_SNAPSHOT_AFTER_LOGS
}

impl Default for ClusterConfig {
    /// No node id and no peers yet (to be filled in), default partitions and snapshots.
    fn default() -> Self {
        ClusterConfig {
            node_id: 0,
            peers: Vec::new(),
            partitions: DEFAULT_PARTITIONS,
            join: None,
            snapshot_after_logs: DEFAULT_SNAPSHOT_AFTER_LOGS,
        }
    }
}

impl ClusterConfig {
    /// The members as a map from id to gRPC address, after checking that ids are unique, that
    /// this node is a member and that the partition count is a power of two. A joining node
    /// may list no peers: the cluster tells it its members.
    pub fn members(&self) -> Result<std::collections::BTreeMap<u64, String>> {
        let mut members = std::collections::BTreeMap::new();
        if self.join.is_some() && self.peers.is_empty() {
            return Ok(members);
        }
        for p in &self.peers {
            if p.addr.trim().is_empty() {
                return Err(Error::Config(format!("peer {} has no address", p.id)));
            }
            if members.insert(p.id, p.addr.clone()).is_some() {
                return Err(Error::Config(format!("peer id {} is listed twice", p.id)));
            }
        }
        if !members.contains_key(&self.node_id) {
            return Err(Error::Config(format!(
                "node id {} is not among the peers ({})",
                self.node_id,
                members
                    .keys()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if self.partitions == 0 || !self.partitions.is_power_of_two() {
            return Err(Error::Config(format!(
                "partitions must be a power of two, not {}",
                self.partitions
            )));
        }
        if self.snapshot_after_logs == 0 {
            return Err(Error::Config(
                "snapshot_after_logs must be at least 1".into(),
            ));
        }
        Ok(members)
    }

    /// Parses a `--peers` list: `ID=ADDR` entries separated by commas.
    pub fn parse_peers(list: &str) -> Result<Vec<PeerConfig>> {
        list.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let (id, addr) = entry.split_once('=').ok_or_else(|| {
                    Error::Config(format!("peer {entry:?} is not of the form ID=HOST:PORT"))
                })?;
                let id = id.trim().parse().map_err(|_| {
                    Error::Config(format!("peer {entry:?}: the id must be a number"))
                })?;
                Ok(PeerConfig {
                    id,
                    addr: addr.trim().to_string(),
                })
            })
            .collect()
    }
}

/// Certificate and key for TLS, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// In cluster mode, the CA certificate (PEM) the other members' certificates are checked
    /// against when this node calls them; each member's certificate must name the host of its
    /// gRPC address. Required in cluster mode.
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

/// Limits on the size of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longest RESP bulk string (one argument).
    pub max_bulk_len: usize,
    /// Most arguments in one RESP request.
    pub max_array_len: usize,
    /// Longest RESP inline command or header line.
    pub max_inline_len: usize,
    /// Most bytes of arguments in one RESP request.
    pub max_request_bytes: usize,
    /// Largest gRPC request message.
    pub max_grpc_message_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_bulk_len: l.max_bulk_len,
            max_array_len: l.max_array_len,
            max_inline_len: l.max_inline_len,
            max_request_bytes: l.max_request_bytes,
            max_grpc_message_bytes: 64 * 1024 * 1024,
        }
    }
}

impl LimitsConfig {
    /// The RESP decoder's limits.
    pub fn resp(&self) -> Limits {
        Limits {
            max_bulk_len: self.max_bulk_len,
            max_array_len: self.max_array_len,
            max_inline_len: self.max_inline_len,
            max_request_bytes: self.max_request_bytes,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./data"),
            grpc_addr: addr(DEFAULT_GRPC_ADDR),
            redis_addr: addr(DEFAULT_REDIS_ADDR),
            http_addr: addr(DEFAULT_HTTP_ADDR),
            node_id: "node-1".into(),
            token: None,
            tls: None,
            max_connections: 10_000,
            grpc_concurrency_per_connection: 1024,
            idle_timeout_secs: 300,
            drain_timeout_secs: 10,
            allow_flushall: false,
            limits: LimitsConfig::default(),
            cluster: None,
        }
    }
}

impl ServerConfig {
    /// Parses a TOML document; missing fields take their defaults.
    pub fn from_toml_str(s: &str) -> Result<Self> {
        toml::from_str(s).map_err(|e| Error::Config(e.to_string()))
    }

    /// Reads and parses a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            what: format!("reading config {}", path.display()),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// A config for tests: data in `dir`, every port 0 on loopback.
    pub fn ephemeral(dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerConfig {
            data_dir: dir.into(),
            grpc_addr: any,
            redis_addr: any,
            http_addr: any,
            ..ServerConfig::default()
        }
    }

    /// The idle timeout, `None` when disabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback() {
        let c = ServerConfig::default();
        assert!(c.grpc_addr.ip().is_loopback());
        assert_eq!(c.redis_addr.port(), 6380);
        assert_eq!(c.http_addr.port(), 7480);
        assert_eq!(c.grpc_addr.port(), 7400);
    }

    #[test]
    fn toml_round_trip_and_partial() {
        let c = ServerConfig::from_toml_str(
            "data_dir = \"/tmp/x\"\nredis_addr = \"0.0.0.0:0\"\ntoken = \"s3cret\"\n[limits]\nmax_bulk_len = 10\n",
        )
        .unwrap();
        assert_eq!(c.redis_addr.port(), 0);
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.limits.max_bulk_len, 10);
        assert_eq!(
            c.limits.max_array_len,
            LimitsConfig::default().max_array_len
        );
        let text = toml::to_string(&c).unwrap();
        assert_eq!(ServerConfig::from_toml_str(&text).unwrap(), c);
        assert!(ServerConfig::from_toml_str("bogus = 1").is_err());
    }

    #[test]
    fn cluster_section() {
        let c = ServerConfig::from_toml_str(
            "[cluster]\nnode_id = 2\npeers = [{ id = 1, addr = \"127.0.0.1:7401\" }, \
             { id = 2, addr = \"127.0.0.1:7402\" }]\n",
        )
        .unwrap();
        let cluster = c.cluster.clone().unwrap();
        assert_eq!(cluster.partitions, DEFAULT_PARTITIONS);
        assert_eq!(cluster.members().unwrap()[&2], "127.0.0.1:7402");
        let text = toml::to_string(&c).unwrap();
        assert_eq!(ServerConfig::from_toml_str(&text).unwrap(), c);
        assert!(ServerConfig::default().cluster.is_none());
    }

    #[test]
    fn cluster_checks() {
        let peers = ClusterConfig::parse_peers("1=127.0.0.1:1, 2=127.0.0.1:2,").unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[1].addr, "127.0.0.1:2");
        assert!(ClusterConfig::parse_peers("x=127.0.0.1:1").is_err());
        assert!(ClusterConfig::parse_peers("127.0.0.1:1").is_err());
        let mut c = ClusterConfig {
            node_id: 3,
            peers,
            partitions: 8,
            ..ClusterConfig::default()
        };
        assert!(c.members().is_err(), "node 3 is not a member");
        c.node_id = 1;
        assert!(c.members().is_ok());
        c.partitions = 6;
        assert!(c.members().is_err(), "6 is not a power of two");
        c.partitions = 8;
        c.snapshot_after_logs = 0;
        assert!(c.members().is_err(), "snapshots after 0 entries");
        c.snapshot_after_logs = 20;
        assert!(c.members().is_ok());
        c.peers.push(PeerConfig {
            id: 1,
            addr: "127.0.0.1:3".into(),
        });
        assert!(c.members().is_err(), "duplicate id");
    }
}
