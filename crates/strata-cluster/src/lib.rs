//! # strata-cluster
//!
//! The layer between Strata's protocol front ends and its storage: the [`KvService`] trait that
//! the gRPC and Redis servers call, and its implementations. Today there is one, [`LocalKv`], a
//! single node over an [`Arc<Db>`](strata_engine::Db); the Raft router that shards and replicates
//! partitions will implement the same trait, so the servers do not change when it arrives.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> strata_cluster::Result<()> {
//! use std::sync::Arc;
//! use strata_cluster::{KvService, LocalKv, Mutation, Precondition};
//! # let dir = tempfile::tempdir().unwrap();
//! let db = strata_engine::Db::open(dir.path(), strata_engine::Options::default())?;
//! let kv = LocalKv::new(Arc::new(db));
//! kv.put(b"k".to_vec(), b"v1".to_vec()).await?;
//! // Compare-and-swap: applied only while `k` still holds `v1`.
//! let outcome = kv
//!     .batch(
//!         vec![Precondition::ValueEquals { key: b"k".to_vec(), value: b"v1".to_vec() }],
//!         vec![Mutation::Put { key: b"k".to_vec(), value: b"v2".to_vec() }],
//!     )
//!     .await?;
//! assert!(outcome.applied);
//! assert_eq!(kv.get(b"k".to_vec(), Default::default()).await?, Some(b"v2".to_vec()));
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`service`]: the [`KvService`] trait, its durability contract ([`Durability`]) and the
//!   request and reply types it speaks.
//! - [`local`]: [`LocalKv`], the single-node implementation over the engine.
//! - [`locks`]: the striped key-lock table that makes read-modify-write requests atomic.
//! - [`partition`]: Redis Cluster hash slots, the slot-to-partition map, the engine key layout
//!   of partition data and Raft state, and the [`Placement`](partition::Placement) trait.
//! - [`point_read`]: point reads from async code, off the blocking pool when the block cache
//!   answers.
//! - [`linearizability`]: a Wing–Gong/Knossos-style checker for recorded key-value histories.
//! - [`raft`]: multi-Raft on openraft: per-partition log store and state machine in the engine,
//!   the `strata.raft.v1` transport (client and service), [`RaftNode`](raft::node::RaftNode)
//!   and [`RaftKv`](raft::kv::RaftKv), the cluster's [`KvService`].
//! - [`error`]: the [`Error`] enum (mapped to gRPC codes and RESP errors by the server) and
//!   [`Result`].

pub mod error;
pub mod linearizability;
pub mod local;
pub mod locks;
pub mod partition;
pub mod point_read;
pub mod raft;
pub mod service;

pub use error::{Error, Result};
pub use local::LocalKv;
pub use service::{
    BatchOutcome, Consistency, Durability, KvPair, KvService, Mutation, Precondition, ReadOptions,
    ScanRequest, ScanStream,
};
