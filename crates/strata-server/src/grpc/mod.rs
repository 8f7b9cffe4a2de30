//! The gRPC front end: the `strata.v1` KV and Admin services over tonic, the token check run
//! before every call, and the mapping of service errors to gRPC status codes.

pub mod admin;
pub mod kv;

use std::time::Instant;

use strata_cluster::Error as KvError;
use tonic::{Code, Request, Status};

use crate::auth::Token;
use crate::metrics;

/// Maps a key-value service error to a gRPC status.
pub fn status(e: &KvError) -> Status {
    let code = match e {
        KvError::InvalidKey { .. }
        | KvError::ValueTooLarge { .. }
        | KvError::InvalidArgument(_)
        | KvError::NotAnInteger => Code::InvalidArgument,
        KvError::CrossSlot => Code::FailedPrecondition,
        KvError::Overflow => Code::OutOfRange,
        KvError::NotLeader { .. } | KvError::Unavailable(_) => Code::Unavailable,
        _ => Code::Internal,
    };
    let mut status = Status::new(code, e.to_string());
    if let KvError::NotLeader {
        leader: Some(leader),
    } = e
        && let Ok(v) = leader.parse()
    {
        status.metadata_mut().insert("strata-leader", v);
    }
    status
}

/// Builds the interceptor that checks `authorization: Bearer <token>` when a token is set.
pub fn auth_interceptor(
    token: Option<Token>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let Some(token) = &token else {
            return Ok(req);
        };
        match req.metadata().get("authorization") {
            Some(v) if token.matches_bearer(v.as_bytes()) => Ok(req),
            Some(_) => Err(Status::unauthenticated("invalid access token")),
            None => Err(Status::unauthenticated(
                "missing access token (authorization: Bearer <token>)",
            )),
        }
    }
}

/// Records a finished call in the metrics and passes its result through.
pub fn observe<T>(
    command: &'static str,
    start: Instant,
    result: Result<T, Status>,
) -> Result<T, Status> {
    metrics::record_request("grpc", command, start.elapsed(), result.is_ok());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_errors_map_to_retryable_or_precondition_codes() {
        assert_eq!(status(&KvError::CrossSlot).code(), Code::FailedPrecondition);
        let s = status(&KvError::Unavailable(
            "partition 3 has no leader; retry".into(),
        ));
        assert_eq!(s.code(), Code::Unavailable);
        let s = status(&KvError::NotLeader {
            leader: Some("127.0.0.1:7402".into()),
        });
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("127.0.0.1:7402"), "{}", s.message());
        assert_eq!(
            s.metadata()
                .get("strata-leader")
                .and_then(|v| v.to_str().ok()),
            Some("127.0.0.1:7402")
        );
    }
}
