//! `strata server`: its flags, how they override a TOML config file, and running the server on a
//! multi-threaded runtime until Ctrl-C or SIGTERM.
//!
//! With `--peers` (or a `[cluster]` section in the config file) the server is one node of a Raft
//! cluster: `--node-id` is then its numeric id, `--partitions` the partition count, and its
//! gRPC listener carries the Raft traffic too.
//!
//! Precedence, lowest first: [`ServerConfig::default`], the `--config` file, then each flag that
//! was given. Standard output carries only the `listening grpc=ADDR redis=ADDR http=ADDR` line
//! (printed by [`strata_server::run`] once every listener is bound); logs go to standard error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use strata_server::{ClusterConfig, ServerConfig, TlsConfig};
use tokio::signal::unix::{SignalKind, signal};

/// Flags of `strata server`. Each one left out keeps the config file's value (or the default).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// TOML config file (fields of `ServerConfig`); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// gRPC listen address [default: 127.0.0.1:7400; port 0 picks a free port].
    #[arg(long, value_name = "ADDR")]
    pub grpc: Option<SocketAddr>,

    /// Redis-protocol (RESP2) listen address [default: 127.0.0.1:6380].
    #[arg(long, value_name = "ADDR")]
    pub redis: Option<SocketAddr>,

    /// Admin HTTP listen address (/metrics, /health, /status) [default: 127.0.0.1:7480].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// Access token every client must present (gRPC `authorization: Bearer`, RESP `AUTH`).
    #[arg(long, env = "STRATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// TLS certificate chain (PEM) for gRPC and RESP; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) matching --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// In cluster mode with TLS: the CA certificate (PEM) the other members' certificates are
    /// checked against (each must name the host of the member's --grpc address).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,

    /// Allow FLUSHALL / FLUSHDB over the Redis protocol.
    #[arg(long)]
    pub allow_flushall: bool,

    /// Most connections open at once on each of the gRPC and Redis ports.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Seconds a silent Redis-protocol connection stays open (0: forever).
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,

    /// This node's name in /status and INFO; in cluster mode (--peers or a `[cluster]`
    /// section) its numeric id, one of the peers' ids.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,

    /// Cluster mode: every member's id and gRPC address, this node's own included, as
    /// `ID=HOST:PORT,ID=HOST:PORT,...`. Needs --node-id. Without it (and without a `[cluster]`
    /// section in the config file) the server is a single node.
    #[arg(long, value_name = "ID=ADDR,...", requires = "node_id")]
    pub peers: Option<String>,

    /// Cluster mode: the number of partitions, a power of two fixed when the cluster is
    /// created [default: 64].
    #[arg(long, value_name = "P")]
    pub partitions: Option<u16>,

    /// Cluster mode: applied log entries after which each partition group snapshots its state
    /// and compacts its log [default: 10000].
    #[arg(long, value_name = "N")]
    pub snapshot_after_logs: Option<u64>,

    /// Join the running cluster that the node at this gRPC address belongs to, as node
    /// --node-id: the node bootstraps nothing and asks to be added to every partition
    /// (`strata admin add-node` does the same from outside). --partitions must match the
    /// cluster's.
    #[arg(
        long,
        value_name = "HOST:PORT",
        requires = "node_id",
        conflicts_with = "peers"
    )]
    pub join: Option<String>,
}

