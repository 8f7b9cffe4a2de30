//! Parsing one input line into a [`Command`]. Pure: no I/O, no store.
//!
//! Command words are case-insensitive. Arguments are separated by spaces or tabs and are either
//! bare (taken byte for byte) or double-quoted with backslash escapes (`\t \n \r \0 \\ \" \xHH`),
//! which lets keys and values hold spaces, newlines and arbitrary bytes. The value of `PUT` is
//! the rest of the line (leading and trailing blanks trimmed) unless it starts with `"`, in which
//! case it is one quoted string and nothing may follow it.

use super::escape::{UnescapeError, unescape};

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Read the value of `key`.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// List the entries in `[start, end)`, at most `limit` of them.
    Scan {
        /// First key listed (unbounded if `None`).
        start: Option<Vec<u8>>,
        /// First key not listed (unbounded if `None`).
        end: Option<Vec<u8>>,
        /// Most entries to list (all if `None`).
        limit: Option<usize>,
    },
    /// Count the live keys.
    Count,
    /// Show the engine's statistics.
    Stats,
    /// Compact the whole store.
    Compact,
    /// Write the memtable to a table.
    Flush,
    /// Show the list of commands.
    Help,
    /// Leave the REPL.
    Exit,
}

/// Why a line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The first word is not a command.
    #[error("unknown command '{0}' (type HELP for the list)")]
    UnknownCommand(String),
    /// A required argument is missing.
    #[error("wrong number of arguments: usage: {usage}")]
    MissingArgument {
        /// How the command is used.
        usage: &'static str,
    },
    /// More arguments than the command takes.
    #[error("too many arguments: usage: {usage}")]
    TooManyArguments {
        /// How the command is used.
        usage: &'static str,
    },
    /// A quoted string with no closing quote.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// Something directly after a closing quote, or after a quoted `PUT` value.
    #[error("unexpected text after a closing quote")]
    TextAfterQuote,
    /// A bad backslash escape inside a quoted string.
    #[error("bad escape in quoted string: {0}")]
    BadEscape(#[from] UnescapeError),
    /// `LIMIT` without a non-negative number, or not at the end of `SCAN`.
    #[error("LIMIT must be followed by a non-negative number and end the command")]
    BadLimit,
}

const PUT_USAGE: &str = "PUT key value";
const GET_USAGE: &str = "GET key";
const DELETE_USAGE: &str = "DELETE key";
const SCAN_USAGE: &str = "SCAN [start [end]] [LIMIT n]";

/// One argument: its bytes after unescaping, and whether it was quoted.
#[derive(Debug)]
struct Token {
    bytes: Vec<u8>,
    quoted: bool,
}

impl Token {
    fn is_word(&self, word: &str) -> bool {
        !self.quoted && self.bytes.eq_ignore_ascii_case(word.as_bytes())
    }
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_blank(b)).count();
    s.get(n..).unwrap_or_default()
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&b| is_blank(b)).count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// Reads the next argument of `s`, returning it and what follows; `None` at the end of the line.
fn next_token(s: &[u8]) -> Result<Option<(Token, &[u8])>, ParseError> {
    let s = skip_blanks(s);
    let Some((&first, body)) = s.split_first() else {
        return Ok(None);
    };
    if first != b'"' {
        let n = s.iter().take_while(|&&b| !is_blank(b)).count();
        let (bytes, rest) = s.split_at(n);
        let token = Token {
            bytes: bytes.to_vec(),
            quoted: false,
        };
        return Ok(Some((token, rest)));
    }
    let mut i = 0;
    let close = loop {
        match body.get(i) {
            None => return Err(ParseError::UnterminatedQuote),
            Some(b'\\') => i += 2,
            Some(b'"') => break i,
            Some(_) => i += 1,
        }
    };
    let inner = body.get(..close).unwrap_or_default();
    let rest = body.get(close + 1..).unwrap_or_default();
    if rest.first().is_some_and(|&b| !is_blank(b)) {
        return Err(ParseError::TextAfterQuote);
    }
    let token = Token {
        bytes: unescape(inner)?,
        quoted: true,
    };
    Ok(Some((token, rest)))
}

fn all_tokens(mut s: &[u8]) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    while let Some((t, rest)) = next_token(s)? {
        tokens.push(t);
        s = rest;
    }
    Ok(tokens)
}

/// Takes exactly one argument from `s`.
fn one_key(s: &[u8], usage: &'static str) -> Result<Vec<u8>, ParseError> {
    let mut tokens = all_tokens(s)?.into_iter();
    match (tokens.next(), tokens.next()) {
        (Some(key), None) => Ok(key.bytes),
        (None, _) => Err(ParseError::MissingArgument { usage }),
        (Some(_), Some(_)) => Err(ParseError::TooManyArguments { usage }),
    }
}

