//! `strata admin`: operator commands against a running server: `status` through its admin
//! HTTP port, `add-node` and `remove-node` through its gRPC Admin service.
//!
//! `strata admin status --addr HOST:PORT` fetches `/status` and prints the node, its members
//! and a table of its partition groups (role, term, leader, commit and applied index, last log
//! index, log size, snapshot, and on leaders each follower's lag), or the raw JSON with
//! `--json`. A single-node server has no partitions; its basic status is printed instead.
//!
//! `strata admin add-node --server HOST:PORT ID ADDR` adds node `ID` (gRPC address `ADDR`,
//! started with `--join`) to every partition of the cluster the server belongs to, and
//! `strata admin remove-node --server HOST:PORT ID` takes a node out; both are idempotent, so
//! an interrupted change is finished by running the command again.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use serde_json::Value;

/// How long connecting to, and each read from, the admin port may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Largest `/status` body accepted.
const MAX_BODY: u64 = 16 << 20;

/// `strata admin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Print a node's view of the cluster: one row per partition group.
    Status(StatusArgs),
    /// Add a node (started with --join) to every partition of the cluster.
    AddNode(AddNodeArgs),
    /// Remove a node from every partition of the cluster.
    RemoveNode(RemoveNodeArgs),
}

/// Flags of `strata admin add-node`.
#[derive(Debug, clap::Args)]
pub struct AddNodeArgs {
    /// Any node of the cluster: its gRPC address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7400")]
    pub server: String,
    /// The new node's id.
    pub id: u64,
    /// The new node's gRPC address.
    pub addr: String,
}

/// Flags of `strata admin remove-node`.
#[derive(Debug, clap::Args)]
pub struct RemoveNodeArgs {
    /// Any node of the cluster (not the one removed): its gRPC address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7400")]
    pub server: String,
    /// The id of the node to remove.
    pub id: u64,
}

/// Runs `change` against `server` with a client whose deadline allows for catching up.
fn membership<F, Fut>(server: &str, change: F) -> anyhow::Result<u32>
where
    F: FnOnce(strata_client::Client) -> Fut,
    Fut: Future<Output = strata_client::Result<strata_proto::v1::MembershipResponse>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let opts = strata_client::ClientOptions {
            request_timeout: strata_client::MEMBERSHIP_TIMEOUT,
            route_to_leaders: false,
            ..Default::default()
        };
        let client = strata_client::Client::connect(server, opts)
            .await
            .with_context(|| format!("cannot connect to {server}"))?;
        let reply = change(client).await?;
        Ok(reply.partitions)
    })
}

/// Flags of `strata admin status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The server's admin HTTP address (its `--http`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7480")]
    pub addr: String,

    /// Print the `/status` JSON as it is.
    #[arg(long)]
    pub json: bool,
}

/// Runs an admin command, printing to stdout.
pub fn run(cmd: &AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Status(args) => {
            let body = http_get(&args.addr, "/status")?;
            let mut out = std::io::stdout().lock();
            if args.json {
                writeln!(out, "{body}")?;
            } else {
                let status: Value = serde_json::from_str(&body)
                    .with_context(|| format!("{} sent /status that is not JSON", args.addr))?;
                write!(out, "{}", render_status(&status))?;
            }
            Ok(())
        }
        AdminCommand::AddNode(args) => {
            let n = membership(&args.server, |c| async move {
                c.add_node(args.id, &args.addr).await
            })?;
            println!("node {} added to {n} partitions", args.id);
            Ok(())
        }
        AdminCommand::RemoveNode(args) => {
            let n = membership(
                &args.server,
                |c| async move { c.remove_node(args.id).await },
            )?;
            println!("node {} removed from {n} partitions", args.id);
            Ok(())
        }
    }
}

/// Fetches `path` from the HTTP server at `addr` (HTTP/1.0, so the body ends at the end of the
/// stream) and returns the body of a 200 reply.
fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let target: SocketAddr = addr
        .to_socket_addrs()
        .with_context(|| format!("bad address {addr:?}"))?
        .next()
        .with_context(|| format!("{addr:?} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .with_context(|| format!("cannot send the request to {addr}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_BODY)
        .read_to_end(&mut raw)
        .with_context(|| format!("no reply from {addr}"))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{addr} sent a malformed HTTP reply");
    };
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        bail!("{addr}{path}: {status_line}: {}", body.trim());
    }
    Ok(body.to_owned())
}

