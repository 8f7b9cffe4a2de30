//! The [`KvService`] trait every protocol front end calls, and the types of its requests and
//! replies. Keys and values are plain byte vectors; limits are those of the engine.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use strata_engine::{CompactionReport, Stats};

use crate::Result;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// See every write acknowledged before the read started (the default).
    #[default]
    Linearizable,
    /// Any replica's data will do; may miss recent writes in a cluster.
    Stale,
}

/// Options of a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// How fresh the read must be.
    pub consistency: Consistency,
}

/// When a write becomes durable, relative to the call that made it returning `Ok`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Durable when the call returns (the default). Concurrent synced writes share one fsync
    /// through the engine's group commit.
    #[default]
    Sync,
    /// Visible to every reader when the call returns, durable once a later
    /// [`KvService::sync`] returns `Ok`; a crash before that may lose it. A front end answering
    /// a pipeline applies its writes `Deferred` and calls `sync` once before sending any of
    /// their replies, so one fsync covers them all and no write is acknowledged before it is
    /// durable. Implementations may treat `Deferred` as `Sync`.
    Deferred,
}

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A stream of chunks of pairs in ascending key order, as produced by [`KvService::scan`].
pub type ScanStream = Pin<Box<dyn Stream<Item = Result<Vec<KvPair>>> + Send>>;

/// Which keys a scan visits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRequest {
    /// First key (inclusive); empty means the first key of the store.
    pub start: Vec<u8>,
    /// Last key (exclusive); `None` means no upper bound.
    pub end: Option<Vec<u8>>,
    /// At most this many pairs; `None` means no limit.
    pub limit: Option<usize>,
    /// Skip values (pairs carry empty values).
    pub keys_only: bool,
    /// How fresh the scan must be.
    pub read: ReadOptions,
}

/// A condition on one key that must hold for a [`KvService::batch`] to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// The key exists and holds exactly `value`.
    ValueEquals {
        /// The key.
        key: Vec<u8>,
        /// The value it must hold.
        value: Vec<u8>,
    },
    /// The key does not exist.
    Absent {
        /// The key.
        key: Vec<u8>,
    },
    /// The key exists, whatever its value.
    Present {
        /// The key.
        key: Vec<u8>,
    },
}

impl Precondition {
    /// The key the condition is about.
    pub fn key(&self) -> &[u8] {
        match self {
            Precondition::ValueEquals { key, .. }
            | Precondition::Absent { key }
            | Precondition::Present { key } => key,
        }
    }

    /// Whether the condition holds for a key whose current value is `current`.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match self {
            Precondition::ValueEquals { value, .. } => current == Some(value.as_slice()),
            Precondition::Absent { .. } => current.is_none(),
            Precondition::Present { .. } => current.is_some(),
        }
    }
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Remove `key` (a no-op if it is absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl Mutation {
    /// The key the mutation writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// What a [`KvService::batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// True when every precondition held and the mutations were applied.
    pub applied: bool,
    /// When not applied: the index of the first precondition that failed.
    pub failed_precondition: Option<usize>,
}

/// The key-value operations the protocol front ends need. Implementations are shared by every
/// connection (`Arc<dyn KvService>`), so every method takes `&self` and may run concurrently.
///
/// Durability contract: a write acknowledged with `Ok` is durable, except one made with
/// [`Durability::Deferred`] through a `*_with` method, which is durable once a later
/// [`sync`](KvService::sync) returns `Ok`. The `*_with` methods default to their synced forms
/// (which satisfy both contracts) and `sync` to a no-op, so an implementation that always syncs
/// need not override them.
#[async_trait]
pub trait KvService: Send + Sync + 'static {
    /// Reads the value of `key`, `None` when absent.
    async fn get(&self, key: Vec<u8>, opts: ReadOptions) -> Result<Option<Vec<u8>>>;

    /// Reads several keys; the reply has one entry per key, in order.
    async fn get_many(&self, keys: Vec<Vec<u8>>, opts: ReadOptions)
    -> Result<Vec<Option<Vec<u8>>>>;

    /// Sets `key` to `value`.
    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()>;

    /// Removes `key`; idempotent.
    async fn delete(&self, key: Vec<u8>) -> Result<()>;

    /// Removes `keys` atomically and returns how many of them existed.
    async fn delete_counted(&self, keys: Vec<Vec<u8>>) -> Result<u64>;

    /// Applies `mutations` atomically if and only if every precondition holds; the check and the
    /// write are one atomic step with respect to every other write.
    async fn batch(
        &self,
        preconditions: Vec<Precondition>,
        mutations: Vec<Mutation>,
    ) -> Result<BatchOutcome>;

    /// Adds `delta` to the decimal integer stored at `key` (absent counts as 0) and returns the
    /// new value, atomically with respect to every other write.
    async fn incr_by(&self, key: Vec<u8>, delta: i64) -> Result<i64>;

    /// Streams the pairs of a key range in ascending key order, in chunks.
    async fn scan(&self, req: ScanRequest) -> Result<ScanStream>;

    /// Counts the keys in the store.
    async fn count_keys(&self) -> Result<u64>;

    /// Removes every key.
    async fn clear(&self) -> Result<()>;

    /// Engine counters and tree shape.
    async fn stats(&self) -> Result<Stats>;

    /// Compacts the tables holding keys in `[start, end]` (unbounded where `None`).
    async fn compact(
        &self,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
    ) -> Result<CompactionReport>;

    /// Makes everything written so far durable in tables (used at shutdown).
    async fn flush(&self) -> Result<()>;

    /// Makes every write that returned before this call durable, [`Durability::Deferred`]
    /// ones included. Concurrent calls may share one fsync.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// [`put`](KvService::put) with the given durability.
    async fn put_with(&self, key: Vec<u8>, value: Vec<u8>, durability: Durability) -> Result<()> {
        let _ = durability;
        self.put(key, value).await
    }

    /// [`delete`](KvService::delete) with the given durability.
    async fn delete_with(&self, key: Vec<u8>, durability: Durability) -> Result<()> {
        let _ = durability;
        self.delete(key).await
    }

    /// [`delete_counted`](KvService::delete_counted) with the given durability.
    async fn delete_counted_with(&self, keys: Vec<Vec<u8>>, durability: Durability) -> Result<u64> {
        let _ = durability;
        self.delete_counted(keys).await
    }

    /// [`batch`](KvService::batch) with the given durability.
    async fn batch_with(
        &self,
        preconditions: Vec<Precondition>,
        mutations: Vec<Mutation>,
        durability: Durability,
    ) -> Result<BatchOutcome> {
        let _ = durability;
        self.batch(preconditions, mutations).await
    }

    /// [`incr_by`](KvService::incr_by) with the given durability.
    async fn incr_by_with(&self, key: Vec<u8>, delta: i64, durability: Durability) -> Result<i64> {
        let _ = durability;
        self.incr_by(key, delta).await
    }
}
