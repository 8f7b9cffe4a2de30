//! The access token: checked on every gRPC call and by RESP `AUTH`, in constant time so the
//! comparison leaks nothing about how much of a guess was right.

use subtle::ConstantTimeEq;

/// A configured access token.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Wraps the configured secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Token(secret.into())
    }

    /// True when `given` is the token. The time taken depends only on the token's length.
    pub fn matches(&self, given: &[u8]) -> bool {
        let expected = self.0.as_slice();
        // Compare against a copy of `given` cut or padded to the token's length, so the loop
        // always runs over the token's bytes; the length check is folded in at the end.
        let mut padded = vec![0u8; expected.len()];
        for (dst, src) in padded.iter_mut().zip(given) {
            *dst = *src;
        }
        let same_len = (given.len() as u64).ct_eq(&(expected.len() as u64));
        bool::from(padded.as_slice().ct_eq(expected) & same_len)
    }

    /// Checks an `authorization` header value of the form `Bearer <token>`.
    pub fn matches_bearer(&self, header: &[u8]) -> bool {
        match header.strip_prefix(b"Bearer ") {
            Some(t) => self.matches(t),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        let t = Token::new("secret");
        assert!(t.matches(b"secret"));
        assert!(!t.matches(b"secre"));
        assert!(!t.matches(b"secrets"));
        assert!(!t.matches(b""));
        assert!(t.matches_bearer(b"Bearer secret"));
        assert!(!t.matches_bearer(b"secret"));
    }
}
