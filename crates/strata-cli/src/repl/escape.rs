//! Escaping bytes for output, and the inverse the parser uses for quoted strings.
//!
//! Output escaping keeps printable text as it is (UTF-8 included) and writes everything a
//! line-oriented reader could trip over as an escape: TAB as `\t`, newline as `\n`, backslash as
//! `\\`, and any other control character or byte that is not valid UTF-8 as `\xHH`, one escape
//! per byte. [`unescape`] reads that form back, so `unescape(&escape(b)) == b` for any bytes.

use std::fmt::Write as _;

/// Why the body of a quoted string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnescapeError {
    /// A backslash at the very end of the text.
    #[error("a backslash ends the string without an escape after it")]
    TrailingBackslash,
    /// `\x` not followed by two hexadecimal digits.
    #[error("\\x must be followed by two hex digits")]
    BadHex,
    /// A backslash followed by a character that is not an escape.
    #[error("unknown escape \\{0}")]
    UnknownEscape(char),
}

/// Escapes `bytes` for one-line output (see the module docs for the rules).
pub fn escape(bytes: &[u8]) -> String {
    escape_with(bytes, false)
}

/// Escapes `bytes` and wraps them in double quotes, also escaping `"`: the result can be typed
/// back as a quoted key or value.
pub fn quote(bytes: &[u8]) -> String {
    format!("\"{}\"", escape_with(bytes, true))
}

/// True if `bytes` would be printed unchanged by [`escape`].
pub fn is_plain(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.chars().all(|c| c != '\\' && !c.is_control()))
}

fn escape_with(bytes: &[u8], escape_quote: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\\' => out.push_str("\\\\"),
                '"' if escape_quote => out.push_str("\\\""),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        push_hex(&mut out, b);
                    }
                }
                c => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\x{b:02x}");
}

/// Reads escaped text back into bytes: `\t`, `\n`, `\r`, `\0`, `\\`, `\"` and `\xHH`; every other
/// character stands for its UTF-8 bytes.
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, UnescapeError> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some((&e, tail)) = rest.split_first() else {
            return Err(UnescapeError::TrailingBackslash);
        };
        rest = tail;
        match e {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'"' => out.push(b'"'),
            b'x' => {
                let (hex, tail) = rest.split_at_checked(2).ok_or(UnescapeError::BadHex)?;
                let hex = std::str::from_utf8(hex).map_err(|_| UnescapeError::BadHex)?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(UnescapeError::BadHex);
                }
                out.push(u8::from_str_radix(hex, 16).map_err(|_| UnescapeError::BadHex)?);
                rest = tail;
            }
            other => return Err(UnescapeError::UnknownEscape(char::from(other))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_unchanged() {
        assert_eq!(escape(b"user:1 {\"a\":1}"), "user:1 {\"a\":1}");
        assert_eq!(escape("héllo wörld".as_bytes()), "héllo wörld");
        assert!(is_plain(b"hello world"));
    }

    #[test]
    fn special_bytes_are_escaped() {
        assert_eq!(escape(b"a\tb\nc\\d"), "a\\tb\\nc\\\\d");
        assert_eq!(escape(b"\x00\x7f\r"), "\\x00\\x7f\\x0d");
        assert_eq!(escape(b"\xff\xfe"), "\\xff\\xfe");
        assert!(!is_plain(b"a\tb"));
        assert!(!is_plain(b"\xff"));
    }

    #[test]
    fn quote_escapes_double_quotes() {
        assert_eq!(quote(b"say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn unescape_reads_every_escape() {
        assert_eq!(
            unescape(br#"a\tb\nc\\d\"e\x41\xff\r\0"#).unwrap(),
            b"a\tb\nc\\d\"eA\xff\r\0"
        );
    }

    #[test]
    fn unescape_rejects_bad_escapes() {
        assert_eq!(unescape(b"abc\\"), Err(UnescapeError::TrailingBackslash));
        assert_eq!(unescape(b"\\x4"), Err(UnescapeError::BadHex));
        assert_eq!(unescape(b"\\xzz"), Err(UnescapeError::BadHex));
        assert_eq!(unescape(b"\\q"), Err(UnescapeError::UnknownEscape('q')));
    }

    #[test]
    fn round_trip_all_single_bytes_and_pairs() {
        for a in 0..=255u8 {
            let one = [a];
            assert_eq!(unescape(escape(&one).as_bytes()).unwrap(), one);
            for b in [0u8, b'\\', b'x', b'"', 0x80, 0xc3, 0xa9, 0xff] {
                let two = [a, b];
                assert_eq!(unescape(escape(&two).as_bytes()).unwrap(), two);
            }
        }
    }

    #[test]
    fn round_trip_through_quote() {
        let samples: [&[u8]; 4] = [b"", b"say \"hi\"\n", "é\u{85}\u{7f}".as_bytes(), b"\\x41"];
        for s in samples {
            let q = quote(s);
            let body = &q.as_bytes()[1..q.len() - 1];
            assert_eq!(unescape(body).unwrap(), s);
        }
    }

    #[test]
    fn round_trip_pseudo_random_bytes() {
        // A small deterministic generator keeps the test reproducible without a dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            assert_eq!(unescape(escape(&bytes).as_bytes()).unwrap(), bytes);
        }
    }
}
