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
        | KvError::NotAnInteger
        | KvError::CrossSlot => Code::InvalidArgument,
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
