//! String commands: GET, SET (NX/XX), SETNX, MGET, MSET, MSETNX, INCR, DECR, INCRBY, DECRBY.

use bytes::Bytes;
use strata_cluster::{Mutation, Precondition, ReadOptions};

use super::{WRITES, kv_error, parse_i64};
use crate::resp::reply::Reply;
use crate::state::Shared;

fn arg(args: &[Bytes], i: usize) -> Vec<u8> {
    args.get(i).map(|b| b.to_vec()).unwrap_or_default()
}

/// `GET key`.
pub async fn get(shared: &Shared, args: &[Bytes]) -> Reply {
    match shared.kv.get(arg(args, 1), ReadOptions::default()).await {
        Ok(Some(v)) => Reply::Bulk(v),
        Ok(None) => Reply::Nil,
        Err(e) => kv_error(&e),
    }
}

/// `SET key value [NX|XX] [KEEPTTL]`; expiry options are refused until TTLs exist.
pub async fn set(shared: &Shared, args: &[Bytes]) -> Reply {
    let (key, value) = (arg(args, 1), arg(args, 2));
    let mut condition = None;
    for opt in args.iter().skip(3) {
        let opt = opt.to_ascii_uppercase();
        match opt.as_slice() {
            b"NX" | b"XX" if condition.is_some() => return Reply::syntax(),
            b"NX" => condition = Some(Precondition::Absent { key: key.clone() }),
            b"XX" => condition = Some(Precondition::Present { key: key.clone() }),
            b"KEEPTTL" => {}
            b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                return Reply::err(
                    "expiry (SET EX/PX/EXAT/PXAT) is not supported yet: Strata has no TTLs",
                );
            }
            b"GET" => return Reply::err("SET ... GET is not supported"),
            _ => return Reply::syntax(),
        }
    }
    match condition {
        None => match shared.kv.put_with(key, value, WRITES).await {
            Ok(()) => Reply::OK,
            Err(e) => kv_error(&e),
        },
        Some(c) => {
            let put = Mutation::Put { key, value };
            match shared.kv.batch_with(vec![c], vec![put], WRITES).await {
                Ok(o) if o.applied => Reply::OK,
                Ok(_) => Reply::Nil,
                Err(e) => kv_error(&e),
            }
        }
    }
}

/// `SETNX key value`: 1 if set, 0 if the key existed.
pub async fn setnx(shared: &Shared, args: &[Bytes]) -> Reply {
    let key = arg(args, 1);
    let c = Precondition::Absent { key: key.clone() };
    let put = Mutation::Put {
        key,
        value: arg(args, 2),
    };
    match shared.kv.batch_with(vec![c], vec![put], WRITES).await {
        Ok(o) => Reply::Integer(i64::from(o.applied)),
        Err(e) => kv_error(&e),
    }
}

/// `MGET key [key ...]`.
pub async fn mget(shared: &Shared, args: &[Bytes]) -> Reply {
    let keys = args.iter().skip(1).map(|b| b.to_vec()).collect();
    match shared.kv.get_many(keys, ReadOptions::default()).await {
        Ok(values) => Reply::Array(
            values
                .into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                .collect(),
        ),
        Err(e) => kv_error(&e),
    }
}

/// `MSET key value [key value ...]` (atomic), or `MSETNX` (atomic, only if no key exists).
pub async fn mset(shared: &Shared, args: &[Bytes], nx: bool) -> Reply {
    let name = if nx { "MSETNX" } else { "MSET" };
    let pairs = args.get(1..).unwrap_or_default();
    if pairs.len() % 2 != 0 {
        return Reply::wrong_arity(name);
    }
    let mutations: Vec<Mutation> = pairs
        .chunks_exact(2)
        .map(|c| Mutation::Put {
            key: arg(c, 0),
            value: arg(c, 1),
        })
        .collect();
    let preconditions = if nx {
        mutations
            .iter()
            .map(|m| Precondition::Absent {
                key: m.key().to_vec(),
            })
            .collect()
    } else {
        Vec::new()
    };
    match shared.kv.batch_with(preconditions, mutations, WRITES).await {
        Ok(o) if nx => Reply::Integer(i64::from(o.applied)),
        Ok(_) => Reply::OK,
        Err(e) => kv_error(&e),
    }
}

/// `INCR`/`DECR` (`delta` given) and `INCRBY key n` (`delta` None).
pub async fn incr(shared: &Shared, args: &[Bytes], delta: Option<i64>) -> Reply {
    let delta = match delta {
        Some(d) => d,
        None => match args.get(2).and_then(|a| parse_i64(a)) {
            Some(d) => d,
            None => return Reply::err("value is not an integer or out of range"),
        },
    };
    match shared.kv.incr_by_with(arg(args, 1), delta, WRITES).await {
        Ok(n) => Reply::Integer(n),
        Err(e) => kv_error(&e),
    }
}

/// `DECRBY key n`.
pub async fn decrby(shared: &Shared, args: &[Bytes]) -> Reply {
    match args.get(2).and_then(|a| parse_i64(a)) {
        None => Reply::err("value is not an integer or out of range"),
        Some(n) => match n.checked_neg() {
            None => Reply::err("decrement would overflow"),
            Some(d) => incr(shared, args, Some(d)).await,
        },
    }
}