impl ServerArgs {
    /// The configuration to run: the file's (or the defaults), then the flags; `data` is the
    /// `--data` directory when it was given on the command line.
    pub fn config(&self, data: Option<&Path>) -> anyhow::Result<ServerConfig> {
        let mut c = match &self.config {
            Some(path) => ServerConfig::load(path)
                .with_context(|| format!("cannot load the config file {}", path.display()))?,
            None => ServerConfig::default(),
        };
        if let Some(d) = data {
            c.data_dir = d.to_path_buf();
        }
        if let Some(a) = self.grpc {
            c.grpc_addr = a;
        }
        if let Some(a) = self.redis {
            c.redis_addr = a;
        }
        if let Some(a) = self.http {
            c.http_addr = a;
        }
        if let Some(t) = &self.token {
            c.token = Some(t.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            c.tls = Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                ca: self.tls_ca.clone(),
            });
        }
        if self.allow_flushall {
            c.allow_flushall = true;
        }
        if let Some(n) = self.max_connections {
            c.max_connections = n;
        }
        if let Some(s) = self.idle_timeout_secs {
            c.idle_timeout_secs = s;
        }
        if let Some(n) = &self.node_id {
            c.node_id = n.clone();
        }
        self.apply_cluster(&mut c)?;
        if c.token.as_deref() == Some("") {
            anyhow::bail!("the access token is empty (unset STRATA_TOKEN or give a real one)");
        }
        Ok(c)
    }

    /// Applies --peers, --partitions and a numeric --node-id to the `[cluster]` section,
    /// creating it when --peers is given. In cluster mode the node's gRPC address defaults to
    /// its own entry in the peer list, and its name to its id.
    fn apply_cluster(&self, c: &mut ServerConfig) -> anyhow::Result<()> {
        if let Some(list) = &self.peers {
            let peers = ClusterConfig::parse_peers(list)?;
            let cluster = c.cluster.get_or_insert_with(ClusterConfig::default);
            cluster.peers = peers;
        }
        if let Some(seed) = &self.join {
            let cluster = c.cluster.get_or_insert_with(ClusterConfig::default);
            cluster.join = Some(seed.clone());
        }
        let Some(cluster) = &mut c.cluster else {
            if self.partitions.is_some() || self.snapshot_after_logs.is_some() {
                anyhow::bail!(
                    "--partitions and --snapshot-after-logs need cluster mode (--peers or --join)"
                );
            }
            return Ok(());
        };
        if let Some(p) = self.partitions {
            cluster.partitions = p;
        }
        if let Some(n) = self.snapshot_after_logs {
            cluster.snapshot_after_logs = n;
        }
        if let Some(id) = &self.node_id {
            cluster.node_id = id.parse().with_context(|| {
                format!("--node-id must be a number in cluster mode, not {id:?}")
            })?;
        }
        c.node_id = cluster.node_id.to_string();
        cluster.members()?;
        if self.grpc.is_none()
            && c.grpc_addr == ServerConfig::default().grpc_addr
            && let Some(own) = cluster.peers.iter().find(|p| p.id == cluster.node_id)
            && let Ok(addr) = own.addr.parse()
        {
            c.grpc_addr = addr;
        }
        Ok(())
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then lets it drain and flush.
pub fn run(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata-server")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // The handlers are installed before the listeners are bound, so a signal sent as soon
        // as the `listening` line appears is never missed (nor fatal, as the default action is).
        let shutdown = shutdown_signal().context("cannot install the signal handlers")?;
        strata_server::run(config, shutdown).await?;
        Ok(())
    })
}