/// A JSON number or `-`.
fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// The text `strata admin status` prints for a `/status` document.
fn render_status(status: &Value) -> String {
    let mut out = String::new();
    let version = status["version"].as_str().unwrap_or("?");
    let Some(cluster) = status.get("cluster").filter(|c| c.is_object()) else {
        let node = status["node_id"].as_str().unwrap_or("?");
        let dir = status["data_dir"].as_str().unwrap_or("?");
        out.push_str(&format!(
            "node {node} (strata {version}), single node, data in {dir}: no partitions\n"
        ));
        return out;
    };
    let node = num(&cluster["node"]);
    let members: Vec<String> = cluster["members"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(id, addr)| format!("{id}={}", addr.as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    let empty = Vec::new();
    let partitions = cluster["partitions"].as_array().unwrap_or(&empty);
    let leading = partitions
        .iter()
        .filter(|p| p["role"].as_str() == Some("leader"))
        .count();
    out.push_str(&format!(
        "node {node} (strata {version}), members {}; leads {leading} of {} partitions\n",
        members.join(" "),
        partitions.len()
    ));
    out.push_str(&match cluster["meta_version"].as_u64() {
        Some(v) => format!(
            "meta group: record version {v}, leader {}\n",
            num(&cluster["meta_leader"])
        ),
        None => "meta group: no record yet\n".to_owned(),
    });
    let mut table = Table::new();
    table.load_style(presets::ASCII_FULL_CONDENSED);
    table.set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec![
        "Partition",
        "Role",
        "Term",
        "Leader",
        "Commit",
        "Applied",
        "Last log",
        "Log size",
        "Snapshot",
        "Lag (node:entries)",
    ]);
    for p in partitions {
        let lag: Vec<String> = p["replication"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|f| format!("{}:{}", num(&f["node"]), num(&f["lag"])))
                    .collect()
            })
            .unwrap_or_default();
        let mut role = p["role"].as_str().unwrap_or("?").to_owned();
        if let Some(fatal) = p["fatal"].as_str() {
            role = format!("{role} (failed: {fatal})");
        }
        let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
        table.add_row(vec![
            right(num(&p["partition"])),
            Cell::new(role),
            right(num(&p["term"])),
            right(num(&p["leader"])),
            right(num(&p["committed"])),
            right(num(&p["applied"])),
            right(num(&p["last_log_index"])),
            right(num(&p["log_size"])),
            right(num(&p["snapshot"])),
            Cell::new(if lag.is_empty() {
                "-".to_owned()
            } else {
                lag.join(" ")
            }),
        ]);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_partitions() {
        let status = serde_json::json!({
            "version": "0.1.0",
            "node_id": "1",
            "cluster": {
                "node": 1,
                "members": {"1": "127.0.0.1:7401", "2": "127.0.0.1:7402"},
                "meta_version": 3,
                "meta_leader": 2,
                "partitions": [
                    {"partition": 0, "role": "leader", "term": 3, "leader": 1, "committed": 10,
                     "applied": 10, "last_log_index": 10, "log_size": 11, "snapshot": null,
                     "replication": [{"node": 2, "matched": 8, "lag": 2}], "fatal": null},
                    {"partition": 1, "role": "follower", "term": 2, "leader": 2,
                     "committed": null, "applied": 7, "last_log_index": 7, "log_size": 8,
                     "snapshot": 5, "replication": [], "fatal": null}
                ]
            }
        });
        let text = render_status(&status);
        assert!(
            text.contains("members 1=127.0.0.1:7401 2=127.0.0.1:7402"),
            "{text}"
        );
        assert!(text.contains("leads 1 of 2 partitions"), "{text}");
        assert!(
            text.contains("meta group: record version 3, leader 2"),
            "{text}"
        );
        assert!(text.contains("| leader "), "{text}");
        assert!(text.contains("2:2"), "{text}");
        let follower = text.lines().find(|l| l.contains("follower")).unwrap();
        assert!(follower.contains(" - "), "{follower}");
    }

    #[test]
    fn renders_a_single_node() {
        let status = serde_json::json!({"version": "0.1.0", "node_id": "n", "data_dir": "d"});
        assert!(render_status(&status).contains("single node"));
    }
}
