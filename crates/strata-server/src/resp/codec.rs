//! The RESP2 request decoder: multi-bulk arrays (`*N\r\n$len\r\narg\r\n...`) and inline commands
//! (`PING\r\n`), parsed incrementally as bytes arrive, with limits on every length a peer
//! controls. A bulk string or a request over its limit is skipped without being buffered and
//! answered with an error, so the connection stays usable; bytes that cannot be framed at all
//! are a [`ProtocolError`], after which the connection is closed (as Redis does).

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Limits on what one request may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (one argument), in bytes.
    pub max_bulk_len: usize,
    /// Most arguments in one request.
    pub max_array_len: usize,
    /// Longest inline command line or `*`/`$` header line, in bytes.
    pub max_inline_len: usize,
    /// Most bytes of arguments in one request.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: strata_engine::MAX_VALUE_LEN,
            max_array_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_request_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A command and its arguments (never empty).
    Command(Vec<Bytes>),
    /// A well-framed request that broke a size limit; it was skipped and gets this error.
    TooLarge(String),
}

/// Bytes that cannot be parsed as RESP; the connection must be closed after replying.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A malformed header, length or terminator.
    #[error("Protocol error: {0}")]
    Malformed(String),
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An array being read: arguments so far and how many remain.
#[derive(Debug)]
struct Partial {
    remaining: usize,
    args: Vec<Bytes>,
    bytes: usize,
    too_large: Option<String>,
}

/// The decoder. Keeps the array in progress between calls, so each byte is parsed once.
#[derive(Debug)]
pub struct RespCodec {
    limits: Limits,
    partial: Option<Partial>,
    /// Bytes of a skipped bulk string (and its CRLF) still to discard.
    skip: usize,
}

impl RespCodec {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        RespCodec {
            limits,
            partial: None,
            skip: 0,
        }
    }
}

fn malformed(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(msg.into())
}

/// Finds a `\r\n`-terminated line at the front of `buf`; returns its length without the CRLF.
fn find_line(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            if nl == 0 || buf.get(nl - 1) != Some(&b'\r') {
                return Err(malformed("expected CRLF line terminator"));
            }
            Ok(Some(nl - 1))
        }
        None if buf.len() > max => Err(malformed("too big header or inline request")),
        None => Ok(None),
    }
}

/// Parses the decimal integer of a `*`/`$` header (after its type byte).
fn parse_len(digits: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 20)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| malformed(format!("invalid {what} length")))
}

/// Splits an inline command line into arguments: whitespace separated, with `"..."` (backslash
/// escapes) and `'...'` quoting as in redis-cli.
fn split_inline(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while line.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let Some(&first) = line.get(i) else { break };
        let mut arg = Vec::new();
        if first == b'"' || first == b'\'' {
            i += 1;
            loop {
                let Some(&c) = line.get(i) else {
                    return Err(malformed("unbalanced quotes in request"));
                };
                i += 1;
                if c == first {
                    break;
                }
                if c == b'\\' && first == b'"' {
                    let Some(&e) = line.get(i) else {
                        return Err(malformed("unbalanced quotes in request"));
                    };
                    i += 1;
                    arg.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                } else {
                    arg.push(c);
                }
            }
            if line.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                return Err(malformed("closing quote must be followed by a space"));
            }
        } else {
            while let Some(&c) = line.get(i) {
                if c.is_ascii_whitespace() {
                    break;
                }
                arg.push(c);
                i += 1;
            }
        }
        args.push(Bytes::from(arg));
    }
    Ok(args)
}

