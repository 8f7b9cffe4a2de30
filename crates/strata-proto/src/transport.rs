//! [`Transport`]: how gRPC calls reach a server, for the client library and for the nodes'
//! Raft transport. Plaintext connections are HTTP/2 connections of the `h2` crate driven
//! directly ([`H2Channel`]); TLS connections are tonic's [`Channel`].
//!
//! Why not tonic's `Channel` for everything: a unary call through it costs the caller a hop
//! through the channel's buffer task, two tasks spawned by hyper for the call, and two socket
//! writes, because hyper sends a request body only once the stream has flow-control capacity,
//! which h2 grants only after the connection task has sent the headers. So every request went
//! out as a HEADERS write and then a DATA write (`strace` of `strata bench`: 1.97 `writev` per
//! read), and on loopback each write also pays the receiver's side of TCP. A unary request's
//! body is in hand when the call starts, so [`H2Channel`] queues the headers and the whole
//! body at once; h2 then writes them in one go, and the call runs on the caller's task.
//!
//! The generated tonic clients run unchanged on top: they still encode and decode the
//! messages, set `grpc-timeout`, and read `grpc-status` from the trailers. Any generated
//! client can use [`H2Channel`] (the benchmark's etcd client does, so that both systems'
//! clients pay the same per call).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::uri::{Authority, Scheme, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::body::Body;
use tonic::transport::Channel;

/// The error a call fails with (tonic maps it to a `Status`).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Stream-level flow-control window the client offers servers (hyper's default for clients).
const STREAM_WINDOW: u32 = 2 << 20;
/// Connection-level flow-control window (hyper's default for clients).
const CONNECTION_WINDOW: u32 = 5 << 20;

/// Why an [`H2Channel`] could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The address is not one a plaintext channel can reach.
    #[error("{uri}: {reason}")]
    BadAddress {
        /// The URI given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection could not be opened.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address connected to.
        addr: String,
        /// What went wrong (refused, timed out, the HTTP/2 handshake failed).
        reason: String,
    },
}

/// A byte stream to a server made by a [`Connector`].
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Opens the byte streams of an [`H2Channel`] instead of TCP (a simulated network in tests).
pub type Connector = Arc<dyn Fn() -> BoxFuture<'static, io::Result<Box<dyn Io>>> + Send + Sync>;

/// How often an idle or busy connection is checked with an HTTP/2 PING, and how long its
/// answer may take before the connection is dropped (the next call opens a new one).
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    /// Time between PINGs.
    pub interval: Duration,
    /// How long a PING may go unanswered.
    pub timeout: Duration,
}

/// A connection to one server: [`H2Channel`] for plaintext, tonic's [`Channel`] for TLS.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Plaintext HTTP/2 over TCP, driven directly.
    Direct(H2Channel),
    /// tonic's channel (TLS).
    Tonic(Channel),
}

impl tower_service::Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            // Readiness is awaited inside the call, on a connection it may first have to open.
            Transport::Direct(_) => Poll::Ready(Ok(())),
            Transport::Tonic(channel) => channel.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self {
            Transport::Direct(channel) => channel.call(request),
            Transport::Tonic(channel) => {
                let call = channel.call(request);
                Box::pin(async move {
                    let response = call.await?;
                    Ok(response.map(Body::new))
                })
            }
        }
    }
}

/// One plaintext HTTP/2 connection to a gRPC server, opened on first use and again after it
/// breaks; a `tower` service for tonic's generated clients. Clones share the connection; HTTP/2
/// multiplexes their concurrent calls. Request bodies are sent whole (unary and server-streaming
/// calls; a client-streaming call would be collected before it is sent).
#[derive(Debug, Clone)]
pub struct H2Channel {
    shared: Arc<Shared>,
}

struct Shared {
    /// `host:port` to connect to.
    addr: String,
    /// The `:authority` of every request.
    authority: Authority,
    connect_timeout: Duration,
    /// Opens the byte stream; `None`: TCP to `addr`.
    connector: Option<Connector>,
    keep_alive: Option<KeepAlive>,
    /// The open connection's request handle and its number; `None` before the first call and
    /// after the connection ended.
    current: Mutex<Option<(u64, h2::client::SendRequest<Bytes>)>>,
    /// Held while a connection is being opened, so concurrent callers wait for one attempt.
    connecting: tokio::sync::Mutex<()>,
    /// Numbers the connections opened.
    opened: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Channel")
            .field("addr", &self.addr)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

/// A call that failed before its request left this node, so the server did nothing and the
/// call may be tried again anywhere. tonic reports it as `UNAVAILABLE`, with this error in the
/// status's source chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotSent(String);

/// The error of a call whose request was not sent (see [`NotSent`]).
fn not_sent(reason: String) -> BoxError {
    Box::new(tonic::ConnectError(Box::new(NotSent(reason))))
}

impl H2Channel {
    /// A channel to `uri` (`http://host:port`) that connects on its first call, allowing
    /// `connect_timeout` for each connection attempt.
    ///
    /// # Errors
    /// When `uri` is not an `http://` URI with a host.
    pub fn lazy(uri: &Uri, connect_timeout: Duration) -> Result<H2Channel, ChannelError> {
        Self::build(uri, connect_timeout, None, None)
    }

