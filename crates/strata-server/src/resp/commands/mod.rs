//! The command table and dispatcher: looks a request's command up, checks its arity and the
//! connection's authentication, runs it and maps service errors to Redis-style replies. One file
//! per command family holds the commands themselves.

pub mod keys;
pub mod server;
pub mod strings;

use bytes::Bytes;
use strata_cluster::{Durability, Error as KvError};

use super::reply::Reply;
use super::session::Session;
use crate::state::Shared;

/// What a command is: its name, its Redis-style arity (`n` exactly n words including the name,
/// `-n` at least n) and the flags `COMMAND` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Upper-case name.
    pub name: &'static str,
    /// Redis arity.
    pub arity: i64,
    /// Flags shown by `COMMAND`.
    pub flags: &'static [&'static str],
    /// First key argument (0: none), last key (-1: the last argument), step between keys.
    pub keys: (i64, i64, i64),
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
    }
}

const W: &[&str] = &["write"];
const R: &[&str] = &["readonly", "fast"];
const A: &[&str] = &["fast"];

/// Every command the server knows.
pub const COMMANDS: &[Spec] = &[
    spec("PING", -1, A, (0, 0, 0)),
    spec("ECHO", 2, A, (0, 0, 0)),
    spec("QUIT", -1, A, (0, 0, 0)),
    spec("AUTH", -2, A, (0, 0, 0)),
    spec("SELECT", 2, A, (0, 0, 0)),
    spec("CLIENT", -2, A, (0, 0, 0)),
    spec("COMMAND", -1, A, (0, 0, 0)),
    spec("CONFIG", -2, A, (0, 0, 0)),
    spec("INFO", -1, A, (0, 0, 0)),
    spec("DBSIZE", 1, R, (0, 0, 0)),
    spec("FLUSHALL", -1, W, (0, 0, 0)),
    spec("FLUSHDB", -1, W, (0, 0, 0)),
    spec("GET", 2, R, (1, 1, 1)),
    spec("SET", -3, W, (1, 1, 1)),
    spec("SETNX", 3, W, (1, 1, 1)),
    spec("MGET", -2, R, (1, -1, 1)),
    spec("MSET", -3, W, (1, -1, 2)),
    spec("MSETNX", -3, W, (1, -1, 2)),
    spec("INCR", 2, W, (1, 1, 1)),
    spec("DECR", 2, W, (1, 1, 1)),
    spec("INCRBY", 3, W, (1, 1, 1)),
    spec("DECRBY", 3, W, (1, 1, 1)),
    spec("DEL", -2, W, (1, -1, 1)),
    spec("UNLINK", -2, W, (1, -1, 1)),
    spec("EXISTS", -2, R, (1, -1, 1)),
    spec("SCAN", -2, R, (0, 0, 0)),
    spec("KEYS", 2, R, (0, 0, 0)),
];

/// Looks a command name up, ignoring case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

fn arity_ok(spec: &Spec, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    if spec.arity >= 0 {
        argc == spec.arity
    } else {
        argc >= -spec.arity
    }
}

/// The reply for an unknown command, worded as Redis words it.
fn unknown(args: &[Bytes]) -> Reply {
    let mut msg = String::from("unknown command '");
    if let Some(name) = args.first() {
        msg.push_str(&String::from_utf8_lossy(&name[..name.len().min(128)]));
    }
    msg.push_str("', with args beginning with: ");
    for a in args.iter().skip(1).take(8) {
        msg.push('\'');
        msg.push_str(&String::from_utf8_lossy(&a[..a.len().min(128)]));
        msg.push_str("' ");
    }
    Reply::err(msg)
}

/// Maps a key-value service error to the reply a Redis client expects.
pub fn kv_error(e: &KvError) -> Reply {
    match e {
        KvError::NotAnInteger => Reply::err("value is not an integer or out of range"),
        KvError::Overflow => Reply::err("increment or decrement would overflow"),
        KvError::CrossSlot => {
            Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
        }
        KvError::NotLeader { .. } | KvError::Unavailable(_) => {
            Reply::Error(format!("TRYAGAIN {e}"))
        }
        other => Reply::err(other),
    }
}

