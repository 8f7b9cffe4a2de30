//! [`LocalKv`]: the single-node [`KvService`] over one engine. Blind writes (puts, deletes,
//! batches without preconditions) and syncs take the engine's async path
//! ([`Db::write_queued`]): they are queued from the caller's task and their group commit is led
//! by the engine's committer thread, so concurrent writers share its fsync without a trip
//! through tokio's blocking pool. Read-modify-write requests, scans and large reads run on the
//! blocking pool, point reads on the caller's thread. Read-modify-write requests hold their
//! keys' stripes of the [`KeyLocks`] table exclusively between their read and their write and
//! wait for writes queued before them to apply; blind writes hold the stripes shared while they
//! queue. A [`Durability::Deferred`] write is an unsynced engine write; [`KvService::sync`] is
//! one group-committed WAL sync.

use std::sync::Arc;

use async_trait::async_trait;
use strata_engine::batch::{BatchOp, check_key, check_value};
use strata_engine::{CompactionReport, Db, MAX_KEY_LEN, Stats, WriteBatch, WriteOptions};
use tokio_stream::wrappers::ReceiverStream;

use crate::locks::KeyLocks;
use crate::service::{
    BatchOutcome, Durability, KvPair, KvService, Mutation, Precondition, ReadOptions, ScanRequest,
    ScanStream,
};
use crate::{Error, Result, point_read};

/// Point reads of at most this many keys run on the caller's thread as far as the engine can
/// answer them from memory ([`point_read`]): microseconds each, less than a trip to the
/// blocking pool costs; larger multi-key reads go to the pool so they cannot hold up an async
/// worker.
const INLINE_READ_KEYS: usize = 256;
/// Pairs per scan chunk.
const SCAN_CHUNK_PAIRS: usize = 256;
/// Bytes of keys and values after which a scan chunk is sent even if it has fewer pairs.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// The single-node key-value service. Cheap to clone: clones share the store and the lock table.
#[derive(Debug, Clone)]
pub struct LocalKv {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Db>,
    locks: KeyLocks,
}

impl LocalKv {
    /// Serves `db`.
    pub fn new(db: Arc<Db>) -> Self {
        LocalKv {
            inner: Arc::new(Inner {
                db,
                locks: KeyLocks::default(),
            }),
        }
    }

    /// The store behind the service.
    pub fn db(&self) -> &Arc<Db> {
        &self.inner.db
    }

    /// Writes `batch`, which reads nothing, through the engine's async path. The keys' stripes
    /// are held shared while the batch is queued, which fixes its place before any
    /// read-modify-write that locks them later; if one is held exclusively, the write waits
    /// for it on the blocking pool instead of on this task's thread.
    async fn write_blind(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let opts = write_options(durability);
        let queued = {
            let keys = batch_keys(&batch);
            match self.inner.locks.try_shared(keys.iter().copied()) {
                Some(_guards) => Ok(self.inner.db.write_queued(batch, opts)),
                None => Err(batch),
            }
        };
        match queued {
            Ok(pending) => Ok(pending.await?),
            Err(batch) => {
                self.blocking(move |s| {
                    let _guards = s.locks.shared(batch_keys(&batch));
                    Ok(s.db.write(batch, opts)?)
                })
                .await
            }
        }
    }

    /// Runs `f` on the blocking pool with the service's state.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await?
    }
}

