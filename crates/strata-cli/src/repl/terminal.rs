//! The interactive loop used when stdin is a terminal: a banner, a prompt, line editing and a
//! persistent history through rustyline, and the friendly output.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rustyline::error::ReadlineError;
use rustyline::history::{DefaultHistory, History as _};
use rustyline::{Config, Editor};

use super::backend::Backend;
use super::render::{PrettyOutput, Style};
use super::session::{Flow, Session};

const PROMPT: &str = "strata> ";

/// Where the history is kept: `$STRATA_HISTORY` if set, else `~/.strata_history`.
///
/// It cannot live in the data directory: the engine refuses a directory holding files it did not
/// write, so a history file there would make the store unopenable.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STRATA_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".strata_history"))
}

/// Runs `session` interactively until `EXIT`, `QUIT` or Ctrl-D; `what` names the store in the
/// banner.
pub fn run<B: Backend>(
    session: &mut Session<B>,
    what: &str,
    style: Style,
    output: impl Write,
) -> anyhow::Result<()> {
    let config = Config::builder()
        .auto_add_history(true)
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .max_history_size(10_000)?
        .build();
    let mut editor: Editor<(), DefaultHistory> =
        Editor::with_config(config).context("cannot start line editing")?;
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is normal on first use; an unreadable one is not worth failing
        // the REPL for.
        if let Err(e) = editor.load_history(path) {
            tracing::debug!(path = %path.display(), error = %e, "no history loaded");
        }
    }

    let mut out = PrettyOutput::new(output, style);
    out.note(&format!(
        "Strata {} — {what}\nType HELP for the commands, EXIT or Ctrl-D to leave.",
        env!("CARGO_PKG_VERSION"),
    ))?;
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                let flow = session.handle_line(line.as_bytes(), &mut out)?;
                out.flush()?;
                if let Some(path) = &history
                    && let Err(e) = editor.history_mut().append(path)
                {
                    tracing::warn!(path = %path.display(), error = %e, "cannot save history");
                }
                if flow == Flow::Exit {
                    break;
                }
            }
            // Ctrl-C abandons the line being typed, as in a shell.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read the terminal"),
        }
    }
    Ok(())
}
