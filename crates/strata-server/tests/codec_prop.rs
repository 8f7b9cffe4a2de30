//! Property tests of the RESP decoder: arbitrary bytes in arbitrary chunks never panic and never
//! make the buffer grow past the input plus one bounded bulk string; valid requests split at
//! arbitrary points decode to exactly what was encoded.

#![allow(clippy::unwrap_used, reason = "tests")]

use bytes::BytesMut;
use proptest::prelude::*;
use strata_server::resp::codec::{Limits, Request, RespCodec};
use tokio_util::codec::Decoder;

const LIMITS: Limits = Limits {
    max_bulk_len: 512,
    max_array_len: 64,
    max_inline_len: 256,
    max_request_bytes: 4096,
};

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Feeds `input` in chunks of the given sizes; returns the requests decoded before any error.
fn feed(input: &[u8], chunks: &[usize]) -> Vec<Request> {
    let mut codec = RespCodec::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut sizes = chunks.iter().cycle();
    while at < input.len() {
        let n = (*sizes.next().unwrap()).clamp(1, input.len() - at);
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(_) => return out,
            }
        }
        // Bounded allocation: what stays buffered is at most one header line or one bulk
        // string within the limits, plus the chunk just added.
        assert!(
            buf.len() <= LIMITS.max_bulk_len + LIMITS.max_inline_len + 64 + n,
            "buffered {} bytes",
            buf.len()
        );
        assert!(
            buf.capacity() <= 64 * 1024 + 2 * (LIMITS.max_bulk_len + LIMITS.max_inline_len + n)
        );
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        feed(&input, &chunks);
    }

    #[test]
    fn resp_shaped_garbage_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"-1".to_vec()), Just(b"99999999999999999999".to_vec()),
                Just(b"3".to_vec()), Just(b"\"".to_vec()), Just(b"\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8),
            ],
            0..64,
        ),
        chunks in proptest::collection::vec(1usize..16, 1..4),
    ) {
        let input: Vec<u8> = parts.concat();
        feed(&input, &chunks);
    }

    #[test]
    fn valid_requests_round_trip(
        reqs in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
            1..20,
        ),
        chunks in proptest::collection::vec(1usize..50, 1..6),
    ) {
        let input: Vec<u8> = reqs.iter().flat_map(|r| encode(r)).collect();
        let got = feed(&input, &chunks);
        let want: Vec<Request> = reqs
            .iter()
            .map(|r| Request::Command(r.iter().map(|a| bytes::Bytes::from(a.clone())).collect()))
            .collect();
        prop_assert_eq!(got, want);
    }
}