fn no_args(s: &[u8], cmd: Command, usage: &'static str) -> Result<Command, ParseError> {
    if skip_blanks(s).is_empty() {
        Ok(cmd)
    } else {
        Err(ParseError::TooManyArguments { usage })
    }
}

fn parse_put(s: &[u8]) -> Result<Command, ParseError> {
    let (key, rest) = next_token(s)?.ok_or(ParseError::MissingArgument { usage: PUT_USAGE })?;
    let rest = trim_end(skip_blanks(rest));
    if rest.is_empty() {
        return Err(ParseError::MissingArgument { usage: PUT_USAGE });
    }
    let value = if rest.first() == Some(&b'"') {
        let (value, after) = next_token(rest)?.ok_or(ParseError::UnterminatedQuote)?;
        if !skip_blanks(after).is_empty() {
            return Err(ParseError::TextAfterQuote);
        }
        value.bytes
    } else {
        rest.to_vec()
    };
    Ok(Command::Put {
        key: key.bytes,
        value,
    })
}

fn parse_scan(s: &[u8]) -> Result<Command, ParseError> {
    let mut tokens = all_tokens(s)?;
    let mut limit = None;
    if let Some(pos) = tokens.iter().position(|t| t.is_word("LIMIT")) {
        if pos + 2 != tokens.len() {
            return Err(ParseError::BadLimit);
        }
        let n = tokens.pop().ok_or(ParseError::BadLimit)?;
        let n = std::str::from_utf8(&n.bytes)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or(ParseError::BadLimit)?;
        limit = Some(n);
        tokens.truncate(pos);
    }
    if tokens.len() > 2 {
        return Err(ParseError::TooManyArguments { usage: SCAN_USAGE });
    }
    let mut bounds = tokens
        .into_iter()
        .map(|t| Some(t.bytes).filter(|b| !b.is_empty()));
    Ok(Command::Scan {
        start: bounds.next().flatten(),
        end: bounds.next().flatten(),
        limit,
    })
}

