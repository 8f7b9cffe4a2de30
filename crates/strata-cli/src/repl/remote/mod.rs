//! [`Remote`]: the [`Backend`] over a Strata server's gRPC API, for `strata connect`.
//!
//! The REPL is synchronous, so the backend owns a small runtime and blocks on each call. The
//! runtime has one worker thread of its own rather than running only inside `block_on`: the
//! connection's HTTP/2 keep-alive pings must be answered while the user is thinking, or the
//! server would close an idle session. A connection that is lost is reported as an error and
//! re-established by the next command (tonic's channel reconnects, and idempotent calls are
//! retried with backoff).

mod stats;

use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use futures::{Stream, StreamExt as _};
use strata_client::{Client, ClientOptions};
use tokio::runtime::Runtime;

use super::backend::{
    Backend, BackendError, CompactEvent, CompactSummary, Entry, EntryIter, StatsReport,
};

/// How long a `COMPACT` may take before the REPL gives up waiting for it.
const COMPACT_TIMEOUT: Duration = Duration::from_secs(3600);

/// A session with one server.
#[derive(Debug)]
pub struct Remote {
    runtime: Runtime,
    client: Client,
    addr: String,
    opts: ClientOptions,
}

impl Remote {
    /// Connects to the server at `addr` (`host:port` or an `http(s)://` URI).
    pub fn connect(addr: &str, opts: ClientOptions) -> anyhow::Result<Remote> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strata-connect")
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        // Only the words: the client's error chain would repeat them.
        let client = runtime
            .block_on(Client::connect(addr, opts.clone()))
            .map_err(|e| anyhow::anyhow!("{}", remote_error(addr, e)))?;
        Ok(Remote {
            runtime,
            client,
            addr: addr.to_owned(),
            opts,
        })
    }

    /// The server's node name and version, for the banner.
    pub fn describe(&self) -> String {
        match self.runtime.block_on(self.client.status()) {
            Ok(s) => format!("node {} (Strata {})", s.node_id, s.version),
            Err(e) => format!("status unavailable: {}", remote_error(&self.addr, e)),
        }
    }

    fn block_on<T>(
        &self,
        fut: impl Future<Output = strata_client::Result<T>>,
    ) -> Result<T, BackendError> {
        self.runtime
            .block_on(fut)
            .map_err(|e| remote_error(&self.addr, e))
    }
}

/// Words for a client error: a lost server is told apart from a refused request.
fn remote_error(addr: &str, source: strata_client::Error) -> BackendError {
    use strata_client::Error as E;
    use tonic::Code;
    let message = match &source {
        E::Connect { reason, .. } => format!("cannot reach the server at {addr}: {reason}"),
        E::Timeout(d) => format!("the server at {addr} did not answer within {d:?}"),
        E::Status(s) => match s.code() {
            Code::Unavailable | Code::Cancelled | Code::Unknown => format!(
                "connection to {addr} lost ({}); the next command reconnects",
                s.message()
            ),
            Code::Unauthenticated | Code::PermissionDenied => {
                format!("the server refused the token: {}", s.message())
            }
            _ => s.message().to_owned(),
        },
        other => other.to_string(),
    };
    BackendError::Remote { message, source }
}

type PairStream = Pin<Box<dyn Stream<Item = strata_client::Result<Entry>> + Send>>;

/// A streamed scan read one entry at a time; dropping it cancels the rest of the stream.
struct RemoteScan<'a> {
    remote: &'a Remote,
    stream: PairStream,
}

impl Iterator for RemoteScan<'_> {
    type Item = Result<Entry, BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.remote.runtime.block_on(self.stream.next())?;
        Some(item.map_err(|e| remote_error(&self.remote.addr, e)))
    }
}

impl Backend for Remote {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.block_on(self.client.get(key))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        // The server acknowledges a put once it is synced, as the embedded store does.
        self.block_on(self.client.put(key, value))
    }

    fn delete(&self, key: &[u8]) -> Result<(), BackendError> {
        self.block_on(self.client.delete(key))
    }

    fn scan(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Result<EntryIter<'_>, BackendError> {
        // On the wire an empty end means "unbounded"; here it is an empty range, as in the
        // embedded store.
        if end == Some(b"".as_slice()) {
            return Ok(Box::new(std::iter::empty()));
        }
        let stream = self.block_on(self.client.scan_stream(
            start.unwrap_or_default(),
            end.unwrap_or_default(),
            0,
        ))?;
        Ok(Box::new(RemoteScan {
            remote: self,
            stream: Box::pin(stream),
        }))
    }

    fn count(&self) -> Result<u64, BackendError> {
        self.block_on(self.client.count(b"", b""))
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.block_on(self.client.flush()).map(|_| ())
    }

    fn compact(
        &self,
        events: &mut dyn FnMut(CompactEvent),
    ) -> Result<CompactSummary, BackendError> {
        let before = self.block_on(self.client.stats())?;
        // The server flushes before it compacts, so a non-empty memtable is one more table.
        events(CompactEvent::Started {
            tables: stats::table_files(&before) + usize::from(before.memtable_bytes > 0),
        });
        // A compaction outlasts the usual request deadline, so it gets a connection of its own
        // with a long one (and no retries: it is not idempotent in cost).
        let opts = ClientOptions {
            request_timeout: COMPACT_TIMEOUT,
            max_retries: 0,
            ..self.opts.clone()
        };
        let r = self.block_on(async {
            Client::connect(&self.addr, opts)
                .await?
                .compact(b"", b"")
                .await
        })?;
        Ok(CompactSummary {
            tables_before: usize::try_from(r.files_before).unwrap_or(usize::MAX),
            tables_after: usize::try_from(r.files_after).unwrap_or(usize::MAX),
            bytes_before: r.bytes_before,
            bytes_after: r.bytes_after,
            keys_removed: r.keys_dropped,
            bytes_reclaimed: r.bytes_before.saturating_sub(r.bytes_after),
            duration: Duration::from_micros(r.duration_micros),
        })
    }

    fn stats(&self) -> Result<StatsReport, BackendError> {
        let engine = self.block_on(self.client.stats())?;
        let status = self.block_on(self.client.status())?;
        Ok(stats::report(&engine, &status))
    }
}
