//! One Redis-protocol connection: reads requests through the [`RespCodec`], runs them in order
//! and writes the replies. Requests already buffered (pipelining) are run back to back and their
//! replies written together. The connection closes on `QUIT`, EOF, a protocol error (after
//! replying), the idle timeout, or server shutdown, which waits for the batch in flight.

use std::time::Instant;

use bytes::BytesMut;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::codec::{ProtocolError, Request, RespCodec};
use super::commands;
use super::reply::Reply;
use super::session::Session;
use crate::metrics;
use crate::state::Shared;

/// Most requests run before their replies are written.
const MAX_PIPELINE_BATCH: usize = 1024;
/// Reply bytes after which they are written even if more requests are buffered.
const MAX_PENDING_REPLY_BYTES: usize = 1 << 20;

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
    let mut out = BytesMut::with_capacity(16 * 1024);
    let idle = shared.config.idle_timeout();
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = next_or_idle(&mut frames, idle) => match r {
                Some(r) => r,
                None => return,
            },
        };
        let mut next = run(shared, &mut session, first, &mut out).await;
        let mut batch = 1;
        while matches!(next, Next::Continue)
            && batch < MAX_PIPELINE_BATCH
            && out.len() < MAX_PENDING_REPLY_BYTES
        {
            // Only requests that are already buffered: never wait for the network here.
            match frames.next().now_or_never() {
                Some(Some(r)) => {
                    next = run(shared, &mut session, r, &mut out).await;
                    batch += 1;
                }
                Some(None) => {
                    next = Next::Close;
                }
                None => break,
            }
        }
        let write = writer.write_all(&out);
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
async fn run(
    shared: &Shared,
    session: &mut Session,
    item: Result<Request, ProtocolError>,
    out: &mut BytesMut,
) -> Next {
    match item {
        Ok(Request::Command(args)) => {
            let start = Instant::now();
            let (reply, name) = commands::execute(shared, session, args).await;
            shared
                .redis_commands_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::record_request("resp", name, start.elapsed(), !reply.is_error());
            reply.encode(out);
            if session.quit {
                Next::Close
            } else {
                Next::Continue
            }
        }
        Ok(Request::TooLarge(msg)) => {
            metrics::record_request("resp", "too_large", std::time::Duration::ZERO, false);
            Reply::err(msg).encode(out);
            Next::Continue
        }
        Err(ProtocolError::Malformed(msg)) => {
            tracing::debug!("closing connection after protocol error: {msg}");
            Reply::err(format!("Protocol error: {msg}")).encode(out);
            Next::Close
        }
        Err(ProtocolError::Io(e)) => {
            tracing::debug!("connection read failed: {e}");
            Next::Close
        }
    }
}