/// Parses one line. Blank lines and lines starting with `#` give `Ok(None)`.
pub fn parse(line: &[u8]) -> Result<Option<Command>, ParseError> {
    let line = skip_blanks(line);
    if line.is_empty() || line.first() == Some(&b'#') {
        return Ok(None);
    }
    let n = line.iter().take_while(|&&b| !is_blank(b)).count();
    let (word, rest) = line.split_at(n);
    let word = String::from_utf8_lossy(word).to_ascii_uppercase();
    let cmd = match word.as_str() {
        "PUT" | "SET" => parse_put(rest)?,
        "GET" => Command::Get {
            key: one_key(rest, GET_USAGE)?,
        },
        "DELETE" | "DEL" => Command::Delete {
            key: one_key(rest, DELETE_USAGE)?,
        },
        "SCAN" => parse_scan(rest)?,
        "COUNT" => no_args(rest, Command::Count, "COUNT")?,
        "STATS" => no_args(rest, Command::Stats, "STATS")?,
        "COMPACT" => no_args(rest, Command::Compact, "COMPACT")?,
        "FLUSH" => no_args(rest, Command::Flush, "FLUSH")?,
        "HELP" | "?" => Command::Help,
        "EXIT" | "QUIT" => no_args(rest, Command::Exit, "EXIT")?,
        _ => return Err(ParseError::UnknownCommand(word)),
    };
    Ok(Some(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes()).unwrap().unwrap()
    }

    fn err(line: &str) -> ParseError {
        parse(line.as_bytes()).unwrap_err()
    }

    fn put(key: &[u8], value: &[u8]) -> Command {
        Command::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn blank_and_comment_lines_are_nothing() {
        assert_eq!(parse(b"").unwrap(), None);
        assert_eq!(parse(b"  \t ").unwrap(), None);
        assert_eq!(parse(b"# a comment").unwrap(), None);
    }

    #[test]
    fn command_words_are_case_insensitive() {
        assert_eq!(ok("get a"), Command::Get { key: b"a".to_vec() });
        assert_eq!(ok("GeT a"), Command::Get { key: b"a".to_vec() });
        assert_eq!(ok("count"), Command::Count);
        assert_eq!(ok("Stats"), Command::Stats);
        assert_eq!(ok("compact"), Command::Compact);
        assert_eq!(ok("FLUSH"), Command::Flush);
        assert_eq!(ok("help"), Command::Help);
        assert_eq!(ok("exit"), Command::Exit);
        assert_eq!(ok("QUIT"), Command::Exit);
        assert_eq!(ok("del k"), Command::Delete { key: b"k".to_vec() });
        assert_eq!(ok("delete k"), Command::Delete { key: b"k".to_vec() });
    }

    #[test]
    fn put_value_is_the_rest_of_the_line() {
        assert_eq!(
            ok(r#"PUT user:1 {"name":"Alice","age":30}"#),
            put(b"user:1", br#"{"name":"Alice","age":30}"#)
        );
        assert_eq!(ok("put k  hello  world  "), put(b"k", b"hello  world"));
        assert_eq!(ok("PUT k a\"b"), put(b"k", b"a\"b"));
    }

    #[test]
    fn quoted_keys_and_values_unescape() {
        assert_eq!(
            ok(r#"PUT "my key" "tab\there\nnew \"line\" \x00\xff\\""#),
            put(b"my key", b"tab\there\nnew \"line\" \x00\xff\\")
        );
        assert_eq!(ok(r#"PUT "k" """#), put(b"k", b""));
        assert_eq!(
            ok(r#"GET "a b""#),
            Command::Get {
                key: b"a b".to_vec()
            }
        );
    }

    #[test]
    fn bare_tokens_are_literal() {
        assert_eq!(
            ok(r"GET a\tb"),
            Command::Get {
                key: b"a\\tb".to_vec()
            }
        );
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        assert_eq!(
            parse(b"PUT k\xff v\xfe").unwrap(),
            Some(put(b"k\xff", b"v\xfe"))
        );
    }

    #[test]
    fn put_errors() {
        assert_eq!(err("PUT"), ParseError::MissingArgument { usage: PUT_USAGE });
        assert_eq!(
            err("PUT k"),
            ParseError::MissingArgument { usage: PUT_USAGE }
        );
        assert_eq!(
            err("PUT k   "),
            ParseError::MissingArgument { usage: PUT_USAGE }
        );
        assert_eq!(err(r#"PUT k "abc"#), ParseError::UnterminatedQuote);
        assert_eq!(err(r#"PUT k "abc" def"#), ParseError::TextAfterQuote);
        assert_eq!(err(r#"PUT "k"x v"#), ParseError::TextAfterQuote);
        assert_eq!(
            err(r#"PUT k "a\qb""#),
            ParseError::BadEscape(UnescapeError::UnknownEscape('q'))
        );
        assert_eq!(
            err(r#"PUT k "a\x4""#),
            ParseError::BadEscape(UnescapeError::BadHex)
        );
    }

    #[test]
    fn argument_count_errors() {
        assert_eq!(err("GET"), ParseError::MissingArgument { usage: GET_USAGE });
        assert_eq!(
            err("GET a b"),
            ParseError::TooManyArguments { usage: GET_USAGE }
        );
        assert_eq!(
            err("DELETE"),
            ParseError::MissingArgument {
                usage: DELETE_USAGE
            }
        );
        assert_eq!(
            err("COUNT x"),
            ParseError::TooManyArguments { usage: "COUNT" }
        );
        assert_eq!(
            err("SCAN a b c"),
            ParseError::TooManyArguments { usage: SCAN_USAGE }
        );
    }

    #[test]
    fn unknown_commands_are_named() {
        assert_eq!(err("frob x"), ParseError::UnknownCommand("FROB".into()));
    }

    #[test]
    fn scan_forms() {
        let scan = |start: Option<&[u8]>, end: Option<&[u8]>, limit| Command::Scan {
            start: start.map(<[u8]>::to_vec),
            end: end.map(<[u8]>::to_vec),
            limit,
        };
        assert_eq!(ok("SCAN"), scan(None, None, None));
        assert_eq!(ok("scan a"), scan(Some(b"a"), None, None));
        assert_eq!(ok("scan a z"), scan(Some(b"a"), Some(b"z"), None));
        assert_eq!(
            ok("scan a z limit 5"),
            scan(Some(b"a"), Some(b"z"), Some(5))
        );
        assert_eq!(ok("SCAN LIMIT 3"), scan(None, None, Some(3)));
        assert_eq!(ok(r#"SCAN "" m"#), scan(None, Some(b"m"), None));
        assert_eq!(ok(r#"SCAN "limit""#), scan(Some(b"limit"), None, None));
        assert_eq!(err("SCAN LIMIT"), ParseError::BadLimit);
        assert_eq!(err("SCAN a LIMIT x"), ParseError::BadLimit);
        assert_eq!(err("SCAN a LIMIT -1"), ParseError::BadLimit);
        assert_eq!(err("SCAN LIMIT 3 a"), ParseError::BadLimit);
    }
}
