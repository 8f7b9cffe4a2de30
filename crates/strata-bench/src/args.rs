//! [`BenchArgs`]: the command-line flags of `strata bench`, a clap `Args` struct that the CLI
//! flattens into its `bench` subcommand. Flags are hyphenated; db_bench's underscore spellings
//! are accepted as aliases so a db_bench command line can be reused.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;

use crate::backend::{BackendConfig, Compression, EngineKind, Target};
use crate::dist::Distribution;
use crate::error::{Error, Result};
use crate::keys::KeyFormat;
use crate::workload::Workload;

/// The workloads run when `--benchmarks` is not given.
pub const DEFAULT_BENCHMARKS: &str = "fillseq,fillrandom,readrandom,readmissing,readseq,\
seekrandom,coldread,ycsba,ycsbb,ycsbc,ycsbf,overwrite,deleterandom,fillsync,rawsync";

/// Flags of a benchmark run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Comma-separated workloads, run in order: fillseq, fillrandom, overwrite, readrandom,
    /// readmissing, readseq, seekrandom, deleterandom, fillsync, ycsba, ycsbb, ycsbc, ycsbf,
    /// rawsync (the disk's raw fdatasync rate), coldread (GETs with the files evicted from the
    /// page cache).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_BENCHMARKS)]
    pub benchmarks: Vec<String>,

    /// Keys per thread; keys are drawn from [0, num).
    #[arg(long, default_value_t = 1_000_000)]
    pub num: u64,

    /// Read operations per thread for read workloads (default: --num; coldread: 1000).
    #[arg(long)]
    pub reads: Option<u64>,

    /// Client threads sharing the store.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Key size in bytes (the key number, zero-padded).
    #[arg(long = "key-size", alias = "key_size", default_value_t = 16)]
    pub key_size: usize,

    /// Value size in bytes.
    #[arg(long = "value-size", alias = "value_size", default_value_t = 100)]
    pub value_size: usize,

    /// Keys written per write operation by the fill workloads (one atomic batch).
    #[arg(long = "batch-size", alias = "batch_size", default_value_t = 1)]
    pub batch_size: usize,

    /// Sync every write (`--sync`, `--sync=1` or `--sync=true`); fillsync always syncs.
    #[arg(
        long,
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub sync: bool,

    /// Stop each workload after this many seconds, whatever --num says.
    #[arg(long)]
    pub duration: Option<u64>,

    /// Directory for the store (a subdirectory per engine is created in it).
    #[arg(long = "data", alias = "db", value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Reuse the store in --data instead of starting fill workloads from an empty one.
    #[arg(long = "use-existing-db", alias = "use_existing_db")]
    pub use_existing_db: bool,

    /// Block cache budget in bytes (engine default when not given).
    #[arg(long = "cache-size", alias = "cache_size")]
    pub cache_size: Option<u64>,

    /// Memtable size in bytes.
    #[arg(long = "write-buffer-size", alias = "write_buffer_size", default_value_t = 64 << 20)]
    pub write_buffer_size: usize,

    /// Bloom filter bits per key.
    #[arg(long = "bloom-bits", alias = "bloom_bits", default_value_t = 10)]
    pub bloom_bits: usize,

    /// Block compression.
    #[arg(long, alias = "compression_type", value_enum, default_value_t = Compression::None)]
    pub compression: Compression,

    /// Engine under test.
    #[arg(long, value_enum, default_value_t = EngineKind::Strata)]
    pub engine: EngineKind,

    /// Run against a server instead of an engine in this process: `grpc://HOST:PORT` (Strata's
    /// gRPC API), `redis://HOST:PORT` (any Redis-protocol server) or `etcd://HOST:PORT` (an
    /// etcd v3 cluster, for comparison). gRPC and etcd targets may list a cluster's members,
    /// comma-separated, to spread the threads over them. One connection per thread; the
    /// server's store is used as it is (never wiped), and engine flags do not apply.
    #[arg(long, value_name = "URL")]
    pub target: Option<Target>,

    /// Share this many connections among the client threads of a `grpc://` or `etcd://`
    /// target (HTTP/2 multiplexes their calls, as etcd's `benchmark --conns`) instead of
    /// opening one per thread. Each thread still has one request in flight.
    #[arg(long, value_name = "N")]
    pub conns: Option<usize>,

    /// Run the clients of a `grpc://` or `etcd://` target as tasks on one tokio runtime (a
    /// worker per core) instead of one OS thread each, as etcd's benchmark runs its clients as
    /// goroutines: `--threads` is then the number of concurrent clients. Fill and read
    /// workloads only.
    #[arg(long)]
    pub async_clients: bool,

    /// Access token for --target (gRPC `authorization: Bearer`, RESP `AUTH`).
    #[arg(long, env = "STRATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Key choice of the YCSB workloads.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,

    /// Seed of the random key and value streams (thread i uses seed + i).
    #[arg(long, default_value_t = 301)]
    pub seed: u64,

    /// Print one JSON object per workload (one per line) instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            benchmarks: vec![DEFAULT_BENCHMARKS.to_string()],
            num: 1_000_000,
            reads: None,
            threads: 1,
            key_size: 16,
            value_size: 100,
            batch_size: 1,
            sync: false,
            duration: None,
            data: None,
            use_existing_db: false,
            cache_size: None,
            write_buffer_size: 64 << 20,
            bloom_bits: 10,
            compression: Compression::None,
            engine: EngineKind::Strata,
            target: None,
            conns: None,
            async_clients: false,
            token: None,
            distribution: Distribution::Uniform,
            seed: 301,
            json: false,
        }
    }
}

