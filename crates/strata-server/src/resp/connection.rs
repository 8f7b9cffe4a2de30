//! One Redis-protocol connection: reads requests through the [`RespCodec`], runs them in order
//! and writes the replies. Requests already buffered (pipelining) are run back to back, their
//! writes deferred (later requests of the pipeline read them, as in Redis); then, if any write
//! ran, one [`KvService::sync`](strata_cluster::KvService::sync) makes them all durable before
//! the replies are written together, so a pipeline costs one fsync, shared with concurrent
//! connections through group commit. The connection closes on `QUIT`, EOF, a protocol error
//! (after replying), the idle timeout, or server shutdown, which waits for the batch in flight.

use std::collections::VecDeque;
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::coalesce::{self, Plain};
use super::codec::{ProtocolError, Request, RespCodec};
use super::commands::{self, kv_error};
use super::pipeline::PendingReplies;
use super::reply::Reply;
use super::session::Session;
use crate::metrics;
use crate::state::Shared;

/// Most requests run before their replies are written.
const MAX_PIPELINE_BATCH: usize = 1024;
/// Reply bytes after which they are written even if more requests are buffered.
const MAX_PENDING_REPLY_BYTES: usize = 1 << 20;

/// One decoded request, or why the bytes could not be decoded.
type Item = Result<Request, ProtocolError>;

/// What to do after a request.
enum Next {
    Continue,
    Close,
}

/// Serves one connection to completion.
pub async fn handle<S>(stream: S, shared: &Shared, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use std::sync::atomic::Ordering::Relaxed;
    shared.redis_connections.fetch_add(1, Relaxed);
    shared.redis_connections_total.fetch_add(1, Relaxed);
    metrics::connection("resp", 1.0);
    serve(stream, shared, shutdown).await;
    shared.redis_connections.fetch_sub(1, Relaxed);
    metrics::connection("resp", -1.0);
}

async fn serve<S>(stream: S, shared: &Shared, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let codec = RespCodec::new(shared.config.limits.resp());
    let mut frames = FramedRead::with_capacity(reader, codec, 16 * 1024);
    let mut session = Session::new(shared.token.is_none());
    let mut out = PendingReplies::with_capacity(16 * 1024);
    let idle = shared.config.idle_timeout();
    let mut queued: VecDeque<Item> = VecDeque::new();
    let mut eof = false;
    loop {
        if queued.is_empty() {
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                r = next_or_idle(&mut frames, idle) => match r {
                    Some(r) => r,
                    None => return,
                },
            };
            queued.push_back(first);
        }
        // Take every request already buffered (the pipeline): never wait for the network here.
        while !eof && queued.len() < MAX_PIPELINE_BATCH {
            match frames.next().now_or_never() {
                Some(Some(r)) => queued.push_back(r),
                Some(None) => eof = true,
                None => break,
            }
        }
        let mut next = Next::Continue;
        while matches!(next, Next::Continue) && out.len() < MAX_PENDING_REPLY_BYTES {
            let Some(item) = queued.pop_front() else {
                break;
            };
            next = match Plain::of(&item, &session) {
                Some(kind) => {
                    let mut run = vec![item];
                    while run.len() < coalesce::MAX_RUN
                        && queued
                            .front()
                            .is_some_and(|i| Plain::of(i, &session) == Some(kind))
                    {
                        run.extend(queued.pop_front());
                    }
                    let run = run
                        .into_iter()
                        .filter_map(|i| match i {
                            Ok(Request::Command(args)) => Some(args),
                            _ => None,
                        })
                        .collect();
                    let last = queued.is_empty();
                    coalesce::execute(shared, kind, run, last, &mut out).await;
                    Next::Continue
                }
                None => run(shared, &mut session, item, &mut out).await,
            };
        }
        if eof && queued.is_empty() {
            next = Next::Close;
        }
        settle(shared, &mut out).await;
        let write = writer.write_all(out.bytes());
        let written = match idle {
            Some(t) => tokio::time::timeout(t, write).await.ok(),
            None => Some(write.await),
        };
        out.clear();
        if !matches!(written, Some(Ok(()))) || matches!(next, Next::Close) {
            let _ = writer.shutdown().await;
            return;
        }
    }
}

/// Makes the pipeline's writes durable before their replies go out; if that fails, their
/// replies become the error instead.
async fn settle(shared: &Shared, out: &mut PendingReplies) {
    if !out.needs_sync() {
        return;
    }
    let start = Instant::now();
    match shared.kv.sync().await {
        Ok(()) => {
            metrics::record_request("resp", "sync", start.elapsed(), true);
            out.synced();
        }
        Err(e) => {
            tracing::warn!("sync of pipelined writes failed: {e}");
            metrics::record_request("resp", "sync", start.elapsed(), false);
            out.sync_failed(&kv_error(&e));
        }
    }
}

/// The next decoded item, or `None` at EOF or when the connection was idle too long.
async fn next_or_idle<R>(
    frames: &mut FramedRead<R, RespCodec>,
    idle: Option<std::time::Duration>,
) -> Option<Result<Request, ProtocolError>>
where
    R: AsyncRead + Unpin,
{
    match idle {
        Some(t) => tokio::time::timeout(t, frames.next()).await.ok().flatten(),
        None => frames.next().await,
    }
}

/// Runs one decoded item and appends its reply to `out`.
async fn run(shared: &Shared, session: &mut Session, item: Item, out: &mut PendingReplies) -> Next {
    match item {
        Ok(Request::Command(args)) => {
            let start = Instant::now();
            let done = commands::execute(shared, session, args).await;
            shared
                .redis_commands_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::record_request("resp", done.name, start.elapsed(), !done.reply.is_error());
            out.push(&done.reply, done.wrote);
            if session.quit {
                Next::Close
            } else {
                Next::Continue
            }
        }
        Ok(Request::TooLarge(msg)) => {
            metrics::record_request("resp", "too_large", std::time::Duration::ZERO, false);
            out.push(&Reply::err(msg), false);
            Next::Continue
        }
        Err(ProtocolError::Malformed(msg)) => {
            tracing::debug!("closing connection after protocol error: {msg}");
            out.push(&Reply::err(format!("Protocol error: {msg}")), false);
            Next::Close
        }
        Err(ProtocolError::Io(e)) => {
            tracing::debug!("connection read failed: {e}");
            Next::Close
        }
    }
}
