//! The loop used when stdin is not a terminal: no prompt, no banner, plain parseable replies,
//! each flushed before the next line is read so a program can drive the REPL over a pipe.
//!
//! One reply per command line (blank lines and `#` comments get none):
//!
//! - `PUT`, `DELETE`, `FLUSH`, `COMPACT`: `OK`, printed once the change is durable.
//! - `GET`: the value, or `(nil)`.
//! - `SCAN`: one `key<TAB>value` line per entry, then an empty line.
//! - `COUNT`: the number.
//! - `STATS`: one `name<TAB>value` line per figure, then an empty line.
//! - `HELP`: the help text, then an empty line.
//! - any error: `ERR <message>` on one line. An error in the middle of a `SCAN` takes the place
//!   of its closing empty line; it is told from an entry by having no TAB.
//!
//! Keys and values are escaped with [`super::escape::escape`]: TAB, newline and backslash as
//! `\t`, `\n`, `\\`, and non-printable bytes as `\xHH`.

use std::io::{self, BufRead, Write};

use super::backend::Backend;
use super::render::PlainOutput;
use super::session::{Flow, Session};

/// Runs `session` over the lines of `input`, replying on `output`, until end of input or `EXIT`.
pub fn run<B: Backend>(
    session: &mut Session<B>,
    mut input: impl BufRead,
    output: impl Write,
) -> io::Result<()> {
    let mut out = PlainOutput::new(output);
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let flow = session.handle_line(text, &mut out)?;
        out.flush()?;
        if flow == Flow::Exit {
            return Ok(());
        }
    }
}
