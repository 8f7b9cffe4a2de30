//! The `strata` binary.
//!
//! `strata` alone (or `strata repl`) opens the REPL on a local store in `./data`, or in the
//! directory given by `--data`. `strata bench` runs the benchmarks of the `strata-bench` crate.
//! Further subcommands (`server`, `connect`, `admin`) will sit beside them in [`Subcommand`].
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
    /// Run db_bench/YCSB-style benchmarks and report throughput, latency and memory.
    ///
    /// The store goes in `--data` (default: `strata-bench` in the temp directory), never in
    /// the REPL's `./data` unless asked for.
    Bench(BenchCommand),
}

/// `strata bench`: the flags are those of [`strata_bench::BenchArgs`].
#[derive(Debug, clap::Args)]
struct BenchCommand {
    #[command(flatten)]
    args: strata_bench::BenchArgs,
}

fn main() -> ExitCode {
    init_tracing();
    let cli = parse_cli(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let result = match cli.command.unwrap_or(Subcommand::Repl) {
        Subcommand::Repl => run_repl(&cli.data),
        Subcommand::Bench(bench) => run_bench(&bench.args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. `--data` is global (so `strata repl --data DIR` works), and clap
/// hands its default (`data`) to every subcommand; `strata bench` keeps `--data` only when it was
/// given, so a benchmark never writes into the REPL's store by default.
fn parse_cli<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some(Subcommand::Bench(bench)) = &mut cli.command {
        let given = matches
            .subcommand_matches("bench")
            .and_then(|m| m.value_source("data"))
            == Some(clap::parser::ValueSource::CommandLine);
        if !given {
            bench.args.data = None;
        }
    }
    Ok(cli)
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

fn run_bench(args: &strata_bench::BenchArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    strata_bench::run_and_report(args, &mut stdout.lock())?;
    Ok(())
}

fn run_repl(dir: &std::path::Path) -> anyhow::Result<()> {
    let db = Db::open(dir, Options::default())
        .with_context(|| format!("cannot open the store in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "store opened");
    repl::run(repl::embedded::Embedded::new(db), dir)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Subcommand, parse_cli};

    fn bench_args(argv: &[&str]) -> strata_bench::BenchArgs {
        let cli = parse_cli(argv).unwrap();
        match cli.command {
            Some(Subcommand::Bench(b)) => b.args,
            other => panic!("expected bench, got {other:?}"),
        }
    }

    #[test]
    fn bench_takes_its_flags_and_its_own_data_directory() {
        let args = bench_args(&["strata", "bench", "--num", "5", "--value_size=10"]);
        assert_eq!((args.num, args.value_size), (5, 10));
        // The REPL's default store directory does not leak into the benchmark.
        assert_eq!(args.data, None);
        let args = bench_args(&["strata", "bench", "--data", "/tmp/x"]);
        assert_eq!(args.data.as_deref(), Some(std::path::Path::new("/tmp/x")));
        let args = bench_args(&["strata", "--data", "/tmp/y", "bench"]);
        assert_eq!(args.data.as_deref(), Some(std::path::Path::new("/tmp/y")));
    }

    #[test]
    fn repl_data_flag_still_works() {
        let cli = Cli::try_parse_from(["strata", "--data", "d", "repl"]).unwrap();
        assert_eq!(cli.data, std::path::PathBuf::from("d"));
        let cli = Cli::try_parse_from(["strata", "repl", "--data", "e"]).unwrap();
        assert_eq!(cli.data, std::path::PathBuf::from("e"));
    }
}
