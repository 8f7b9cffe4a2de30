//! [`RaftKv`]: the [`KvService`] of a cluster node. Each key is routed to its partition; writes
//! and linearizable reads are served by the partition's leader, which is this node or the one
//! the request is forwarded to (see [`RaftNode::client_write`]); stale reads are served from the
//! local replica; linearizable scans wait for every partition's read index, then read locally. Atomic batches
//! must stay in one partition ([`Error::CrossSlot`]); multi-key reads and deletes run per key;
//! scans merge the partitions in key order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use async_trait::async_trait;
use strata_engine::batch::{check_key, check_value};
use strata_engine::{CompactionReport, Stats};
use tokio_stream::wrappers::ReceiverStream;

use crate::partition::{PartitionId, data_key, data_range, user_key};
use crate::raft::node::{RaftNode, single_value};
use crate::raft::types::{Check, Command, IncrError, Response, Write};
use crate::service::{
    BatchOutcome, Consistency, KvPair, KvService, Mutation, Precondition, ReadOptions, ScanRequest,
    ScanStream,
};
use crate::{Error, Result, point_read};

/// Pairs per scan chunk.
const SCAN_CHUNK_PAIRS: usize = 256;

/// The cluster implementation of [`KvService`] over a [`RaftNode`].
#[derive(Debug, Clone)]
pub struct RaftKv {
    node: Arc<RaftNode>,
}

impl RaftKv {
    /// Serves requests through `node`.
    pub fn new(node: Arc<RaftNode>) -> Self {
        RaftKv { node }
    }

    /// The node behind the service.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// The one partition all `keys` belong to, or [`Error::CrossSlot`].
    fn single_partition<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<PartitionId> {
        let map = self.node.partition_map();
        let mut found = None;
        for key in keys {
            check_key(key)?;
            let p = map.partition_of(key);
            match found {
                None => found = Some(p),
                Some(q) if q != p => return Err(Error::CrossSlot),
                Some(_) => {}
            }
        }
        found.ok_or_else(|| Error::InvalidArgument("request has no keys".into()))
    }

    async fn read(&self, key: Vec<u8>, opts: ReadOptions) -> Result<Option<Vec<u8>>> {
        check_key(&key)?;
        let partition = self.node.partition_map().partition_of(&key);
        if opts.consistency == Consistency::Linearizable {
            let values = self.node.linearizable_get(partition, vec![key]).await?;
            return single_value(values);
        }
        let key = data_key(partition, &key);
        let mut values = point_read::get_many(self.node.db(), vec![key]).await?;
        Ok(values.pop().flatten())
    }

    async fn write(&self, partition: PartitionId, cmd: Command) -> Result<Response> {
        self.node.client_write(partition, cmd).await
    }
}

fn batch_outcome(resp: Response) -> Result<BatchOutcome> {
    match resp {
        Response::Batch {
            applied,
            failed_check,
            ..
        } => Ok(BatchOutcome {
            applied,
            failed_precondition: failed_check.map(|i| i as usize),
        }),
        other => Err(Error::Internal(format!(
            "unexpected reply to a batch: {other:?}"
        ))),
    }
}

#[async_trait]
impl KvService for RaftKv {
    async fn get(&self, key: Vec<u8>, opts: ReadOptions) -> Result<Option<Vec<u8>>> {
        self.read(key, opts).await
    }

