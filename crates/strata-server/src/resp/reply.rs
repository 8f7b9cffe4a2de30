//! RESP2 replies and their encoding onto the connection's output buffer.

use bytes::{BufMut, BytesMut};

/// One reply to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`-style status line.
    Simple(&'static str),
    /// `-ERR ...` error line; the text must carry its prefix (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len\r\n...` bulk string.
    Bulk(Vec<u8>),
    /// `$-1`, the null bulk string.
    Nil,
    /// `*n` followed by the elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple("OK");

    /// A `-ERR` error with `msg`.
    pub fn err(msg: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {msg}"))
    }

    /// The error Redis gives for a wrong number of arguments.
    pub fn wrong_arity(cmd: &str) -> Reply {
        Reply::err(format!(
            "wrong number of arguments for '{}' command",
            cmd.to_ascii_lowercase()
        ))
    }

    /// `-ERR syntax error`.
    pub fn syntax() -> Reply {
        Reply::err("syntax error")
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP2 encoding to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Simple(s) => {
                out.put_u8(b'+');
                out.put_slice(s.as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Error(s) => {
                out.put_u8(b'-');
                // An error line must not contain CR or LF.
                for b in s.bytes() {
                    out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
                }
                out.put_slice(b"\r\n");
            }
            Reply::Integer(n) => {
                out.put_u8(b':');
                out.put_slice(n.to_string().as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Bulk(b) => {
                out.put_u8(b'$');
                out.put_slice(b.len().to_string().as_bytes());
                out.put_slice(b"\r\n");
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                out.put_u8(b'*');
                out.put_slice(items.len().to_string().as_bytes());
                out.put_slice(b"\r\n");
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let mut out = BytesMut::new();
        Reply::Array(vec![
            Reply::OK,
            Reply::Integer(-3),
            Reply::Bulk(b"hi".to_vec()),
            Reply::Nil,
            Reply::err("bad\r\nthing"),
        ])
        .encode(&mut out);
        assert_eq!(
            &out[..],
            b"*5\r\n+OK\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n-ERR bad  thing\r\n"
        );
    }
}
