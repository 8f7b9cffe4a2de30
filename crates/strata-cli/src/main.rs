//! The `strata` binary.
//!
//! `strata` alone (or `strata repl`) opens the REPL on a local store in `./data`, or in the
//! directory given by `--data`. Further subcommands (`server`, `connect`, `bench`, `admin`) will
//! sit beside `repl` in [`Subcommand`].
//!
//! # Layout
//!
//! - `main.rs`: arguments, logging, opening the store, exit status.
//! - [`repl`]: the REPL: parsing, escaping, the backend trait and its embedded implementation,
//!   the session, rendering, and the terminal and piped loops.

mod repl;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use strata_engine::{Db, Options};

/// Strata: an embeddable and distributed key-value store.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// Store directory; a missing one is created and initialised.
    #[arg(long, global = true, value_name = "DIR", default_value = "data")]
    data: PathBuf,

    #[command(subcommand)]
    command: Option<Subcommand>,
}

/// What to run; the REPL when none is given.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Open the interactive REPL on the local store (the default).
    Repl,
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Subcommand::Repl) {
        Subcommand::Repl => run_repl(&cli.data),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (warnings and errors by default).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run_repl(dir: &std::path::Path) -> anyhow::Result<()> {
    let db = Db::open(dir, Options::default())
        .with_context(|| format!("cannot open the store in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "store opened");
    repl::run(repl::embedded::Embedded::new(db), dir)
}