    async fn get_many(
        &self,
        keys: Vec<Vec<u8>>,
        opts: ReadOptions,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.read(key, opts).await?);
        }
        Ok(out)
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        check_value(&value)?;
        let p = self.single_partition([key.as_slice()])?;
        let cmd = Command::Batch {
            checks: Vec::new(),
            writes: vec![Write::Put(key, value)],
        };
        self.write(p, cmd).await.map(|_| ())
    }

    async fn delete(&self, key: Vec<u8>) -> Result<()> {
        let p = self.single_partition([key.as_slice()])?;
        let cmd = Command::Batch {
            checks: Vec::new(),
            writes: vec![Write::Delete(key)],
        };
        self.write(p, cmd).await.map(|_| ())
    }

    async fn delete_counted(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        // Per key (each linearizable), as Redis Cluster runs a multi-key DEL across slots.
        let mut deleted = 0;
        for key in keys {
            let p = self.single_partition([key.as_slice()])?;
            let cmd = Command::Batch {
                checks: Vec::new(),
                writes: vec![Write::Delete(key)],
            };
            if let Response::Batch { deleted: n, .. } = self.write(p, cmd).await? {
                deleted += n;
            }
        }
        Ok(deleted)
    }

    async fn batch(
        &self,
        preconditions: Vec<Precondition>,
        mutations: Vec<Mutation>,
    ) -> Result<BatchOutcome> {
        for m in &mutations {
            if let Mutation::Put { value, .. } = m {
                check_value(value)?;
            }
        }
        let keys = preconditions
            .iter()
            .map(Precondition::key)
            .chain(mutations.iter().map(Mutation::key));
        let p = self.single_partition(keys)?;
        let cmd = Command::Batch {
            checks: preconditions.into_iter().map(Check::from).collect(),
            writes: mutations.into_iter().map(Write::from).collect(),
        };
        batch_outcome(self.write(p, cmd).await?)
    }

    async fn incr_by(&self, key: Vec<u8>, delta: i64) -> Result<i64> {
        let p = self.single_partition([key.as_slice()])?;
        match self.write(p, Command::Incr { key, delta }).await? {
            Response::Incr(Ok(n)) => Ok(n),
            Response::Incr(Err(IncrError::NotAnInteger)) => Err(Error::NotAnInteger),
            Response::Incr(Err(IncrError::Overflow)) => Err(Error::Overflow),
            other => Err(Error::Internal(format!(
                "unexpected reply to incr: {other:?}"
            ))),
        }
    }

    async fn scan(&self, req: ScanRequest) -> Result<ScanStream> {
        if let Some(end) = &req.end
            && !req.start.is_empty()
            && end <= &req.start
        {
            return Err(Error::InvalidArgument(
                "scan end must be after start".into(),
            ));
        }
        let map = self.node.partition_map();
        if req.read.consistency == Consistency::Linearizable {
            let node = &self.node;
            futures::future::try_join_all(map.all().map(|p| node.read_barrier(p))).await?;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = merge_scan(&node, &req, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn count_keys(&self) -> Result<u64> {
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            for p in node.partition_map().all() {
                let (start, end) = data_range(p);
                for item in node.db().range(Some(&start), Some(&end))? {
                    item?;
                    n += 1;
                }
            }
            Ok(n)
        })
        .await?
    }

    async fn clear(&self) -> Result<()> {
        for p in self.node.partition_map().all() {
            self.write(p, Command::Clear).await?;
        }
        Ok(())
    }

    async fn stats(&self) -> Result<Stats> {
        Ok(self.node.db().stats())
    }

    async fn compact(
        &self,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
    ) -> Result<CompactionReport> {
        // User keys live in every partition's range, so a bounded user range is not one engine
        // range: compact the whole store.
        let _ = (start, end);
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || Ok(node.db().compact_range(None, None, &mut |_| {})?))
            .await?
    }

    async fn flush(&self) -> Result<()> {
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || Ok(node.db().flush()?)).await?
    }
}

/// Streams `[start, end)` of every partition, merged in user-key order, into `tx`.
fn merge_scan(
    node: &RaftNode,
    req: &ScanRequest,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<KvPair>>>,
) -> Result<()> {
    let snap = node.db().snapshot();
    let mut iters = Vec::new();
    let mut heap = BinaryHeap::new();
    for p in node.partition_map().all() {
        let start = data_key(p, &req.start);
        let end = match &req.end {
            Some(e) => data_key(p, e),
            None => data_range(p).1,
        };
        let mut it = snap.range(Some(&start), Some(&end))?;
        if let Some(item) = it.next() {
            let (k, v) = item?;
            heap.push(Reverse((strip(p, k), v, iters.len())));
        }
        iters.push((p, it));
    }
    let mut remaining = req.limit.unwrap_or(usize::MAX);
    let mut chunk = Vec::new();
    while remaining > 0 {
        let Some(Reverse((k, v, i))) = heap.pop() else {
            break;
        };
        let v = if req.keys_only { Vec::new() } else { v };
        chunk.push((k, v));
        remaining -= 1;
        if chunk.len() >= SCAN_CHUNK_PAIRS
            && tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_err()
        {
            return Ok(());
        }
        if let Some((p, it)) = iters.get_mut(i)
            && let Some(item) = it.next()
        {
            let (k, v) = item?;
            heap.push(Reverse((strip(*p, k), v, i)));
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(Ok(chunk));
    }
    Ok(())
}

fn strip(partition: PartitionId, engine_key: Vec<u8>) -> Vec<u8> {
    match user_key(partition, &engine_key) {
        Some(k) => k.to_vec(),
        None => engine_key,
    }
}
