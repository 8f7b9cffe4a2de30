//! The `etcd` backend: an etcd v3 cluster through its gRPC KV API (`Put` and `Range`), so a
//! Strata cluster and an etcd cluster run the same workloads through the same runner.
//!
//! Each benchmark thread gets its own connection and current-thread runtime, or one of
//! `--conns N` shared connections ([`Conns`]), as with the [`grpc`](super::grpc) backend, and
//! the connections are spread round-robin over the endpoints given
//! (`etcd://HOST:PORT,HOST:PORT,...`), as etcd's own benchmark tool spreads its clients.
//! Writes are acknowledged by etcd after its Raft entry commits (etcd syncs its WAL); reads are
//! linearizable (`serializable = false`), the default of both etcd and Strata.

use std::path::Path;
use std::sync::Arc;

use strata_client::H2Channel;

use super::conns::{Blocker, Conns, ThreadClients};
use super::target::Endpoints;
use super::{Backend, Opened};
use crate::error::{Error, Result};
use crate::workload::Workload;

const NAME: &str = "etcd";

/// The generated etcd KV client (`proto/etcd_kv.proto`).
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
pub(crate) mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;

/// One client thread's connection to an etcd member (its own, or a shared one).
pub struct Etcd {
    blocker: Blocker,
    client: KvClient<H2Channel>,
    clients: Arc<ThreadClients<KvClient<H2Channel>>>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// Connects to the members `addrs` (checking one answers a read), giving threads their
/// connections as `conns` says.
pub fn open(addrs: &[String], conns: Conns) -> Result<Opened> {
    let clients = ThreadClients::new(NAME, conns, Endpoints::new(addrs), |blocker, addr| {
        blocker.block_on(connect(addr))
    })?;
    let first = Etcd::new(Arc::new(clients))?;
    first.get(b"strata-bench-probe")?;
    let notes = std::iter::once(
        "etcd: writes are acknowledged after Raft commit (WAL synced), whatever --sync says; \
         reads are linearizable"
            .to_owned(),
    )
    .chain(first.clients.note())
    .collect();
    Ok(Opened {
        backend: Arc::new(first),
        notes,
    })
}

impl Etcd {
    /// The next thread's connection from `clients`.
    fn new(clients: Arc<ThreadClients<KvClient<H2Channel>>>) -> Result<Etcd> {
        let (blocker, client) = clients.take()?;
        Ok(Etcd {
            blocker,
            client,
            clients,
        })
    }
}

/// How long connecting to a member may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects a client to the member at `addr` (`host:port`), over the same HTTP/2 transport
/// as Strata's client ([`H2Channel`]), so that both systems' clients pay the same per call.
pub(crate) async fn connect(addr: &str) -> Result<KvClient<H2Channel>> {
    let uri = format!("http://{addr}")
        .parse()
        .map_err(|e| Error::backend(NAME, "connect", e))?;
    let channel =
        H2Channel::lazy(&uri, CONNECT_TIMEOUT).map_err(|e| Error::backend(NAME, "connect", e))?;
    channel
        .connect()
        .await
        .map_err(|e| Error::backend(NAME, "connect", e))?;
    Ok(KvClient::new(channel))
}

/// Reads `key` (linearizably, etcd's default) through `client`.
pub(crate) async fn range(client: &KvClient<H2Channel>, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let request = pb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    let reply = client
        .clone()
        .range(request)
        .await
        .map_err(|e| Error::backend(NAME, "range", e))?;
    Ok(reply.into_inner().kvs.into_iter().next().map(|kv| kv.value))
}

/// Writes `key` through `client`; etcd answers once its Raft entry is committed.
pub(crate) async fn put(client: &KvClient<H2Channel>, key: &[u8], value: &[u8]) -> Result<()> {
    let request = pb::PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        lease: 0,
    };
    client
        .clone()
        .put(request)
        .await
        .map_err(|e| Error::backend(NAME, "put", e))?;
    Ok(())
}

impl Backend for Etcd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.blocker.block_on(range(&self.client, key))
    }

    fn put(&self, key: &[u8], value: &[u8], _sync: bool) -> Result<()> {
        self.blocker.block_on(put(&self.client, key, value))
    }

    fn delete(&self, _key: &[u8], _sync: bool) -> Result<()> {
        Err(unsupported("delete"))
    }

    fn put_batch(&self, _entries: &[(&[u8], &[u8])], _sync: bool) -> Result<()> {
        Err(unsupported("batch"))
    }

    fn scan(
        &self,
        _start: &[u8],
        _limit: usize,
        _visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        Err(unsupported("scan"))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn local_dir(&self) -> Option<&Path> {
        None
    }

    fn thread_client(&self) -> Result<Option<Box<dyn Backend>>> {
        Ok(Some(Box::new(Etcd::new(Arc::clone(&self.clients))?)))
    }

    fn unsupported(&self, workload: Workload) -> Option<&'static str> {
        match workload {
            Workload::DeleteRandom | Workload::SeekRandom | Workload::ReadSeq => Some(REASON),
            Workload::ColdRead => Some("its files are not on this machine"),
            _ => None,
        }
    }
}

const REASON: &str = "the etcd backend implements Put and Range of single keys only";

fn unsupported(workload: &'static str) -> Error {
    Error::Unsupported {
        workload,
        backend: NAME,
        reason: REASON,
    }
}
