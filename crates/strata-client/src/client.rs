//! [`Client`]: connects to a Strata server and makes KV and Admin calls with deadlines and
//! retries of idempotent calls.

use std::future::Future;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use strata_proto::auth::BearerToken;
use strata_proto::transport::{ChannelError, H2Channel, Transport};
use strata_proto::v1 as pb;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::kv_client::KvClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::batch::{Batch, BatchOutcome};
use crate::options::{ClientOptions, TlsOptions};
use crate::retry::{backoff, is_retryable};
use crate::routing::Routes;
use crate::{Error, Result};

/// The service stack every call goes through: a connection with the token interceptor.
pub(crate) type Svc = InterceptedService<Transport, BearerToken>;

/// Largest message either way (a value may be 16 MiB, a batch several).
const MAX_MESSAGE: usize = 64 << 20;

/// A connection to one server, or to a cluster through one of its nodes. Cheap to clone; clones
/// share the connections (HTTP/2 multiplexes concurrent calls over each). Connected to a
/// cluster with [`ClientOptions::route_to_leaders`], gets, puts, deletes and batches go
/// straight to the leader of their key's partition ([`crate::routing`]).
#[derive(Debug, Clone)]
pub struct Client {
    kv: KvClient<Svc>,
    admin: AdminClient<Svc>,
    opts: ClientOptions,
    routes: Option<Arc<Routes>>,
}

/// Turns `host:port`, `http://…` or `https://…` into a URI, choosing the scheme from the TLS
/// options when none is given.
fn uri(addr: &str, tls: bool) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// Opens channels to servers with the client's options: timeouts, TLS and the token.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) opts: ClientOptions,
    interceptor: BearerToken,
}

impl Connector {
    fn new(opts: ClientOptions) -> Result<Connector> {
        let interceptor =
            BearerToken::new(opts.token.as_deref()).map_err(|_| Error::InvalidToken)?;
        Ok(Connector { opts, interceptor })
    }

    fn invalid(addr: &str, reason: impl ToString) -> Error {
        Error::InvalidAddress {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The connection to `addr`, not opened yet: HTTP/2 driven directly without TLS
    /// ([`strata_proto::transport`]), tonic's channel with it.
    fn transport(&self, addr: &str) -> Result<Transport> {
        match &self.opts.tls {
            Some(tls) => Ok(Transport::Tonic(
                self.tls_endpoint(addr, tls)?.connect_lazy(),
            )),
            None => Ok(Transport::Direct(self.plaintext(addr)?)),
        }
    }

    /// The plaintext channel to `addr`, not opened yet.
    fn plaintext(&self, addr: &str) -> Result<H2Channel> {
        let uri: http::Uri = uri(addr, false)
            .parse()
            .map_err(|e| Self::invalid(addr, e))?;
        H2Channel::lazy(&uri, self.opts.connect_timeout).map_err(|e| Self::invalid(addr, e))
    }

    /// tonic's endpoint for a TLS connection to `addr` with the settings `tls`.
    fn tls_endpoint(&self, addr: &str, tls: &TlsOptions) -> Result<Endpoint> {
        let mut cfg = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca_pem {
            cfg = cfg.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some(d) = &tls.domain {
            cfg = cfg.domain_name(d.clone());
        }
        Endpoint::from_shared(uri(addr, true))
            .map_err(|e| Self::invalid(addr, e))?
            .connect_timeout(self.opts.connect_timeout)
            .tcp_nodelay(true)
            .tls_config(cfg)
            .map_err(|e| Error::Connect {
                addr: addr.to_string(),
                reason: e.to_string(),
            })
    }

    /// Connects to `addr`, waiting at most the connect timeout.
    async fn connect(&self, addr: &str) -> Result<Transport> {
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_string(),
            reason,
        };
        let Some(tls) = &self.opts.tls else {
            let channel = self.plaintext(addr)?;
            channel.connect().await.map_err(|e| match e {
                ChannelError::Connect { reason, .. } => connect_err(reason),
                bad @ ChannelError::BadAddress { .. } => Self::invalid(addr, bad),
            })?;
            return Ok(Transport::Direct(channel));
        };
        let endpoint = self.tls_endpoint(addr, tls)?;
        let timeout = self.opts.connect_timeout;
        let channel = tokio::time::timeout(timeout, endpoint.connect())
            .await
            .map_err(|_| connect_err(format!("timed out after {timeout:?}")))?
            .map_err(|e| {
                // The transport error's own text is terse; its source says what happened.
                let mut reason = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    reason = format!("{reason}: {s}");
                    src = s.source();
                }
                connect_err(reason)
            })?;
        Ok(Transport::Tonic(channel))
    }

    fn kv(&self, channel: Transport) -> KvClient<Svc> {
        KvClient::with_interceptor(channel, self.interceptor.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// A KV client of `addr` that connects on its first call.
    pub(crate) fn lazy_kv(&self, addr: &str) -> Result<KvClient<Svc>> {
        Ok(self.kv(self.transport(addr)?))
    }

    fn admin(&self, channel: Transport) -> AdminClient<Svc> {
        AdminClient::with_interceptor(channel, self.interceptor.clone())
    }

    /// An Admin client of `addr` that connects on its first call.
    pub(crate) fn lazy_admin(&self, addr: &str) -> Result<AdminClient<Svc>> {
        Ok(self.admin(self.transport(addr)?))
    }
}

impl Client {
    /// Connects to `addr` (`host:port`, or a `http://`/`https://` URI), waiting at most
    /// `opts.connect_timeout`. With `opts.route_to_leaders`, also asks it for the cluster's
    /// partition leaders (a single server has none).
    pub async fn connect(addr: &str, opts: ClientOptions) -> Result<Client> {
        let connector = Connector::new(opts.clone())?;
        let channel = connector.connect(addr).await?;
        let kv = connector.kv(channel.clone());
        let admin = connector.admin(channel);
        let routes = if opts.route_to_leaders {
            Routes::discover(admin.clone(), connector).await
        } else {
            None
        };
        Ok(Client {
            kv,
            admin,
            opts,
            routes,
        })
    }

    /// Whether calls are routed to partition leaders (connected to a cluster with routing on).
    pub fn routes_to_leaders(&self) -> bool {
        self.routes.is_some()
    }

    /// The KV client to send a call about `key` to: its partition's leader when known (with the
    /// partition, to report a failure), else the node the client connected to.
    fn kv_for(&self, key: &[u8]) -> (KvClient<Svc>, Option<u16>) {
        if let Some(routes) = &self.routes {
            let partition = routes.partition_of(key);
            if let Some(kv) = routes.leader(partition) {
                return (kv, Some(partition));
            }
        }
        (self.kv.clone(), None)
    }

    /// Runs one attempt of a call about `key`, routed to its leader when known; a retryable
    /// failure there sends the next attempt through the connected node and refreshes routes.
    async fn routed<T, F, Fut>(&self, key: &[u8], call: F) -> Result<T>
    where
        F: FnOnce(KvClient<Svc>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let (kv, partition) = self.kv_for(key);
        let result = self.attempt(call(kv)).await;
        if let (Err(e), Some(p), Some(routes)) = (&result, partition, &self.routes)
            && is_retryable(e)
        {
            routes.failed(p);
        }
        result
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.opts.request_timeout);
        req
    }

    /// Runs one attempt under the request timeout.
    async fn attempt<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.opts.request_timeout, fut).await {
            Ok(r) => Ok(r?.into_inner()),
            Err(_) => Err(Error::Timeout(self.opts.request_timeout)),
        }
    }

