//! [`BearerToken`]: the access token a gRPC caller sends as `authorization: Bearer <token>`,
//! as a tonic interceptor. The client library and the nodes of a cluster (on their Raft RPCs)
//! both send it; servers check it.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

/// Adds `authorization: Bearer <token>` to every request, or nothing when there is no token.
#[derive(Debug, Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

/// The token cannot be sent as a header value (it is not printable ASCII).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidToken;

impl BearerToken {
    /// Sends `token`, or nothing when `None`.
    pub fn new(token: Option<&str>) -> Result<BearerToken, InvalidToken> {
        token
            .map(|t| format!("Bearer {t}").parse().map_err(|_| InvalidToken))
            .transpose()
            .map(BearerToken)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_header_only_with_a_token() {
        let mut with = BearerToken::new(Some("s3cret")).unwrap();
        let req = with.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        let mut without = BearerToken::new(None).unwrap();
        let req = without.call(tonic::Request::new(())).unwrap();
        assert!(req.metadata().get("authorization").is_none());
        assert_eq!(
            BearerToken::new(Some("line\nbreak")).unwrap_err(),
            InvalidToken
        );
    }
}
