//! The REPL: parse a line, run it against a store, print the reply.
//!
//! - [`command`]: parsing a line into a [`command::Command`] (pure).
//! - [`escape`]: escaping bytes for output and unescaping quoted input.
//! - [`backend`]: the [`backend::Backend`] trait the REPL drives and the values it returns.
//! - [`embedded`]: the backend over a local `strata_engine::Db`.
//! - [`remote`]: the backend over a server's gRPC API (`strata connect`).
//! - [`session`]: running commands against a backend, reporting to an output.
//! - [`render`]: plain (parseable) and pretty (terminal) output, the `STATS` table.
//! - [`terminal`]: the interactive rustyline loop.
//! - [`piped`]: the loop for scripts and pipes.

pub mod backend;
pub mod command;
pub mod embedded;
pub mod escape;
pub mod piped;
pub mod remote;
pub mod render;
pub mod session;
pub mod terminal;

use backend::Backend;
use render::Style;
use session::Session;
use std::io::IsTerminal as _;

/// Runs the REPL over `backend`: interactive if stdin is a terminal, plain otherwise. `what`
/// names the store in the terminal's banner ("embedded store in data").
pub fn run<B: Backend>(backend: B, what: &str) -> anyhow::Result<()> {
    let mut session = Session::new(backend);
    let stdout = std::io::stdout();
    if std::io::stdin().is_terminal() {
        let style = Style::detect(stdout.is_terminal());
        terminal::run(&mut session, what, style, stdout.lock())
    } else {
        let stdin = std::io::stdin().lock();
        match piped::run(&mut session, stdin, std::io::BufWriter::new(stdout.lock())) {
            // A reader that went away (`strata < script | head`) is not an error worth a message.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }
}
