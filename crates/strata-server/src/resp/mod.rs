//! The Redis-protocol (RESP2) front end: the accept loop with its connection limit and optional
//! TLS, and the modules it is built from.

pub mod coalesce;
pub mod codec;
pub mod commands;
pub mod connection;
pub mod glob;
pub mod pipeline;
pub mod reply;
pub mod session;

use std::sync::Arc;

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::Shared;

/// Accepts connections until `shutdown` fires, each served by its own task tracked by
/// `tracker`. At most `config.max_connections` are served at once: past that, accepting pauses
/// and new clients wait in the kernel's backlog instead of exhausting memory or descriptors.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let connections = crate::listener::incoming(listener, "redis", shared.config.max_connections);
    tokio::pin!(connections);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            c = connections.next() => match c {
                Some(Ok(c)) => c,
                _ => break,
            },
        };
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let span = tracing::debug_span!("redis_conn", %peer);
            match tls {
                None => connection::handle(stream, &shared, shutdown).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            connection::handle(tls_stream, &shared, shutdown).await;
                        }
                        Ok(Err(e)) => tracing::debug!(parent: &span, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(parent: &span, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}
