//! The client's error type.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a client call can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address could not be turned into a URI.
    #[error("invalid server address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// The connection could not be established (refused, TLS failure, timeout).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The access token cannot be sent as a header.
    #[error("the access token contains characters not allowed in a header")]
    InvalidToken,
    /// The call did not finish within its timeout.
    #[error("request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The server answered with an error status.
    #[error("server error ({}): {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
}

impl Error {
    /// The gRPC status code, for server errors.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Error::Status(s) => Some(s.code()),
            Error::Timeout(_) => Some(tonic::Code::DeadlineExceeded),
            _ => None,
        }
    }
}
