//! # strata-client
//!
//! An async Rust client for Strata's gRPC API (`strata.v1`). It connects with a timeout, puts a
//! deadline on every call, retries idempotent calls (get, put, delete, scan, status, stats) with
//! exponential backoff when the server is unavailable or slow, and never retries a conditional
//! batch, whose second attempt could apply on top of the first. It speaks TLS (a CA certificate
//! to trust) and sends the access token as `authorization: Bearer <token>`. Connected to a
//! cluster, it sends each keyed call straight to the leader of the key's partition.
//!
//! ```no_run
//! # async fn demo() -> strata_client::Result<()> {
//! use strata_client::{Client, ClientOptions};
//! let client = Client::connect("127.0.0.1:7400", ClientOptions::default()).await?;
//! client.put(b"user:1", b"alice").await?;
//! assert_eq!(client.get(b"user:1").await?, Some(b"alice".to_vec()));
//! // Compare-and-swap: only if user:1 still holds "alice".
//! let swapped = client.compare_and_swap(b"user:1", Some(b"alice"), b"bob").await?;
//! assert!(swapped);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`client`]: [`Client`]: connecting and the KV and Admin calls.
//! - [`options`]: [`ClientOptions`] and [`TlsOptions`].
//! - [`batch`]: [`Batch`], a builder of conditional atomic batches, and [`BatchOutcome`].
//! - [`retry`]: which failures are retried and the backoff schedule.
//! - [`routing`]: the table of partition leaders keyed calls are sent to.
//! - [`H2Channel`] (from [`strata_proto::transport`]): the HTTP/2 connection calls travel on.
//! - [`error`]: the [`Error`] enum and [`Result`].

pub mod batch;
pub mod client;
pub mod error;
pub mod options;
pub mod retry;
pub mod routing;

pub use batch::{Batch, BatchOutcome};
pub use client::Client;
pub use error::{Error, Result};
pub use options::{ClientOptions, MEMBERSHIP_TIMEOUT, TlsOptions};
pub use strata_proto::transport::H2Channel;
pub use strata_proto::v1::Consistency;
