//! [`Transport`]: how the client's calls reach a server. Plaintext connections are HTTP/2
//! connections of the `h2` crate driven directly ([`H2Channel`]); TLS connections are tonic's
//! [`Channel`].
//!
//! Why not tonic's `Channel` for everything: a unary call through it costs the client a hop
//! through the channel's buffer task, two tasks spawned by hyper for the call, and two socket
//! writes, because hyper sends a request body only once the stream has flow-control capacity,
//! which h2 grants only after the connection task has sent the headers. So every request went
//! out as a HEADERS write and then a DATA write (`strace` of `strata bench`: 1.97 `writev` per
//! read), and on loopback each write also pays the receiver's side of TCP. A unary request's
//! body is in hand when the call starts, so [`H2Channel`] queues the headers and the whole
//! body at once; h2 then writes them in one go, and the call runs on the caller's task.
//!
//! The generated tonic clients run unchanged on top: they still encode and decode the
//! messages, set `grpc-timeout`, and read `grpc-status` from the trailers. [`H2Channel`] is
//! public so that other gRPC clients can use it too (the benchmark's etcd client does, so that
//! both systems' clients pay the same per call).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::Channel;

/// The error a call fails with (tonic maps it to a [`Status`]).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Stream-level flow-control window the client offers servers (hyper's default for clients).
const STREAM_WINDOW: u32 = 2 << 20;
/// Connection-level flow-control window (hyper's default for clients).
const CONNECTION_WINDOW: u32 = 5 << 20;

/// A connection to one server: [`H2Channel`] for plaintext, tonic's [`Channel`] for TLS.
#[derive(Debug, Clone)]
pub(crate) enum Transport {
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
            Transport::Direct(channel) => Box::pin(channel.clone().send(request)),
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

#[derive(Debug)]
struct Shared {
    /// `host:port` to connect to.
    addr: String,
    /// The `:authority` of every request.
    authority: Authority,
    connect_timeout: Duration,
    /// The open connection's request handle and its number; `None` before the first call and
    /// after the connection ended.
    current: Mutex<Option<(u64, h2::client::SendRequest<Bytes>)>>,
    /// Held while a connection is being opened, so concurrent callers wait for one attempt.
    connecting: tokio::sync::Mutex<()>,
    /// Numbers the connections opened.
    opened: AtomicU64,
}

/// Why a connection could not be used: the request was not sent, so the server did nothing.
fn unavailable(addr: &str, what: &str, e: impl std::fmt::Display) -> BoxError {
    Box::new(Status::unavailable(format!("{addr}: {what}: {e}")))
}

impl H2Channel {
    /// A channel to `uri` (`http://host:port`) that connects on its first call, allowing
    /// `connect_timeout` for each connection attempt.
    ///
    /// # Errors
    /// When `uri` is not an `http://` URI with a host.
    pub fn lazy(uri: &Uri, connect_timeout: Duration) -> Result<H2Channel, String> {
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!("{uri}: only http:// is served without TLS"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{uri}: no host and port"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(H2Channel {
            shared: Arc::new(Shared {
                addr: format!("{}:{port}", authority.host()),
                authority,
                connect_timeout,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                opened: AtomicU64::new(0),
            }),
        })
    }

    /// Opens the connection now, so that an unreachable server is reported at once; the error
    /// says why it could not be opened.
    ///
    /// # Errors
    /// Why the connection could not be opened (refused, timed out, handshake failed).
    pub async fn connect(&self) -> Result<(), String> {
        self.sender().await.map(|_| ())
    }

    /// The open connection's request handle, opening one when there is none.
    async fn sender(&self) -> Result<(u64, h2::client::SendRequest<Bytes>), String> {
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
            let (number, sender) = self
                .sender()
                .await
                .map_err(|reason| unavailable(&self.shared.addr, "cannot connect", reason))?;
            match sender.ready().await {
                Ok(sender) => return Ok(sender),
                Err(e) => {
                    self.shared.forget(number);
                    if retried {
                        return Err(unavailable(&self.shared.addr, "connection lost", e));
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
        unavailable(&self.addr, "cannot open a stream", e)
    }

    /// Opens a connection (TCP with `TCP_NODELAY`, then the HTTP/2 handshake) within the
    /// connect timeout, runs it on a task of its own, and makes it the current one.
    async fn open(this: &Arc<Shared>) -> Result<(u64, h2::client::SendRequest<Bytes>), String> {
        let handshake = async {
            let tcp = tokio::net::TcpStream::connect(&this.addr).await?;
            tcp.set_nodelay(true)?;
            let (sender, connection) = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake::<_, Bytes>(tcp)
                .await
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>((sender, connection))
        };
        let (sender, connection) = tokio::time::timeout(this.connect_timeout, handshake)
            .await
            .map_err(|_| format!("timed out after {:?}", this.connect_timeout))?
            .map_err(|e| e.to_string())?;
        let number = this.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let shared: Weak<Shared> = Arc::downgrade(this);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection to the server ended");
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
