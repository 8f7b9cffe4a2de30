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

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
    let limit = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("redis accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let span = tracing::debug_span!("redis_conn", %peer);
            let _permit = permit;
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
