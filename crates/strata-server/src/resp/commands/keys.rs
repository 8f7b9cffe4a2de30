//! Keyspace commands: DEL/UNLINK, EXISTS, SCAN (cursor, MATCH, COUNT, TYPE), KEYS, DBSIZE and
//! FLUSHALL/FLUSHDB (only when the config allows it).

use bytes::Bytes;
use futures::StreamExt;
use strata_cluster::{ReadOptions, ScanRequest};

use super::{WRITES, kv_error};
use crate::resp::glob;
use crate::resp::reply::Reply;
use crate::resp::session::Session;
use crate::state::Shared;

/// Most keys one `SCAN` call examines, whatever COUNT asks for.
const MAX_SCAN_COUNT: usize = 100_000;

/// `DEL key [key ...]`: how many of the keys existed.
pub async fn del(shared: &Shared, args: &[Bytes]) -> Reply {
    let keys = args.iter().skip(1).map(|b| b.to_vec()).collect();
    match shared.kv.delete_counted_with(keys, WRITES).await {
        Ok(n) => Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(e) => kv_error(&e),
    }
}

/// `EXISTS key [key ...]`: how many of the keys exist (a key named twice counts twice).
pub async fn exists(shared: &Shared, args: &[Bytes]) -> Reply {
    let keys = args.iter().skip(1).map(|b| b.to_vec()).collect();
    match shared.kv.get_many(keys, ReadOptions::default()).await {
        Ok(values) => Reply::Integer(values.iter().filter(|v| v.is_some()).count() as i64),
        Err(e) => kv_error(&e),
    }
}

/// `DBSIZE`.
pub async fn dbsize(shared: &Shared) -> Reply {
    match shared.kv.count_keys().await {
        Ok(n) => Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(e) => kv_error(&e),
    }
}

/// `FLUSHALL` / `FLUSHDB [ASYNC|SYNC]`.
pub async fn flushall(shared: &Shared, name: &str) -> Reply {
    if !shared.config.allow_flushall {
        return Reply::err(format!(
            "{name} is disabled on this server (set allow_flushall = true in its config)"
        ));
    }
    match shared.kv.clear().await {
        Ok(()) => Reply::OK,
        Err(e) => kv_error(&e),
    }
}

/// Reads up to `count` keys from `start` (exclusive of `after`), returning them and whether
/// the keyspace ended.
async fn scan_keys(
    shared: &Shared,
    after: Option<Vec<u8>>,
    count: Option<usize>,
) -> Result<(Vec<Vec<u8>>, bool), Reply> {
    let start = match after {
        Some(mut k) => {
            // The smallest key after `k` is `k` followed by a zero byte.
            k.push(0);
            k
        }
        None => Vec::new(),
    };
    let req = ScanRequest {
        start,
        end: None,
        limit: count,
        keys_only: true,
        read: ReadOptions::default(),
    };
    let mut stream = shared.kv.scan(req).await.map_err(|e| kv_error(&e))?;
    let mut keys = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| kv_error(&e))?;
        keys.extend(chunk.into_iter().map(|(k, _)| k));
    }
    let done = count.is_none_or(|c| keys.len() < c);
    Ok((keys, done))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`. The cursor is a plain integer: 0 starts
/// and ends an iteration; others name where this connection's previous call stopped. Every key
/// present for the whole iteration is returned exactly once, in key order.
pub async fn scan(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let Some(cursor) = args
        .get(1)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return Reply::err("invalid cursor");
    };
    let mut pattern: Option<Vec<u8>> = None;
    let mut count = 10usize;
    let mut type_ok = true;
    let mut i = 2;
    while let Some(opt) = args.get(i) {
        let value = args.get(i + 1);
        let Some(value) = value else {
            return Reply::syntax();
        };
        match opt.to_ascii_uppercase().as_slice() {
            b"MATCH" => pattern = Some(value.to_vec()),
            b"COUNT" => match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) if n >= 1 => count = n,
                _ => return Reply::err("value is not an integer or out of range"),
            },
            b"TYPE" => type_ok = value.eq_ignore_ascii_case(b"string"),
            _ => return Reply::syntax(),
        }
        i += 2;
    }
    let after = if cursor == 0 {
        None
    } else {
        match session.take_cursor(cursor) {
            Some(k) => Some(k),
            None => return Reply::err("invalid cursor (unknown or expired on this connection)"),
        }
    };
    let (keys, done) = match scan_keys(shared, after, Some(count.min(MAX_SCAN_COUNT))).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let next = match (done, keys.last()) {
        (false, Some(last)) => session.save_cursor(last.clone()),
        _ => 0,
    };
    let selected = keys
        .into_iter()
        .filter(|k| type_ok && pattern.as_deref().is_none_or(|p| glob::matches(p, k)))
        .map(Reply::Bulk)
        .collect();
    Reply::Array(vec![
        Reply::Bulk(next.to_string().into_bytes()),
        Reply::Array(selected),
    ])
}

/// `KEYS pattern`: every matching key (walks the whole keyspace).
pub async fn keys(shared: &Shared, args: &[Bytes]) -> Reply {
    let pattern = args.get(1).map(|b| b.to_vec()).unwrap_or_default();
    match scan_keys(shared, None, None).await {
        Ok((keys, _)) => Reply::Array(
            keys.into_iter()
                .filter(|k| glob::matches(&pattern, k))
                .map(Reply::Bulk)
                .collect(),
        ),
        Err(reply) => reply,
    }
}
