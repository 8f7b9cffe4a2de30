//! The `strata.v1.KV` service: Get, Put, Delete, streamed Scan and conditional Batch, each a thin
//! translation onto [`KvService`].

use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use strata_cluster::{Consistency, KvService, Mutation, Precondition, ReadOptions, ScanRequest};
use strata_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{observe, status};

/// The KV service implementation.
pub struct KvApi {
    kv: Arc<dyn KvService>,
}

impl KvApi {
    /// Serves `kv`.
    pub fn new(kv: Arc<dyn KvService>) -> Self {
        KvApi { kv }
    }
}

fn read_options(c: i32) -> ReadOptions {
    ReadOptions {
        consistency: match pb::Consistency::try_from(c) {
            Ok(pb::Consistency::Stale) => Consistency::Stale,
            _ => Consistency::Linearizable,
        },
    }
}

fn precondition(p: pb::Precondition) -> Result<Precondition, Status> {
    use pb::precondition::Condition;
    let key = p.key;
    match p.condition {
        Some(Condition::ValueEquals(value)) => Ok(Precondition::ValueEquals { key, value }),
        Some(Condition::Absent(_)) => Ok(Precondition::Absent { key }),
        Some(Condition::Present(_)) => Ok(Precondition::Present { key }),
        None => Err(Status::invalid_argument("precondition without a condition")),
    }
}

fn mutation(op: pb::BatchOp) -> Result<Mutation, Status> {
    match op.op {
        Some(pb::batch_op::Op::Put(p)) => Ok(Mutation::Put {
            key: p.key,
            value: p.value,
        }),
        Some(pb::batch_op::Op::Delete(d)) => Ok(Mutation::Delete { key: d.key }),
        None => Err(Status::invalid_argument("batch op without put or delete")),
    }
}

type ScanResponseStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<pb::ScanResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::kv_server::Kv for KvApi {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let start = Instant::now();
        let r = req.into_inner();
        let res = self
            .kv
            .get(r.key, read_options(r.consistency))
            .await
            .map(|value| Response::new(pb::GetResponse { value }))
            .map_err(|e| status(&e));
        observe("get", start, res)
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let start = Instant::now();
        let r = req.into_inner();
        let res = self
            .kv
            .put(r.key, r.value)
            .await
            .map(|()| Response::new(pb::PutResponse {}))
            .map_err(|e| status(&e));
        observe("put", start, res)
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let start = Instant::now();
        let res = self
            .kv
            .delete(req.into_inner().key)
            .await
            .map(|()| Response::new(pb::DeleteResponse {}))
            .map_err(|e| status(&e));
        observe("delete", start, res)
    }

    type ScanStream = ScanResponseStream;

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<Self::ScanStream>, Status> {
        let start = Instant::now();
        let r = req.into_inner();
        let scan = ScanRequest {
            start: r.start,
            end: (!r.end.is_empty()).then_some(r.end),
            limit: (r.limit > 0).then(|| usize::try_from(r.limit).unwrap_or(usize::MAX)),
            keys_only: r.keys_only,
            read: read_options(r.consistency),
        };
        let res = self.kv.scan(scan).await.map_err(|e| status(&e));
        let res = res.map(|stream| {
            let out: ScanResponseStream = Box::pin(stream.map(|chunk| {
                chunk
                    .map(|pairs| pb::ScanResponse {
                        pairs: pairs
                            .into_iter()
                            .map(|(key, value)| pb::KeyValue { key, value })
                            .collect(),
                    })
                    .map_err(|e| status(&e))
            }));
            Response::new(out)
        });
        observe("scan", start, res)
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        let start = Instant::now();
        let r = req.into_inner();
        let parsed = r
            .preconditions
            .into_iter()
            .map(precondition)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|p| {
                let m = r
                    .ops
                    .into_iter()
                    .map(mutation)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((p, m))
            });
        let res = match parsed {
            Ok((p, m)) => self
                .kv
                .batch(p, m)
                .await
                .map(|o| {
                    Response::new(pb::BatchResponse {
                        applied: o.applied,
                        failed_precondition: o
                            .failed_precondition
                            .and_then(|i| u32::try_from(i).ok())
                            .unwrap_or(0),
                    })
                })
                .map_err(|e| status(&e)),
            Err(s) => Err(s),
        };
        observe("batch", start, res)
    }
}