impl BenchArgs {
    /// The workloads to run, checked.
    pub fn workloads(&self) -> Result<Vec<Workload>> {
        Workload::parse_list(&self.benchmarks)
    }

    /// Refuses flag values that cannot be run.
    pub fn validate(&self) -> Result<()> {
        let invalid = |flag, reason: String| Err(Error::InvalidArgument { flag, reason });
        if self.num == 0 {
            return invalid("--num", "must be at least 1".into());
        }
        if self.threads == 0 {
            return invalid("--threads", "must be at least 1".into());
        }
        if self.conns == Some(0) {
            return invalid("--conns", "must be at least 1".into());
        }
        if self.async_clients && !matches!(self.target, Some(Target::Grpc(_) | Target::Etcd(_))) {
            return invalid(
                "--async-clients",
                "needs a grpc:// or etcd:// --target".into(),
            );
        }
        if self.batch_size == 0 {
            return invalid("--batch-size", "must be at least 1".into());
        }
        if !KeyFormat::new(self.key_size).fits(self.num) {
            return invalid(
                "--key-size",
                format!(
                    "{} bytes cannot hold key numbers up to {}",
                    self.key_size, self.num
                ),
            );
        }
        if self.key_size > strata_engine::MAX_KEY_LEN - 1 {
            return invalid(
                "--key-size",
                format!("at most {}", strata_engine::MAX_KEY_LEN - 1),
            );
        }
        if self.value_size > strata_engine::MAX_VALUE_LEN {
            return invalid(
                "--value-size",
                format!("at most {}", strata_engine::MAX_VALUE_LEN),
            );
        }
        let workloads = self.workloads()?;
        if self.async_clients
            && let Some(w) = workloads.iter().find(|w| !crate::tasks::runs(**w))
        {
            return invalid(
                "--async-clients",
                format!("runs fill and point-read workloads only, not {}", w.name()),
            );
        }
        Ok(())
    }

    /// The directory the run uses: `--data`, or `strata-bench` in the system's temp directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("strata-bench"))
    }

    /// The backend's name in reports: the engine's, or the target's protocol.
    pub fn backend_name(&self) -> &'static str {
        match &self.target {
            Some(t) => t.name(),
            None => self.engine.name(),
        }
    }

    /// The engine settings for the backend, its store in `<data>/<engine>`.
    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            data_dir: self.data_dir().join(self.engine.name()),
            write_buffer_size: self.write_buffer_size,
            bloom_bits: self.bloom_bits,
            cache_size: self.cache_size,
            compression: self.compression,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn db_bench_spellings_are_aliases() {
        let a = parse(&[
            "--benchmarks=fillrandom,readrandom",
            "--value_size=200",
            "--key_size=20",
            "--write_buffer_size=1024",
            "--cache_size=8388608",
            "--bloom_bits=5",
            "--compression_type=none",
            "--sync=1",
            "--use_existing_db",
        ]);
        assert_eq!(a.benchmarks, ["fillrandom", "readrandom"]);
        assert_eq!((a.value_size, a.key_size), (200, 20));
        assert_eq!(a.write_buffer_size, 1024);
        assert_eq!(a.cache_size, Some(8 << 20));
        assert_eq!(a.bloom_bits, 5);
        assert!(a.sync && a.use_existing_db);
    }

    #[test]
    fn hyphenated_flags_and_defaults() {
        let a = parse(&[
            "--value-size",
            "50",
            "--sync",
            "--engine",
            "strata",
            "--json",
        ]);
        assert_eq!(a.value_size, 50);
        assert!(a.sync && a.json);
        assert_eq!(a.num, 1_000_000);
        let d = parse(&[]);
        assert!(!d.sync);
        assert_eq!(d.workloads().unwrap().len(), 15);
        assert_eq!(
            d.workloads().unwrap(),
            BenchArgs::default().workloads().unwrap()
        );
    }

    #[test]
    fn validation_refuses_impossible_runs() {
        let mut a = BenchArgs {
            num: 1_000_000,
            key_size: 4,
            ..BenchArgs::default()
        };
        assert!(matches!(
            a.validate(),
            Err(Error::InvalidArgument {
                flag: "--key-size",
                ..
            })
        ));
        a.key_size = 16;
        a.validate().unwrap();
        a.benchmarks = vec!["nosuch".into()];
        assert!(matches!(a.validate(), Err(Error::UnknownWorkload(_))));
    }
}