/// A future that resolves on the first SIGINT (Ctrl-C) or SIGTERM.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("{name} received: draining and shutting down");
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use strata_server::config::{DEFAULT_PARTITIONS, DEFAULT_SNAPSHOT_AFTER_LOGS};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn parse(argv: &[&str]) -> ServerArgs {
        Cli::try_parse_from(std::iter::once("server").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\nredis_addr = \"127.0.0.1:7000\"\nnode_id = \"file\"\n\
             idle_timeout_secs = 5\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let args = parse(&[
            "--config",
            file,
            "--redis",
            "127.0.0.1:0",
            "--max-connections",
            "7",
        ]);
        let c = args.config(None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.redis_addr.port(), 0);
        assert_eq!((c.node_id.as_str(), c.idle_timeout_secs), ("file", 5));
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.grpc_addr, ServerConfig::default().grpc_addr);
        let c = args.config(Some(Path::new("/flag"))).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/flag"));
    }

    #[test]
    fn every_flag_reaches_its_field() {
        let args = parse(&[
            "--grpc=127.0.0.1:1",
            "--http=127.0.0.1:3",
            "--token=t",
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--allow-flushall",
            "--idle-timeout-secs=0",
            "--node-id=n2",
        ]);
        let c = args.config(None).unwrap();
        assert_eq!((c.grpc_addr.port(), c.http_addr.port()), (1, 3));
        assert_eq!(c.token.as_deref(), Some("t"));
        assert_eq!(c.tls.unwrap().key, PathBuf::from("k.pem"));
        assert!(c.allow_flushall);
        assert_eq!(c.idle_timeout_secs, 0);
        assert_eq!(c.node_id, "n2");
    }

    #[test]
    fn peers_make_a_cluster_node() {
        let args = parse(&[
            "--node-id=2",
            "--peers=1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403",
            "--partitions=8",
        ]);
        let c = args.config(None).unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!((cluster.node_id, cluster.partitions), (2, 8));
        assert_eq!(cluster.peers.len(), 3);
        assert_eq!(c.node_id, "2");
        assert_eq!(
            c.grpc_addr.port(),
            7402,
            "gRPC defaults to the node's peer address"
        );
        let args = parse(&["--node-id=2", "--peers=1=127.0.0.1:7401,2=127.0.0.1:7402"]);
        let c = args.config(None).unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.partitions, DEFAULT_PARTITIONS);
        assert_eq!(cluster.snapshot_after_logs, DEFAULT_SNAPSHOT_AFTER_LOGS);
        let args = parse(&[
            "--node-id=2",
            "--peers=1=127.0.0.1:7401,2=127.0.0.1:7402",
            "--snapshot-after-logs=500",
        ]);
        assert_eq!(
            args.config(None)
                .unwrap()
                .cluster
                .unwrap()
                .snapshot_after_logs,
            500
        );
        assert!(
            parse(&["--snapshot-after-logs=500"]).config(None).is_err(),
            "a single node has no Raft log"
        );
        // Without --peers: a single node, as before.
        let c = parse(&["--node-id=n1"]).config(None).unwrap();
        assert!(c.cluster.is_none());
        assert_eq!(c.node_id, "n1");
    }

    #[test]
    fn join_makes_a_cluster_node_without_peers() {
        let args = parse(&[
            "--node-id=4",
            "--join=127.0.0.1:7401",
            "--partitions=8",
            "--grpc=127.0.0.1:7404",
        ]);
        let c = args.config(None).unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.join.as_deref(), Some("127.0.0.1:7401"));
        assert_eq!((cluster.node_id, cluster.partitions), (4, 8));
        assert!(cluster.peers.is_empty());
        assert!(
            Cli::try_parse_from(["server", "--join=127.0.0.1:7401"]).is_err(),
            "--node-id needed"
        );
        assert!(
            Cli::try_parse_from([
                "server",
                "--node-id=4",
                "--join=127.0.0.1:7401",
                "--peers=1=127.0.0.1:7401"
            ])
            .is_err(),
            "--join and --peers conflict"
        );
    }

    #[test]
    fn bad_cluster_flags_are_refused() {
        let peers = "--peers=1=127.0.0.1:7401,2=127.0.0.1:7402";
        assert!(
            Cli::try_parse_from(["server", peers]).is_err(),
            "--node-id needed"
        );
        for argv in [
            &["--node-id=x", peers][..],
            &["--node-id=3", peers],
            &["--node-id=1", peers, "--partitions=6"],
            &["--node-id=1", "--peers=1:127.0.0.1:7401"],
            &["--partitions=8"],
        ] {
            assert!(parse(argv).config(None).is_err(), "{argv:?} accepted");
        }
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        let bad_addr = Cli::try_parse_from(["server", "--grpc", "nowhere"]);
        assert!(bad_addr.is_err());
        let half_tls = Cli::try_parse_from(["server", "--tls-cert", "c.pem"]);
        assert!(half_tls.is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "grpc_adr = \"127.0.0.1:1\"\n").unwrap();
        let err = parse(&["--config", file.to_str().unwrap()])
            .config(None)
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("bad.toml") && text.contains("grpc_adr"),
            "{text}"
        );
    }
}
