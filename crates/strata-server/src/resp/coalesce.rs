//! Runs of plain `GET key` or `SET key value` requests next to each other in one pipeline, run
//! as one service call (one `get_many`, one deferred batch) instead of one call each. Clients
//! that pipeline send such runs all the time (`redis-benchmark -P 16`, bulk loaders), and each
//! service call is a trip to the blocking pool and through the engine's write queue. The
//! replies are exactly those the requests would get one by one: no other request of the
//! connection runs in between, a batch's puts apply in order, and other connections could have
//! interleaved anywhere anyway.

use std::time::Instant;

use bytes::Bytes;
use strata_cluster::{Durability, Mutation, ReadOptions};

use super::codec::{ProtocolError, Request};
use super::commands::{WRITES, kv_error};
use super::pipeline::PendingReplies;
use super::reply::Reply;
use super::session::Session;
use crate::metrics;
use crate::state::Shared;

/// Most requests one coalesced call carries.
pub const MAX_RUN: usize = 256;

/// A request that can join a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// `GET key`.
    Get,
    /// `SET key value` without options.
    Set,
}

impl Plain {
    /// What `item` is, when it can join a run: a plain `GET` or `SET` on an authenticated
    /// connection (anything else goes through the command table, which checks everything).
    pub fn of(item: &Result<Request, ProtocolError>, session: &Session) -> Option<Plain> {
        let Ok(Request::Command(args)) = item else {
            return None;
        };
        if !session.authenticated {
            return None;
        }
        match args.as_slice() {
            [name, _] if name.eq_ignore_ascii_case(b"GET") => Some(Plain::Get),
            [name, _, _] if name.eq_ignore_ascii_case(b"SET") => Some(Plain::Set),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Plain::Get => "GET",
            Plain::Set => "SET",
        }
    }
}

fn arg(args: &[Bytes], i: usize) -> Vec<u8> {
    args.get(i).map(|b| b.to_vec()).unwrap_or_default()
}

/// Runs `run`, requests all of kind `kind`, and appends their replies to `out` in order.
///
/// `last_write` says no request of the pipeline follows the run. A run of SETs then writes
/// synced: the WAL is synced up to and including its batch, which makes every earlier write of
/// the pipeline durable too, so the connection need not sync again.
pub async fn execute(
    shared: &Shared,
    kind: Plain,
    run: Vec<Vec<Bytes>>,
    last_write: bool,
    out: &mut PendingReplies,
) {
    let start = Instant::now();
    let (replies, synced) = match kind {
        Plain::Get => (gets(shared, &run).await, false),
        Plain::Set => {
            let durability = if last_write { Durability::Sync } else { WRITES };
            sets(shared, run, durability).await
        }
    };
    let n = u64::try_from(replies.len()).unwrap_or(u64::MAX);
    let errors = replies.iter().filter(|r| r.is_error()).count();
    metrics::record_requests(
        "resp",
        kind.name(),
        n,
        u64::try_from(errors).unwrap_or(u64::MAX),
        start.elapsed(),
    );
    shared
        .redis_commands_total
        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    for reply in &replies {
        out.push(reply, kind == Plain::Set);
    }
    if synced {
        out.synced();
    }
}

async fn gets(shared: &Shared, run: &[Vec<Bytes>]) -> Vec<Reply> {
    let keys = run.iter().map(|args| arg(args, 1)).collect();
    match shared.kv.get_many(keys, ReadOptions::default()).await {
        Ok(values) => values
            .into_iter()
            .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
            .collect(),
        Err(e) => vec![kv_error(&e); run.len()],
    }
}

/// Writes the SETs of `run` as one batch; returns their replies and whether the batch was
/// written with [`Durability::Sync`] (which makes every earlier write durable too).
async fn sets(shared: &Shared, run: Vec<Vec<Bytes>>, durability: Durability) -> (Vec<Reply>, bool) {
    let n = run.len();
    let puts = run
        .iter()
        .map(|args| Mutation::Put {
            key: arg(args, 1),
            value: arg(args, 2),
        })
        .collect();
    match shared.kv.batch_with(Vec::new(), puts, durability).await {
        Ok(_) => (vec![Reply::OK; n], durability == Durability::Sync),
        // One bad request (a key or value over the limits) fails the whole batch: run them one
        // by one so that only it is refused.
        Err(_) if n > 1 => {
            let mut replies = Vec::with_capacity(n);
            for args in run {
                let put = shared.kv.put_with(arg(&args, 1), arg(&args, 2), WRITES);
                replies.push(match put.await {
                    Ok(()) => Reply::OK,
                    Err(e) => kv_error(&e),
                });
            }
            (replies, false)
        }
        Err(e) => (vec![kv_error(&e)], false),
    }
}
