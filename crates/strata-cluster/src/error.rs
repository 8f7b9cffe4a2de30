//! The errors a [`KvService`](crate::KvService) call can return. Variants are structured so the
//! server can map each to a gRPC status code and a RESP error reply.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a key-value request can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key that is empty or longer than [`MAX_KEY_LEN`](strata_engine::MAX_KEY_LEN).
    #[error("key of {len} bytes is invalid: keys must be 1 to {max} bytes")]
    InvalidKey {
        /// Length of the rejected key.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value longer than [`MAX_VALUE_LEN`](strata_engine::MAX_VALUE_LEN).
    #[error("value of {len} bytes is too large: the limit is {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A request that makes no sense (an empty batch, a reversed range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An increment on a value that is not a decimal 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotAnInteger,

    /// An increment whose result does not fit in a signed 64-bit integer.
    #[error("increment or decrement would overflow")]
    Overflow,

    /// This node does not lead the partition that owns the key (cluster mode).
    #[error("not the leader{}", leader.as_deref().map(|l| format!("; try {l}")).unwrap_or_default())]
    NotLeader {
        /// The address of the leader, when known.
        leader: Option<String>,
    },

    /// The keys of one atomic request belong to different partitions (cluster mode).
    #[error("keys in request don't hash to the same slot")]
    CrossSlot,

    /// The service cannot serve the request now (shutting down, no quorum); retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),

    /// The storage engine failed.
    #[error("storage error: {0}")]
    Storage(#[source] strata_engine::Error),

    /// A bug or a crashed worker task: the request's outcome is unknown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<strata_engine::Error> for Error {
    fn from(e: strata_engine::Error) -> Self {
        match e {
            strata_engine::Error::InvalidKey { len, max } => Error::InvalidKey { len, max },
            strata_engine::Error::ValueTooLarge { len, max } => Error::ValueTooLarge { len, max },
            strata_engine::Error::InvalidArgument(msg) => Error::InvalidArgument(msg),
            strata_engine::Error::Closed => Error::Unavailable("store is closed".into()),
            other => Error::Storage(other),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("worker task failed: {e}"))
    }
}
