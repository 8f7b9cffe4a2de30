//! [`ClientOptions`]: timeouts, retries, token, TLS and routing to partition leaders.

use std::time::Duration;

/// A `request_timeout` for [`Client::add_node`](crate::Client::add_node) and
/// [`Client::remove_node`](crate::Client::remove_node): a server gives a membership change up
/// to two minutes, as every partition's new replica catches up first.
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(180);

/// How a client connects and calls.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to establish the connection.
    pub connect_timeout: Duration,
    /// Deadline of each attempt of a call (sent to the server as `grpc-timeout`, too).
    pub request_timeout: Duration,
    /// Extra attempts for idempotent calls after a retryable failure.
    pub max_retries: u32,
    /// Backoff before the first retry; doubled each time up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Access token sent as `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Connect with TLS.
    pub tls: Option<TlsOptions>,
    /// Connected to a cluster, send each get, put, delete and batch straight to the leader of
    /// its key's partition (learned from the node connected to, refreshed as leaders move)
    /// instead of through that node, which would forward it.
    pub route_to_leaders: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_retries: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            token: None,
            tls: None,
            route_to_leaders: true,
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM CA certificate(s) to trust; `None` trusts nothing extra (the connection then needs
    /// a certificate the platform already trusts, which this build does not load).
    pub ca_pem: Option<Vec<u8>>,
    /// Name to verify the server certificate against; defaults to the address's host.
    pub domain: Option<String>,
}