    /// Runs an idempotent call, retrying retryable failures with backoff.
    async fn idempotent<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if is_retryable(&e) && attempt < self.opts.max_retries => {
                    let wait = backoff(attempt, self.opts.initial_backoff, self.opts.max_backoff);
                    tracing::debug!("retrying after {wait:?}: {e}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Reads `key` (linearizable).
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, pb::Consistency::Linearizable).await
    }

    /// Reads `key` with the given consistency.
    pub async fn get_with(
        &self,
        key: &[u8],
        consistency: pb::Consistency,
    ) -> Result<Option<Vec<u8>>> {
        self.idempotent(|| async {
            let req = self.request(pb::GetRequest {
                key: key.to_vec(),
                consistency: consistency as i32,
            });
            let reply = self.routed(key, |mut kv| async move { kv.get(req).await });
            reply.await.map(|r| r.value)
        })
        .await
    }

    /// Sets `key` to `value` (retried: writing the same value twice is harmless).
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.idempotent(|| async {
            let req = self.request(pb::PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
            });
            let reply = self.routed(key, |mut kv| async move { kv.put(req).await });
            reply.await.map(|_| ())
        })
        .await
    }

    /// Deletes `key` (retried: deleting twice is harmless).
    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.idempotent(|| async {
            let req = self.request(pb::DeleteRequest { key: key.to_vec() });
            let reply = self.routed(key, |mut kv| async move { kv.delete(req).await });
            reply.await.map(|_| ())
        })
        .await
    }

    /// Applies a batch atomically if its preconditions hold. Conditional batches are never
    /// retried (a lost reply does not tell whether the first attempt applied); unconditional
    /// ones are.
    pub async fn batch(&self, batch: Batch) -> Result<BatchOutcome> {
        let once = || async {
            let req = self.request(batch.req.clone());
            let reply = self.routed(
                batch.first_key(),
                |mut kv| async move { kv.batch(req).await },
            );
            reply.await.map(|r| BatchOutcome {
                applied: r.applied,
                failed_precondition: (!r.applied)
                    .then(|| usize::try_from(r.failed_precondition).ok())
                    .flatten(),
            })
        };
        if batch.is_unconditional() {
            self.idempotent(once).await
        } else {
            once().await
        }
    }

    /// Sets `key` to `new` only if it currently holds `expected` (`None`: only if absent).
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool> {
        let b = match expected {
            Some(v) => Batch::new().if_equals(key, v),
            None => Batch::new().if_absent(key),
        };
        Ok(self.batch(b.put(key, new)).await?.applied)
    }

    /// Opens a streamed scan of `[start, end)` (`end` empty: unbounded), at most `limit` pairs
    /// (0: no limit). The stream is not retried once started.
    pub async fn scan_stream(
        &self,
        start: &[u8],
        end: &[u8],
        limit: u64,
    ) -> Result<impl Stream<Item = Result<(Vec<u8>, Vec<u8>)>> + use<>> {
        self.open_scan(start, end, limit, false).await
    }

    /// Counts the keys in `[start, end)` (`end` empty: unbounded) with a keys-only scan, so no
    /// value crosses the network. Retried as a whole on retryable failures.
    pub async fn count(&self, start: &[u8], end: &[u8]) -> Result<u64> {
        self.idempotent(|| async {
            let mut n = 0u64;
            let mut s = std::pin::pin!(self.open_scan(start, end, 0, true).await?);
            while let Some(item) = s.next().await {
                item?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    /// Opens a streamed scan; with `keys_only` the server sends every value empty.
    async fn open_scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: u64,
        keys_only: bool,
    ) -> Result<impl Stream<Item = Result<(Vec<u8>, Vec<u8>)>> + use<>> {
        let stream = self
            .idempotent(|| async {
                let mut kv = self.kv.clone();
                let req = self.request(pb::ScanRequest {
                    start: start.to_vec(),
                    end: end.to_vec(),
                    limit,
                    consistency: pb::Consistency::Linearizable as i32,
                    keys_only,
                });
                self.attempt(kv.scan(req)).await
            })
            .await?;
        Ok(stream.flat_map(|chunk| {
            let items: Vec<Result<(Vec<u8>, Vec<u8>)>> = match chunk {
                Ok(c) => c.pairs.into_iter().map(|p| Ok((p.key, p.value))).collect(),
                Err(s) => vec![Err(Error::Status(s))],
            };
            futures::stream::iter(items)
        }))
    }

    /// Scans `[start, end)` into a vector (retried as a whole on retryable failures).
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: u64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.idempotent(|| async {
            let mut out = Vec::new();
            let mut s = std::pin::pin!(self.scan_stream(start, end, limit).await?);
            while let Some(item) = s.next().await {
                out.push(item?);
            }
            Ok(out)
        })
        .await
    }

    /// The server's identity, addresses and uptime.
    pub async fn status(&self) -> Result<pb::StatusResponse> {
        self.idempotent(|| async {
            let mut admin = self.admin.clone();
            let req = self.request(pb::StatusRequest {});
            self.attempt(admin.status(req)).await
        })
        .await
    }

    /// Adds node `id`, reachable at `addr` (its gRPC address), to every partition of the
    /// cluster (a learner until it has caught up, then a voter). Idempotent, so it is retried
    /// like a read; give it a `request_timeout` long enough for the new node to catch up.
    pub async fn add_node(&self, id: u64, addr: &str) -> Result<pb::MembershipResponse> {
        self.idempotent(|| async {
            let mut admin = self.admin.clone();
            let req = self.request(pb::AddNodeRequest {
                id,
                addr: addr.to_string(),
            });
            self.attempt(admin.add_node(req)).await
        })
        .await
    }

    /// Removes node `id` from every partition of the cluster. Idempotent.
    pub async fn remove_node(&self, id: u64) -> Result<pb::MembershipResponse> {
        self.idempotent(|| async {
            let mut admin = self.admin.clone();
            let req = self.request(pb::RemoveNodeRequest { id });
            self.attempt(admin.remove_node(req)).await
        })
        .await
    }

    /// The server's engine statistics.
    pub async fn stats(&self) -> Result<pb::StatsResponse> {
        self.idempotent(|| async {
            let mut admin = self.admin.clone();
            let req = self.request(pb::StatsRequest {});
            self.attempt(admin.stats(req)).await
        })
        .await
    }

    /// Compacts `[start, end]` (empty bounds: unbounded). Not retried, and not bound by the
    /// request timeout's usual scale: pass a generous `ClientOptions::request_timeout`.
    pub async fn compact(&self, start: &[u8], end: &[u8]) -> Result<pb::CompactResponse> {
        let mut admin = self.admin.clone();
        let req = self.request(pb::CompactRequest {
            start: start.to_vec(),
            end: end.to_vec(),
        });
        self.attempt(admin.compact(req)).await
    }

    /// Writes the server's memtable to a table file, returning once it is flushed. Retried
    /// when idempotent retries are on (a second flush of an empty memtable costs nothing).
    pub async fn flush(&self) -> Result<pb::FlushResponse> {
        self.idempotent(|| async {
            let mut admin = self.admin.clone();
            let req = self.request(pb::FlushRequest {});
            self.attempt(admin.flush(req)).await
        })
        .await
    }
}