impl RespCodec {
    /// Starts a request at the front of `buf`. Returns a finished inline request if there was one.
    fn start(&mut self, buf: &mut BytesMut) -> Result<Option<Option<Request>>, ProtocolError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first != b'*' {
            // Inline command: a bare `\n` terminator is accepted, as Redis does.
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                if buf.len() > self.limits.max_inline_len {
                    return Err(malformed("too big inline request"));
                }
                return Ok(None);
            };
            if nl > self.limits.max_inline_len {
                return Err(malformed("too big inline request"));
            }
            let line = buf.split_to(nl + 1);
            let body = line.get(..nl).unwrap_or_default();
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            let args = split_inline(body)?;
            return Ok(Some((!args.is_empty()).then_some(Request::Command(args))));
        }
        let Some(len) = find_line(buf, self.limits.max_inline_len)? else {
            return Ok(None);
        };
        let n = parse_len(buf.get(1..len).unwrap_or_default(), "multibulk")?;
        buf.advance(len + 2);
        if n <= 0 {
            // `*0` and `*-1` are empty requests: ignored, as Redis does.
            return Ok(Some(None));
        }
        let n = usize::try_from(n).map_err(|_| malformed("invalid multibulk length"))?;
        if n > self.limits.max_array_len {
            return Err(malformed(format!(
                "request has {n} arguments, the limit is {}",
                self.limits.max_array_len
            )));
        }
        self.partial = Some(Partial {
            remaining: n,
            args: Vec::with_capacity(n.min(64)),
            bytes: 0,
            too_large: None,
        });
        Ok(Some(None))
    }

    /// Reads the next bulk string of the array in progress. `Ok(false)` means more bytes are
    /// needed.
    fn bulk(&mut self, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        let limits = self.limits;
        let Some(p) = self.partial.as_mut() else {
            return Ok(true);
        };
        let Some(&first) = buf.first() else {
            return Ok(false);
        };
        if first != b'$' {
            return Err(malformed(format!(
                "expected '$', got '{}'",
                char::from(first).escape_default()
            )));
        }
        let Some(hdr) = find_line(buf, limits.max_inline_len)? else {
            return Ok(false);
        };
        let len = parse_len(buf.get(1..hdr).unwrap_or_default(), "bulk")?;
        let len = usize::try_from(len).map_err(|_| malformed("invalid bulk length"))?;
        let over_bulk = len > limits.max_bulk_len;
        let over_request = p.bytes.saturating_add(len) > limits.max_request_bytes;
        if over_bulk || over_request || p.too_large.is_some() {
            // Skip the payload without buffering it; the request is answered with an error.
            buf.advance(hdr + 2);
            self.skip = len.saturating_add(2);
            p.remaining -= 1;
            if p.too_large.is_none() {
                p.args.clear();
                p.too_large = Some(if over_bulk {
                    format!(
                        "bulk string of {len} bytes exceeds the limit of {} bytes",
                        limits.max_bulk_len
                    )
                } else {
                    format!(
                        "request exceeds the limit of {} bytes",
                        limits.max_request_bytes
                    )
                });
            }
            return Ok(true);
        }
        let total = hdr + 2 + len + 2;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(false);
        }
        if buf.get(total - 2..total) != Some(b"\r\n".as_slice()) {
            return Err(malformed("bulk string not terminated by CRLF"));
        }
        buf.advance(hdr + 2);
        let arg = buf.split_to(len).freeze();
        buf.advance(2);
        p.bytes += len;
        p.args.push(arg);
        p.remaining -= 1;
        Ok(true)
    }
}

impl Decoder for RespCodec {
    type Item = Request;
    type Error = ProtocolError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            match &self.partial {
                None => match self.start(buf)? {
                    None => return Ok(None),
                    Some(Some(req)) => return Ok(Some(req)),
                    Some(None) => continue,
                },
                Some(p) if p.remaining == 0 => {
                    let Some(p) = self.partial.take() else {
                        continue;
                    };
                    return Ok(Some(match p.too_large {
                        Some(msg) => Request::TooLarge(msg),
                        None => Request::Command(p.args),
                    }));
                }
                Some(_) => {
                    if !self.bulk(buf)? {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut RespCodec, bytes: &[u8]) -> Vec<Request> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        out
    }

    fn cmd(args: &[&str]) -> Request {
        Request::Command(args.iter().map(|a| Bytes::from(a.to_string())).collect())
    }

    #[test]
    fn arrays_and_inline() {
        let mut c = RespCodec::new(Limits::default());
        let reqs = decode_all(
            &mut c,
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset \"a b\" 'c'\n*0\r\n\r\n",
        );
        assert_eq!(
            reqs,
            vec![
                cmd(&["GET", "k"]),
                cmd(&["PING"]),
                cmd(&["set", "a b", "c"])
            ]
        );
    }

    #[test]
    fn byte_at_a_time() {
        let mut c = RespCodec::new(Limits::default());
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            if let Some(r) = c.decode(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got, vec![cmd(&["SET", "k", "value"])]);
    }

    #[test]
    fn oversized_bulk_is_skipped_and_next_request_parses() {
        let limits = Limits {
            max_bulk_len: 4,
            ..Limits::default()
        };
        let mut c = RespCodec::new(limits);
        let reqs = decode_all(
            &mut c,
            b"*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n",
        );
        assert!(matches!(reqs[0], Request::TooLarge(_)));
        assert_eq!(reqs[1], cmd(&["PING"]));
    }

    #[test]
    fn malformed_is_an_error() {
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n+PING\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$2\r\nabcd",
        ] {
            let mut c = RespCodec::new(Limits::default());
            let mut buf = BytesMut::from(bad);
            let mut res = c.decode(&mut buf);
            while let Ok(Some(_)) = res {
                res = c.decode(&mut buf);
            }
            assert!(res.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn huge_array_count_is_refused() {
        let mut c = RespCodec::new(Limits::default());
        let mut buf = BytesMut::from(&b"*99999999999\r\n"[..]);
        assert!(c.decode(&mut buf).is_err());
    }
}
