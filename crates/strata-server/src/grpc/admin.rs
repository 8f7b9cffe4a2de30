//! The `strata.v1.Admin` service: Status, Routes, AddNode, RemoveNode, Stats, Compact and Flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_cluster::raft::membership::MembershipChange;

use strata_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{observe, status};
use crate::state::Shared;

/// The Admin service implementation.
pub struct AdminApi {
    shared: Arc<Shared>,
}

/// How long a membership change may take: every partition's new replica catches up first.
const MEMBERSHIP_CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

impl AdminApi {
    /// Serves the server described by `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        AdminApi { shared }
    }

    async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let Some(node) = &self.shared.cluster else {
            return Err(Status::failed_precondition(
                "not a cluster node: membership changes need cluster mode",
            ));
        };
        let start = Instant::now();
        let res = node
            .change_membership(&change, MEMBERSHIP_CHANGE_TIMEOUT)
            .await
            .map(|n| {
                Response::new(pb::MembershipResponse {
                    partitions: u32::try_from(n).unwrap_or(u32::MAX),
                })
            })
            .map_err(|e| status(&e));
        observe("membership", start, res)
    }
}

/// Converts engine stats to their protobuf form.
pub fn stats_to_proto(s: &strata_engine::Stats) -> pb::StatsResponse {
    pb::StatsResponse {
        keys_written: s.keys_written,
        keys_read: s.keys_read,
        bloom_negatives: s.bloom_negatives,
        bloom_false_positives: s.bloom_false_positives,
        flushes: s.flushes,
        compactions: s.compactions,
        compaction_bytes_read: s.compaction_bytes_read,
        compaction_bytes_written: s.compaction_bytes_written,
        write_stalls: s.write_stalls,
        wal_bytes_written: s.wal_bytes_written,
        wal_syncs: s.wal_syncs,
        memtable_bytes: s.memtable_bytes,
        last_sequence: s.last_sequence,
        write_amplification: s.write_amplification(),
        levels: s
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| pb::LevelStats {
                level: u32::try_from(i).unwrap_or(u32::MAX),
                files: l.files as u64,
                bytes: l.bytes,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminApi {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = &self.shared;
        Ok(Response::new(pb::StatusResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            node_id: s.config.node_id.clone(),
            uptime_seconds: s.uptime_secs(),
            grpc_addr: s.addrs.grpc.to_string(),
            redis_addr: s.addrs.redis.to_string(),
            http_addr: s.addrs.http.to_string(),
            data_dir: s.config.data_dir.display().to_string(),
            connections: s.connections(),
        }))
    }

    async fn routes(
        &self,
        _req: Request<pb::RoutesRequest>,
    ) -> Result<Response<pb::RoutesResponse>, Status> {
        let Some(node) = &self.shared.cluster else {
            return Ok(Response::new(pb::RoutesResponse::default()));
        };
        let map = node.partition_map();
        Ok(Response::new(pb::RoutesResponse {
            partitions: u32::from(map.partitions()),
            leaders: map
                .all()
                .map(|p| node.leader_addr(p).unwrap_or_default())
                .collect(),
        }))
    }

    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = req.into_inner();
        if req.addr.trim().is_empty() {
            return Err(Status::invalid_argument("the new node needs an address"));
        }
        self.change_membership(MembershipChange::Add {
            id: req.id,
            addr: req.addr,
        })
        .await
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let id = req.into_inner().id;
        self.change_membership(MembershipChange::Remove { id })
            .await
    }

    async fn stats(
        &self,
        _req: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let start = Instant::now();
        let res = self
            .shared
            .kv
            .stats()
            .await
            .map(|s| Response::new(stats_to_proto(&s)))
            .map_err(|e| status(&e));
        observe("stats", start, res)
    }

    async fn compact(
        &self,
        req: Request<pb::CompactRequest>,
    ) -> Result<Response<pb::CompactResponse>, Status> {
        let start = Instant::now();
        let r = req.into_inner();
        let bound = |b: Vec<u8>| (!b.is_empty()).then_some(b);
        let res = self
            .shared
            .kv
            .compact(bound(r.start), bound(r.end))
            .await
            .map(|rep| {
                Response::new(pb::CompactResponse {
                    files_before: rep.files_before as u64,
                    bytes_before: rep.bytes_before,
                    files_after: rep.files_after as u64,
                    bytes_after: rep.bytes_after,
                    keys_dropped: rep.keys_dropped,
                    duration_micros: u64::try_from(rep.duration.as_micros()).unwrap_or(u64::MAX),
                })
            })
            .map_err(|e| status(&e));
        observe("compact", start, res)
    }

    async fn flush(
        &self,
        _req: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushResponse>, Status> {
        let start = Instant::now();
        let res = self
            .shared
            .kv
            .flush()
            .await
            .map(|()| {
                Response::new(pb::FlushResponse {
                    duration_micros: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
                })
            })
            .map_err(|e| status(&e));
        observe("flush", start, res)
    }
}
