//! Connection and server commands: PING, ECHO, AUTH, SELECT, CLIENT, COMMAND, CONFIG and INFO.

use std::fmt::Write as _;

use bytes::Bytes;

use super::{COMMANDS, Spec, lookup};
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::state::Shared;

/// The Redis version reported to clients that check it (redis-cli, redis-benchmark).
const REDIS_COMPAT_VERSION: &str = "7.0.0";

/// `PING [message]`.
pub fn ping(args: &[Bytes]) -> Reply {
    match args.len() {
        1 => Reply::Simple("PONG"),
        2 => Reply::Bulk(args.get(1).map(|b| b.to_vec()).unwrap_or_default()),
        _ => Reply::wrong_arity("PING"),
    }
}

/// `ECHO message`.
pub fn echo(args: &[Bytes]) -> Reply {
    Reply::Bulk(args.get(1).map(|b| b.to_vec()).unwrap_or_default())
}

/// `AUTH token` or `AUTH default token`.
pub fn auth(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let Some(token) = &shared.token else {
        return Reply::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        );
    };
    let given = match args {
        [_, pass] => pass,
        [_, user, pass] if user.as_ref() == b"default" => pass,
        [_, _, _] => {
            return Reply::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            );
        }
        _ => return Reply::syntax(),
    };
    if token.matches(given) {
        session.authenticated = true;
        Reply::OK
    } else {
        session.authenticated = false;
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    }
}

/// `SELECT 0`: Strata has one database.
pub fn select(args: &[Bytes]) -> Reply {
    match args.get(1).map(Bytes::as_ref) {
        Some(b"0") => Reply::OK,
        _ => Reply::err("DB index is out of range (Strata has only database 0)"),
    }
}

/// `CLIENT SETNAME|SETINFO|GETNAME|ID|...`: accepted so client libraries' handshakes work.
pub fn client(args: &[Bytes]) -> Reply {
    let sub = args
        .get(1)
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    match sub.as_slice() {
        b"SETNAME" | b"SETINFO" | b"NO-EVICT" | b"NO-TOUCH" | b"REPLY" => Reply::OK,
        b"GETNAME" => Reply::Nil,
        b"ID" => Reply::Integer(1),
        _ => Reply::err("unsupported CLIENT subcommand"),
    }
}

fn command_info(s: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(s.name.to_ascii_lowercase().into_bytes()),
        Reply::Integer(s.arity),
        Reply::Array(s.flags.iter().map(|f| Reply::Simple(f)).collect()),
        Reply::Integer(s.keys.0),
        Reply::Integer(s.keys.1),
        Reply::Integer(s.keys.2),
    ])
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name...`, `COMMAND DOCS` (empty).
pub fn command(args: &[Bytes]) -> Reply {
    let sub = args.get(1).map(|s| s.to_ascii_uppercase());
    match sub.as_deref() {
        None => Reply::Array(COMMANDS.iter().map(command_info).collect()),
        Some(b"COUNT") => Reply::Integer(COMMANDS.len() as i64),
        Some(b"DOCS") => Reply::Array(Vec::new()),
        Some(b"INFO") => Reply::Array(
            args.iter()
                .skip(2)
                .map(|n| lookup(n).map_or(Reply::Nil, command_info))
                .collect(),
        ),
        Some(_) => Reply::err("unsupported COMMAND subcommand"),
    }
}

/// `CONFIG GET pattern`: answers the few parameters benchmark tools ask for; `CONFIG SET` is
/// refused (configuration comes from the server's config file).
pub fn config(args: &[Bytes]) -> Reply {
    let sub = args
        .get(1)
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    if sub.as_slice() != b"GET" {
        return Reply::err("only CONFIG GET is supported");
    }
    let known: [(&str, &str); 3] = [("save", ""), ("appendonly", "yes"), ("databases", "1")];
    let mut out = Vec::new();
    for pattern in args.iter().skip(2) {
        for (name, value) in known {
            if crate::resp::glob::matches(&pattern.to_ascii_lowercase(), name.as_bytes()) {
                out.push(Reply::Bulk(name.as_bytes().to_vec()));
                out.push(Reply::Bulk(value.as_bytes().to_vec()));
            }
        }
    }
    Reply::Array(out)
}

/// `INFO [section ...]`: server, clients, stats and keyspace sections.
pub async fn info(shared: &Shared, args: &[Bytes]) -> Reply {
    let wanted: Vec<String> = args
        .iter()
        .skip(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "default" || w == "everything");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let mut out = String::new();
    let ordering = std::sync::atomic::Ordering::Relaxed;
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nstrata_version:{}\r\n\
             redis_mode:standalone\r\nnode_id:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            shared.config.node_id,
            std::process::id(),
            shared.addrs.redis.port(),
            shared.uptime_secs(),
            shared.uptime_secs() / 86_400,
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            shared.connections()
        );
    }
    if want("stats") {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n",
            shared.redis_connections_total.load(ordering),
            shared.redis_commands_total.load(ordering),
        );
        if let Ok(s) = shared.kv.stats().await {
            let _ = write!(
                out,
                "engine_keys_written:{}\r\nengine_keys_read:{}\r\nengine_wal_syncs:{}\r\n\
                 engine_flushes:{}\r\nengine_compactions:{}\r\nengine_write_stalls:{}\r\n",
                s.keys_written, s.keys_read, s.wal_syncs, s.flushes, s.compactions, s.write_stalls
            );
        }
        out.push_str("\r\n");
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        if let Ok(n) = shared.kv.count_keys().await
            && n > 0
        {
            let _ = write!(out, "db0:keys={n},expires=0,avg_ttl=0\r\n");
        }
        out.push_str("\r\n");
    }
    Reply::Bulk(out.into_bytes())
}