    /// Like [`lazy`](Self::lazy), with the byte streams opened by `connector` (`None`: TCP)
    /// and the connection checked as `keep_alive` says (`None`: never).
    ///
    /// # Errors
    /// When `uri` is not an `http://` URI with a host.
    pub fn build(
        uri: &Uri,
        connect_timeout: Duration,
        connector: Option<Connector>,
        keep_alive: Option<KeepAlive>,
    ) -> Result<H2Channel, ChannelError> {
        let bad = |reason| ChannelError::BadAddress {
            uri: uri.to_string(),
            reason,
        };
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(bad("only http:// is served without TLS"));
        }
        let authority = uri.authority().cloned().ok_or(bad("no host and port"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(H2Channel {
            shared: Arc::new(Shared {
                addr: format!("{}:{port}", authority.host()),
                authority,
                connect_timeout,
                connector,
                keep_alive,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                opened: AtomicU64::new(0),
            }),
        })
    }

    /// Opens the connection now, so that an unreachable server is reported at once.
    ///
    /// # Errors
    /// Why the connection could not be opened (refused, timed out, handshake failed).
    pub async fn connect(&self) -> Result<(), ChannelError> {
        self.sender().await.map(|_| ())
    }

    /// The open connection's request handle, opening one when there is none.
    async fn sender(&self) -> Result<(u64, h2::client::SendRequest<Bytes>), ChannelError> {
        if let Some(current) = self.shared.current() {
            return Ok(current);
        }
        let _one_at_a_time = self.shared.connecting.lock().await;
        if let Some(current) = self.shared.current() {
            return Ok(current);
        }
        Shared::open(&self.shared).await
    }

    /// Sends `request` and returns the response, whose body streams the server's data frames
    /// and then its trailers.
    async fn send(self, request: http::Request<Body>) -> Result<http::Response<Body>, BoxError> {
        let (mut head, body) = request.into_parts();
        // The generated clients give a path only; HTTP/2 also needs the scheme and authority.
        let mut uri = std::mem::take(&mut head.uri).into_parts();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(self.shared.authority.clone());
        head.uri = Uri::from_parts(uri)?;
        // A unary request's body is one encoded message, ready at once.
        let data = body.collect().await?.to_bytes();
        let mut sender = self.ready_sender().await?;
        let (response, mut stream) = sender
            .send_request(http::Request::from_parts(head, ()), data.is_empty())
            .map_err(|e| self.shared.failed_before_sending(e))?;
        if !data.is_empty() {
            // Queued with the headers; h2 writes both when its connection task next runs.
            stream.send_data(data, true)?;
        }
        let response = response.await?;
        Ok(response.map(|recv| Body::new(ResponseBody::new(recv))))
    }

    /// A request handle whose connection can take a new stream now. A connection found broken
    /// is dropped and one new connection tried: nothing was sent on it.
    async fn ready_sender(&self) -> Result<h2::client::SendRequest<Bytes>, BoxError> {
        let mut retried = false;
        loop {
            let (number, sender) = self.sender().await.map_err(|e| not_sent(e.to_string()))?;
            match sender.ready().await {
                Ok(sender) => return Ok(sender),
                Err(e) => {
                    self.shared.forget(number);
                    if retried {
                        return Err(not_sent(format!(
                            "{}: connection lost: {e}",
                            self.shared.addr
                        )));
                    }
                    retried = true;
                }
            }
        }
    }
}

impl tower_service::Service<http::Request<Body>> for H2Channel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited inside the call, on a connection it may first have to open.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

impl Shared {
    fn current(&self) -> Option<(u64, h2::client::SendRequest<Bytes>)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Forgets connection `number` (it ended or failed), so that the next call opens another.
    fn forget(&self, number: u64) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|(n, _)| *n == number) {
            *current = None;
        }
    }

    /// A stream could not be opened: nothing reached the server.
    fn failed_before_sending(&self, e: h2::Error) -> BoxError {
        not_sent(format!("{}: cannot open a stream: {e}", self.addr))
    }