/// Parses a signed 64-bit integer argument the way Redis does.
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    if arg.first() == Some(&b'+') {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// What running one command produced.
#[derive(Debug)]
pub struct Executed {
    /// The reply.
    pub reply: Reply,
    /// The name to record the command under.
    pub name: &'static str,
    /// True when a write command ran: its writes were [`Durability::Deferred`] and its reply
    /// may only be sent after [`KvService::sync`](strata_cluster::KvService::sync). Its reply
    /// also waits when it wrote nothing (`SET NX` on an existing key), since it may report a
    /// value another connection wrote and has not synced yet.
    pub wrote: bool,
}

impl Executed {
    fn refused(reply: Reply, name: &'static str) -> Self {
        Executed {
            reply,
            name,
            wrote: false,
        }
    }
}

/// How the Redis front end writes: deferred, then synced once per pipeline by the connection
/// before any reply to a write is sent.
pub const WRITES: Durability = Durability::Deferred;

/// Runs one command.
pub async fn execute(shared: &Shared, session: &mut Session, args: Vec<Bytes>) -> Executed {
    let Some(name) = args.first() else {
        return Executed::refused(Reply::err("empty command"), "unknown");
    };
    let Some(spec) = lookup(name) else {
        return Executed::refused(unknown(&args), "unknown");
    };
    if !session.authenticated && !matches!(spec.name, "AUTH" | "QUIT") {
        return Executed::refused(
            Reply::Error("NOAUTH Authentication required.".into()),
            spec.name,
        );
    }
    if !arity_ok(spec, args.len()) {
        return Executed::refused(Reply::wrong_arity(spec.name), spec.name);
    }
    let reply = match spec.name {
        "PING" => server::ping(&args),
        "ECHO" => server::echo(&args),
        "QUIT" => {
            session.quit = true;
            Reply::OK
        }
        "AUTH" => server::auth(shared, session, &args),
        "SELECT" => server::select(&args),
        "CLIENT" => server::client(&args),
        "COMMAND" => server::command(&args),
        "CONFIG" => server::config(&args),
        "INFO" => server::info(shared, &args).await,
        "DBSIZE" => keys::dbsize(shared).await,
        "FLUSHALL" | "FLUSHDB" => keys::flushall(shared, spec.name).await,
        "GET" => strings::get(shared, &args).await,
        "SET" => strings::set(shared, &args).await,
        "SETNX" => strings::setnx(shared, &args).await,
        "MGET" => strings::mget(shared, &args).await,
        "MSET" => strings::mset(shared, &args, false).await,
        "MSETNX" => strings::mset(shared, &args, true).await,
        "INCR" => strings::incr(shared, &args, Some(1)).await,
        "DECR" => strings::incr(shared, &args, Some(-1)).await,
        "INCRBY" => strings::incr(shared, &args, None).await,
        "DECRBY" => strings::decrby(shared, &args).await,
        "DEL" | "UNLINK" => keys::del(shared, &args).await,
        "EXISTS" => keys::exists(shared, &args).await,
        "SCAN" => keys::scan(shared, session, &args).await,
        "KEYS" => keys::keys(shared, &args).await,
        _ => unknown(&args),
    };
    Executed {
        reply,
        name: spec.name,
        wrote: spec.flags.contains(&"write"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_arity() {
        let get = lookup(b"get").unwrap();
        assert!(arity_ok(get, 2));
        assert!(!arity_ok(get, 3));
        let del = lookup(b"DEL").unwrap();
        assert!(arity_ok(del, 4));
        assert!(!arity_ok(del, 1));
        assert!(lookup(b"nope").is_none());
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"1 "), None);
    }
}
