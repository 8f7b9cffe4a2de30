//! # strata-bench
//!
//! The benchmark behind `strata bench`: db_bench-style workloads (fillseq, fillrandom,
//! overwrite, readrandom, readmissing, readseq, seekrandom, deleterandom, fillsync) and YCSB A,
//! B, C and F, with db_bench's key and value formats, run by one OS thread per client against a
//! [`Backend`] (or, for a gRPC or etcd server, by one tokio task per client with
//! `--async-clients`). Every operation is timed into an HDR histogram; a run reports ops/s, MB/s,
//! latency percentiles and resident memory per workload, as a table or as JSON lines. Two
//! measurements of the machine sit beside them so that figures can be judged in the same run:
//! `rawsync`, the disk's raw `fdatasync` rate, and `coldread`, GETs whose files were evicted
//! from the page cache. Backends: Strata's engine in process, and fjall behind the `fjall`
//! feature; remote targets (`--target grpc://HOST:PORT`, `redis://HOST:PORT`, or an etcd
//! cluster for comparison, `etcd://HOST:PORT,...`) run the same workloads over one connection
//! per thread.
//!
//! ```
//! use strata_bench::{BenchArgs, RunOptions, run};
//! # fn main() -> Result<(), strata_bench::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let args = BenchArgs {
//!     benchmarks: vec!["fillrandom,readrandom".into()],
//!     num: 1000,
//!     data: Some(dir.path().join("bench")),
//!     ..BenchArgs::default()
//! };
//! let out = run(&args, RunOptions::default(), &mut |_| {})?;
//! assert_eq!(out.results.len(), 2);
//! assert_eq!(out.results[1].ops, 1000);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`args`]: [`BenchArgs`], the flags (a clap `Args` struct the CLI flattens).
//! - [`workload`]: the [`Workload`]s and their db_bench/YCSB semantics.
//! - [`runner`]: [`run`]: threads, timing, store lifecycle; [`run_and_report`] prints too.
//! - `tasks`: clients as tasks of one runtime (`--async-clients`), for gRPC and etcd targets.
//! - [`backend`]: the [`Backend`] trait; `embedded` (Strata) and `fjall` engines, `grpc`,
//!   `resp` and `etcd` remote backends, the [`Target`] of a remote run.
//! - [`keys`]: db_bench's key format and value generator.
//! - [`dist`]: the random generator, uniform and YCSB zipfian key choice.
//! - [`histogram`]: per-thread latency histograms and their merge.
//! - [`report`]: [`WorkloadResult`], the table and the JSON lines.
//! - [`memory`]: resident memory from `/proc/self/status`.
//! - [`probe`]: the raw `fdatasync` probe and page-cache eviction.
//! - [`error`]: [`Error`] and [`Result`].

pub mod args;
pub mod backend;
pub mod dist;
pub mod error;
pub mod histogram;
pub mod keys;
pub mod memory;
pub mod probe;
pub mod report;
pub mod runner;
mod tasks;
pub mod workload;

pub use args::BenchArgs;
pub use backend::{Backend, BackendConfig, Compression, EngineKind, Target};
pub use error::{Error, Result};
pub use report::WorkloadResult;
pub use runner::{RunOptions, RunOutput, run, run_and_report};
pub use workload::Workload;
