//! The `strata` binary.
//!
//! `strata` alone (or `strata repl`) opens the REPL on a local store in `./data`, or in the
//! directory given by `--data`. `strata server` serves that directory over gRPC, the Redis
//! protocol and admin HTTP; `strata connect ADDR` opens the same REPL against a server;
//! `strata bench` runs the benchmarks of the `strata-bench` crate, in process or against a
//! server; `strata server --peers ...` runs one node of a Raft cluster, and `strata admin status`
//! prints a node's per-partition view of it.
//!
//! # Layout
//!
//! - `main.rs`: arguments, logging, opening the store, exit status.
//! - [`repl`]: the REPL: parsing, escaping, the backend trait and its embedded and remote
//!   implementations, the session, rendering, and the terminal and piped loops.
//! - [`server`]: `strata server`: flags over a TOML config, signals, the runtime.
//! - [`connect`]: `strata connect`: client options and the remote REPL.
//! - [`admin`]: `strata admin status`: a node's partition table from its admin HTTP port.

mod admin;
mod connect;
mod repl;
mod server;

/// mimalloc: the engine's write path allocates a few small buffers per key, and a faster
/// allocator measured about +25% on fillrandom (RocksDB binaries likewise link jemalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal as _;
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

    /// Whether `--data` was given on the command line rather than defaulted.
    #[arg(skip)]
    data_given: bool,
}

/// What to run; the REPL when none is given.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Open the interactive REPL on the local store (the default).
    Repl,
    /// Serve the store in `--data` over gRPC, the Redis protocol and admin HTTP.
    ///
    /// Prints `listening grpc=ADDR redis=ADDR http=ADDR` on stdout once every listener is
    /// bound; logs go to stderr. Ctrl-C or SIGTERM drains in-flight requests, flushes and exits.
    Server(server::ServerArgs),
    /// Open the REPL on a running server (its gRPC address).
    Connect(connect::ConnectArgs),
    /// Run db_bench/YCSB-style benchmarks and report throughput, latency and memory.
    ///
    /// The store goes in `--data` (default: `strata-bench` in the temp directory), never in
    /// the REPL's `./data` unless asked for.
    Bench(BenchCommand),
    /// Operate a running server through its admin HTTP port.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

/// `strata bench`: the flags are those of [`strata_bench::BenchArgs`].
#[derive(Debug, clap::Args)]
struct BenchCommand {
    #[command(flatten)]
    args: strata_bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = parse_cli(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // A server reports what it does (openraft's per-group chatter only when asked, with
    // RUST_LOG); the interactive tools stay quiet unless asked.
    let server = matches!(cli.command, Some(Subcommand::Server(_)));
    init_tracing(if server { "info,openraft=warn" } else { "warn" });
    let result = match cli.command.unwrap_or(Subcommand::Repl) {
        Subcommand::Repl => run_repl(&cli.data),
        Subcommand::Server(args) => args
            .config(cli.data_given.then_some(cli.data.as_path()))
            .and_then(server::run),
        Subcommand::Connect(args) => connect::run(&args),
        Subcommand::Bench(bench) => run_bench(&bench.args),
        Subcommand::Admin(cmd) => admin::run(&cmd),
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
/// given, so a benchmark never writes into the REPL's store by default, and `strata server` lets
/// a config file's `data_dir` stand unless `--data` was given.
fn parse_cli<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let on_command_line = |m: &clap::ArgMatches| {
        m.value_source("data") == Some(clap::parser::ValueSource::CommandLine)
    };
    cli.data_given = on_command_line(&matches)
        || matches
            .subcommand()
            .is_some_and(|(_, sub)| on_command_line(sub));
    if let Some(Subcommand::Bench(bench)) = &mut cli.command
        && !cli.data_given
    {
        bench.args.data = None;
    }
    Ok(cli)
}

/// Logs go to stderr, filtered by `RUST_LOG` (`default` when it is not set).
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
    let what = format!("embedded store in {}", dir.display());
    repl::run(repl::embedded::Embedded::new(db), &what)
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
    fn server_sees_data_only_when_given() {
        let cli = parse_cli(["strata", "server", "--grpc", "127.0.0.1:0"]).unwrap();
        assert!(!cli.data_given);
        let cli = parse_cli(["strata", "server", "--data", "/srv/d"]).unwrap();
        assert!(cli.data_given);
        assert_eq!(cli.data, std::path::PathBuf::from("/srv/d"));
        let cli = parse_cli(["strata", "--data", "/srv/e", "server"]).unwrap();
        assert!(cli.data_given);
    }

    #[test]
    fn repl_data_flag_still_works() {
        let cli = Cli::try_parse_from(["strata", "--data", "d", "repl"]).unwrap();
        assert_eq!(cli.data, std::path::PathBuf::from("d"));
        let cli = Cli::try_parse_from(["strata", "repl", "--data", "e"]).unwrap();
        assert_eq!(cli.data, std::path::PathBuf::from("e"));
    }
}