    /// Opens a connection (TCP with `TCP_NODELAY`, or the connector's stream, then the HTTP/2
    /// handshake) within the connect timeout, runs it on a task of its own (with its
    /// keep-alive), and makes it the current one.
    async fn open(
        this: &Arc<Shared>,
    ) -> Result<(u64, h2::client::SendRequest<Bytes>), ChannelError> {
        let handshake = async {
            let stream: Box<dyn Io> = match &this.connector {
                Some(connect) => connect().await?,
                None => {
                    let tcp = tokio::net::TcpStream::connect(&this.addr).await?;
                    tcp.set_nodelay(true)?;
                    Box::new(tcp)
                }
            };
            h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake::<_, Bytes>(stream)
                .await
                .map_err(io::Error::other)
        };
        let failed = |reason: String| ChannelError::Connect {
            addr: this.addr.clone(),
            reason,
        };
        let (sender, mut connection) = tokio::time::timeout(this.connect_timeout, handshake)
            .await
            .map_err(|_| failed(format!("timed out after {:?}", this.connect_timeout)))?
            .map_err(|e| failed(e.to_string()))?;
        let number = this.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let shared: Weak<Shared> = Arc::downgrade(this);
        let pings = this.keep_alive.zip(connection.ping_pong());
        tokio::spawn(async move {
            let checked = async {
                match pings {
                    Some((every, pings)) => keep_alive(every, pings).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ended = &mut connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended");
                },
                e = checked => tracing::debug!(error = %e, "connection dropped"),
            }
            if let Some(shared) = shared.upgrade() {
                shared.forget(number);
            }
        });
        *this
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((number, sender.clone()));
        Ok((number, sender))
    }
}

/// PINGs the connection every `every.interval` until one goes unanswered for `every.timeout`
/// (or fails): returns why, and the caller drops the connection. A connection whose packets
/// are black-holed (a peer that vanished without a reset) would otherwise hold every call on it
/// until each timed out, long after the network healed.
async fn keep_alive(every: KeepAlive, mut pings: h2::PingPong) -> String {
    loop {
        tokio::time::sleep(every.interval).await;
        match tokio::time::timeout(every.timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return format!("ping failed: {e}"),
            Err(_) => return format!("ping unanswered for {:?}", every.timeout),
        }
    }
}

/// A response's body: the data frames, then the trailers (where gRPC puts its status).
struct ResponseBody {
    recv: h2::RecvStream,
    data_done: bool,
    done: bool,
}

impl ResponseBody {
    fn new(recv: h2::RecvStream) -> Self {
        let done = recv.is_end_stream();
        ResponseBody {
            recv,
            data_done: done,
            done,
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Hand the window back at once: the decoder holds the bytes from here on.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.data_done = true,
            }
        }
        let trailers = ready!(self.recv.poll_trailers(cx));
        self.done = true;
        Poll::Ready(match trailers {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test fails loudly on the first broken assumption"
    )]

    use super::*;
    use crate::v1::GetRequest;
    use crate::v1::kv_client::KvClient;

    fn channel(addr: std::net::SocketAddr, keep_alive: Option<KeepAlive>) -> H2Channel {
        let uri = format!("http://{addr}").parse().unwrap();
        H2Channel::build(&uri, Duration::from_millis(500), None, keep_alive).unwrap()
    }

    /// A call to a closed port fails as `UNAVAILABLE`, marked as never sent, so that callers
    /// may retry it anywhere.
    #[tokio::test]
    async fn a_call_that_cannot_connect_is_unavailable_and_not_sent() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let mut kv = KvClient::new(channel(addr, None));
        let status = kv
            .get(GetRequest {
                key: b"k".to_vec(),
                consistency: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
        let mut source = std::error::Error::source(&status);
        let mut found = false;
        while let Some(e) = source {
            found |= e.is::<NotSent>();
            source = e.source();
        }
        assert!(found, "no NotSent in the source chain of {status:?}");
    }

    /// A connection to a server that accepts and then never answers (its packets black-holed)
    /// is dropped once a PING goes unanswered, and the next call opens a new one.
    #[tokio::test]
    async fn an_unanswered_ping_drops_the_connection() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (stream, _) = silent.accept().await.unwrap();
                held.push(stream);
            }
        });
        let keep_alive = KeepAlive {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
        };
        let ch = channel(addr, Some(keep_alive));
        ch.connect().await.unwrap();
        assert!(ch.shared.current().is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            ch.shared.current().is_none(),
            "the silent connection was kept"
        );
        ch.connect().await.unwrap();
        assert_eq!(ch.shared.opened.load(Ordering::Relaxed), 2);
        accepted.abort();
    }
}
