//! `strata-bench`: the benchmark without the rest of the `strata` binary, with the same flags
//! as `strata bench` (useful when building the fjall backend, which the CLI leaves out).

use clap::Parser;
use strata_bench::BenchArgs;

/// The same allocator as the `strata` binary, so engines compared through either binary run
/// on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs db_bench/YCSB-style workloads against an engine and reports throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "strata-bench", version)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    match strata_bench::run_and_report(&cli.args, &mut stdout.lock()) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