/// Parses a stored counter the way Redis does: optional `-`, decimal digits, no `+`, no spaces.
fn parse_counter(bytes: &[u8]) -> Result<i64> {
    if bytes.first() == Some(&b'+') {
        return Err(Error::NotAnInteger);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(Error::NotAnInteger)
}

/// The engine's options for a write of `durability`: a deferred write reaches the WAL (and the
/// operating system) but waits for the next [`KvService::sync`] to reach stable storage.
fn write_options(durability: Durability) -> WriteOptions {
    match durability {
        Durability::Sync => WriteOptions::default(),
        Durability::Deferred => WriteOptions::no_sync(),
    }
}

/// The keys `batch` writes.
fn batch_keys(batch: &WriteBatch) -> Vec<&[u8]> {
    batch
        .iter()
        .flatten()
        .flat_map(|op| match op {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => vec![key],
            BatchOp::DeleteRange { start, end } => vec![start, end],
        })
        .collect()
}

fn validate_mutations(mutations: &[Mutation]) -> Result<WriteBatch> {
    let mut batch = WriteBatch::new();
    for m in mutations {
        match m {
            Mutation::Put { key, value } => {
                check_value(value)?;
                batch.put(key, value)?;
            }
            Mutation::Delete { key } => {
                batch.delete(key)?;
            }
        }
    }
    Ok(batch)
}

impl Inner {
    fn apply_batch(
        &self,
        preconditions: &[Precondition],
        mutations: &[Mutation],
        durability: Durability,
    ) -> Result<BatchOutcome> {
        for p in preconditions {
            check_key(p.key())?;
        }
        let batch = validate_mutations(mutations)?;
        let keys = preconditions
            .iter()
            .map(Precondition::key)
            .chain(mutations.iter().map(Mutation::key));
        let _guards = if preconditions.is_empty() {
            self.locks.shared(keys)
        } else {
            let guards = self.locks.exclusive(keys);
            self.db.wait_queued_writes()?;
            guards
        };
        for (i, p) in preconditions.iter().enumerate() {
            let current = self.db.get(p.key())?;
            if !p.holds(current.as_deref()) {
                return Ok(BatchOutcome {
                    applied: false,
                    failed_precondition: Some(i),
                });
            }
        }
        if !batch.is_empty() {
            self.db.write(batch, write_options(durability))?;
        }
        Ok(BatchOutcome {
            applied: true,
            failed_precondition: None,
        })
    }

    fn scan_into(&self, req: &ScanRequest, tx: &tokio::sync::mpsc::Sender<Result<Vec<KvPair>>>) {
        let start = (!req.start.is_empty()).then_some(req.start.as_slice());
        let iter = match self.db.range(start, req.end.as_deref()) {
            Ok(it) => it,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        };
        let mut remaining = req.limit.unwrap_or(usize::MAX);
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for item in iter {
            if remaining == 0 {
                break;
            }
            match item {
                Ok((k, v)) => {
                    let v = if req.keys_only { Vec::new() } else { v };
                    chunk_bytes += k.len() + v.len();
                    chunk.push((k, v));
                    remaining -= 1;
                    if chunk.len() >= SCAN_CHUNK_PAIRS || chunk_bytes >= SCAN_CHUNK_BYTES {
                        chunk_bytes = 0;
                        if tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err() {
                            // The reader went away: stop scanning.
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.into()));
                    return;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk));
        }
    }
}

#[async_trait]
impl KvService for LocalKv {
    async fn get(&self, key: Vec<u8>, _opts: ReadOptions) -> Result<Option<Vec<u8>>> {
        check_key(&key)?;
        let mut values = point_read::get_many(&self.inner.db, vec![key]).await?;
        Ok(values.pop().flatten())
    }

    async fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
        _opts: ReadOptions,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        for k in &keys {
            check_key(k)?;
        }
        if keys.len() > INLINE_READ_KEYS {
            return self
                .blocking(move |s| {
                    keys.iter()
                        .map(|k| s.db.get(k).map_err(Error::from))
                        .collect()
                })
                .await;
        }
        point_read::get_many(&self.inner.db, keys).await
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.put_with(key, value, Durability::Sync).await
    }

    async fn delete(&self, key: Vec<u8>) -> Result<()> {
        self.delete_with(key, Durability::Sync).await
    }

    async fn delete_counted(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        self.delete_counted_with(keys, Durability::Sync).await
    }

    async fn batch(
        &self,
        preconditions: Vec<Precondition>,
        mutations: Vec<Mutation>,
    ) -> Result<BatchOutcome> {
        self.batch_with(preconditions, mutations, Durability::Sync)
            .await
    }

    async fn incr_by(&self, key: Vec<u8>, delta: i64) -> Result<i64> {
        self.incr_by_with(key, delta, Durability::Sync).await
    }

    async fn scan(&self, req: ScanRequest) -> Result<ScanStream> {
        if let Some(end) = &req.end
            && !req.start.is_empty()
            && end.as_slice() < req.start.as_slice()
        {
            return Err(Error::InvalidArgument(
                "scan range end is before its start".into(),
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.scan_into(&req, &tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn count_keys(&self) -> Result<u64> {
        self.blocking(|s| {
            let mut n = 0u64;
            for item in s.db.range(None, None)? {
                item?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.blocking(|s| {
            // The smallest key is one zero byte and the largest MAX_KEY_LEN bytes of 0xff: one
            // range tombstone below the largest plus a point delete of it covers every key.
            let last = vec![0xffu8; MAX_KEY_LEN];
            let mut batch = WriteBatch::new();
            batch.delete_range([0u8], &last)?.delete(&last)?;
            Ok(s.db.write(batch, WriteOptions::default())?)
        })
        .await
    }

    async fn stats(&self) -> Result<Stats> {
        self.blocking(|s| Ok(s.db.stats())).await
    }

    async fn compact(
        &self,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
    ) -> Result<CompactionReport> {
        self.blocking(move |s| {
            Ok(s.db.compact_range(start.as_deref(), end.as_deref(), &mut |_| {})?)
        })
        .await
    }

    async fn flush(&self) -> Result<()> {
        self.blocking(|s| Ok(s.db.flush()?)).await
    }

    async fn sync(&self) -> Result<()> {
        let sync = self
            .inner
            .db
            .write_queued(WriteBatch::new(), WriteOptions::default());
        Ok(sync.await?)
    }

    async fn put_with(&self, key: Vec<u8>, value: Vec<u8>, durability: Durability) -> Result<()> {
        check_key(&key)?;
        check_value(&value)?;
        let mut batch = WriteBatch::new();
        batch.put(&key, &value)?;
        self.write_blind(batch, durability).await
    }

    async fn delete_with(&self, key: Vec<u8>, durability: Durability) -> Result<()> {
        check_key(&key)?;
        let mut batch = WriteBatch::new();
        batch.delete(&key)?;
        self.write_blind(batch, durability).await
    }

    async fn delete_counted_with(&self, keys: Vec<Vec<u8>>, durability: Durability) -> Result<u64> {
        let mut batch = WriteBatch::new();
        for k in &keys {
            batch.delete(k)?;
        }
        self.blocking(move |s| {
            let _guards = s.locks.exclusive(keys.iter().map(Vec::as_slice));
            s.db.wait_queued_writes()?;
            let mut seen = std::collections::HashSet::new();
            let mut existed = 0;
            for k in &keys {
                if seen.insert(k.as_slice()) && s.db.get(k)?.is_some() {
                    existed += 1;
                }
            }
            if existed > 0 {
                s.db.write(batch, write_options(durability))?;
            }
            Ok(existed)
        })
        .await
    }

    async fn batch_with(
        &self,
        preconditions: Vec<Precondition>,
        mutations: Vec<Mutation>,
        durability: Durability,
    ) -> Result<BatchOutcome> {
        if preconditions.is_empty() {
            let batch = validate_mutations(&mutations)?;
            if !batch.is_empty() {
                self.write_blind(batch, durability).await?;
            }
            return Ok(BatchOutcome {
                applied: true,
                failed_precondition: None,
            });
        }
        self.blocking(move |s| s.apply_batch(&preconditions, &mutations, durability))
            .await
    }

    async fn incr_by_with(&self, key: Vec<u8>, delta: i64, durability: Durability) -> Result<i64> {
        check_key(&key)?;
        self.blocking(move |s| {
            let _guards = s.locks.exclusive([key.as_slice()]);
            s.db.wait_queued_writes()?;
            let current = match s.db.get(&key)? {
                Some(v) => parse_counter(&v)?,
                None => 0,
            };
            let next = current.checked_add(delta).ok_or(Error::Overflow)?;
            let mut batch = WriteBatch::new();
            batch.put(&key, next.to_string().as_bytes())?;
            s.db.write(batch, write_options(durability))?;
            Ok(next)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn open() -> (tempfile::TempDir, LocalKv) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), strata_engine::Options::default()).unwrap();
        (dir, LocalKv::new(Arc::new(db)))
    }

    #[tokio::test]
    async fn preconditions_gate_the_batch() {
        let (_d, kv) = open();
        let put = |k: &[u8], v: &[u8]| Mutation::Put {
            key: k.to_vec(),
            value: v.to_vec(),
        };
        let o = kv
            .batch(
                vec![Precondition::Absent { key: b"a".to_vec() }],
                vec![put(b"a", b"1"), put(b"b", b"1")],
            )
            .await
            .unwrap();
        assert!(o.applied);
        let o = kv
            .batch(
                vec![
                    Precondition::Present { key: b"a".to_vec() },
                    Precondition::ValueEquals {
                        key: b"b".to_vec(),
                        value: b"2".to_vec(),
                    },
                ],
                vec![put(b"a", b"x")],
            )
            .await
            .unwrap();
        assert_eq!(o.failed_precondition, Some(1));
        assert_eq!(
            kv.get(b"a".to_vec(), ReadOptions::default()).await.unwrap(),
            Some(b"1".to_vec())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_sum_exactly() {
        let (_d, kv) = open();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    kv.incr_by(b"n".to_vec(), 2).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(kv.incr_by(b"n".to_vec(), 0).await.unwrap(), 400);
        kv.put(b"s".to_vec(), b"abc".to_vec()).await.unwrap();
        assert!(matches!(
            kv.incr_by(b"s".to_vec(), 1).await,
            Err(Error::NotAnInteger)
        ));
        kv.put(b"m".to_vec(), i64::MAX.to_string().into_bytes())
            .await
            .unwrap();
        assert!(matches!(
            kv.incr_by(b"m".to_vec(), 1).await,
            Err(Error::Overflow)
        ));
    }

    /// A SET racing an INCR on one key: either the INCR ran first (it returns 1, the SET's
    /// value stays) or second (it returns 101 and leaves it). An INCR that read around a SET
    /// still queued in the engine would return 1 and leave 1.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blind_write_never_slips_inside_an_increment() {
        let (_d, kv) = open();
        for round in 0..300 {
            kv.put(b"n".to_vec(), b"0".to_vec()).await.unwrap();
            let setter = {
                let kv = kv.clone();
                tokio::spawn(async move { kv.put(b"n".to_vec(), b"100".to_vec()).await })
            };
            let incr = kv.incr_by(b"n".to_vec(), 1).await.unwrap();
            setter.await.unwrap().unwrap();
            let last = kv.get(b"n".to_vec(), ReadOptions::default()).await.unwrap();
            let outcome = (incr, last.as_deref());
            assert!(
                outcome == (1, Some(b"100".as_slice()))
                    || outcome == (101, Some(b"101".as_slice())),
                "round {round}: INCR returned {incr}, final value {last:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deferred_writes_are_visible_at_once_and_synced_together() {
        let (_d, kv) = open();
        let syncs = |kv: &LocalKv| kv.db().stats().wal_syncs;
        let before = syncs(&kv);
        let d = Durability::Deferred;
        kv.put_with(b"a".to_vec(), b"1".to_vec(), d).await.unwrap();
        assert_eq!(kv.incr_by_with(b"n".to_vec(), 5, d).await.unwrap(), 5);
        let put = Mutation::Put {
            key: b"b".to_vec(),
            value: b"2".to_vec(),
        };
        let absent = Precondition::Absent { key: b"b".to_vec() };
        assert!(
            kv.batch_with(vec![absent], vec![put], d)
                .await
                .unwrap()
                .applied
        );
        assert_eq!(
            kv.delete_counted_with(vec![b"a".to_vec()], d)
                .await
                .unwrap(),
            1
        );
        kv.delete_with(b"b".to_vec(), d).await.unwrap();
        assert_eq!(syncs(&kv), before, "a deferred write synced");
        assert_eq!(
            kv.get_many(
                vec![b"a".to_vec(), b"b".to_vec(), b"n".to_vec()],
                ReadOptions::default()
            )
            .await
            .unwrap(),
            vec![None, None, Some(b"5".to_vec())]
        );
        kv.sync().await.unwrap();
        assert_eq!(syncs(&kv), before + 1);
        kv.put(b"c".to_vec(), b"3".to_vec()).await.unwrap();
        assert_eq!(syncs(&kv), before + 2, "a default write is synced");
    }

    #[tokio::test]
    async fn scan_limit_count_and_clear() {
        let (_d, kv) = open();
        for i in 0..600u32 {
            kv.put(format!("k{i:04}").into_bytes(), vec![1])
                .await
                .unwrap();
        }
        let stream = kv
            .scan(ScanRequest {
                start: b"k0100".to_vec(),
                end: Some(b"k0500".to_vec()),
                limit: Some(350),
                ..Default::default()
            })
            .await
            .unwrap();
        let chunks: Vec<_> = stream.collect().await;
        let pairs: Vec<KvPair> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        assert_eq!(pairs.len(), 350);
        assert_eq!(pairs[0].0, b"k0100");
        assert_eq!(kv.count_keys().await.unwrap(), 600);
        assert_eq!(
            kv.delete_counted(vec![b"k0001".to_vec(), b"k0001".to_vec(), b"zz".to_vec()])
                .await
                .unwrap(),
            1
        );
        kv.clear().await.unwrap();
        assert_eq!(kv.count_keys().await.unwrap(), 0);
    }
}
