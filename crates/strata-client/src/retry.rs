//! Which failures are worth retrying, and how long to wait between attempts.

use std::time::Duration;

use tonic::Code;

use crate::Error;

/// True when an idempotent call that failed with `e` may succeed if tried again: the server was
/// unreachable, overloaded, or did not answer in time.
pub fn is_retryable(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted)
    )
}

/// The wait before retry number `attempt` (0-based): exponential from `initial`, capped at
/// `max`, with up to 50% jitter so many clients do not retry in lockstep.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let base = initial
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 2000.0);
    base.saturating_sub(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let i = Duration::from_millis(10);
        let m = Duration::from_millis(100);
        assert!(backoff(0, i, m) <= i);
        assert!(backoff(0, i, m) >= i / 2);
        assert!(backoff(10, i, m) <= m);
        assert!(backoff(10, i, m) >= m / 2);
        assert!(is_retryable(&Error::Timeout(i)));
        assert!(!is_retryable(&Error::Status(
            tonic::Status::invalid_argument("x")
        )));
    }
}
