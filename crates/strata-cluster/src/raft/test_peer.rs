//! A Raft peer for the transport's unit tests: a tonic server on a real loopback socket that
//! answers AppendEntries, single and batched, as a test's [`Appends`] says, and refuses every
//! other RPC.

use std::future::Future;

use strata_proto::raft_v1::raft_server::{Raft, RaftServer};
use strata_proto::raft_v1::{RaftBatch, RaftBatchReply, RaftReply, RaftRequest};
use tonic::{Request, Response, Status};

/// How a test peer answers the AppendEntries it gets.
pub(crate) trait Appends: Send + Sync + 'static {
    /// The reply payload to one AppendEntries call.
    fn append(&self, request: RaftRequest) -> impl Future<Output = Result<Vec<u8>, Status>> + Send;

    /// The reply to one AppendEntriesBatch call.
    fn append_batch(
        &self,
        requests: Vec<RaftRequest>,
    ) -> impl Future<Output = Result<RaftBatchReply, Status>> + Send;
}

struct Peer<A>(A);

#[tonic::async_trait]
impl<A: Appends> Raft for Peer<A> {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        let payload = self.0.append(request.into_inner()).await?;
        Ok(Response::new(RaftReply { payload }))
    }

    async fn append_entries_batch(
        &self,
        request: Request<RaftBatch>,
    ) -> Result<Response<RaftBatchReply>, Status> {
        let reply = self.0.append_batch(request.into_inner().requests).await?;
        Ok(Response::new(reply))
    }

    async fn vote(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        Err(Status::unimplemented("vote"))
    }

    async fn install_snapshot(
        &self,
        _: Request<RaftRequest>,
    ) -> Result<Response<RaftReply>, Status> {
        Err(Status::unimplemented("install_snapshot"))
    }

    async fn forward(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        Err(Status::unimplemented("forward"))
    }

    async fn forward_read(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        Err(Status::unimplemented("forward_read"))
    }

    async fn read_index(&self, _: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        Err(Status::unimplemented("read_index"))
    }
}

/// Serves `appends` on a loopback port of its own and returns its `host:port`.
pub(crate) async fn serve(appends: impl Appends) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftServer::new(Peer(appends)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(addr)
}
