//! The `etcd` backend: an etcd v3 cluster through its gRPC KV API (`Put` and `Range`), so a
//! Strata cluster and an etcd cluster run the same workloads through the same runner.
//!
//! Each benchmark thread gets its own connection and current-thread runtime, as with the
//! [`grpc`](super::grpc) backend, and the threads are spread round-robin over the endpoints
//! given (`etcd://HOST:PORT,HOST:PORT,...`), as etcd's own benchmark tool spreads its clients.
//! Writes are acknowledged by etcd after its Raft entry commits (etcd syncs its WAL); reads are
//! linearizable (`serializable = false`), the default of both etcd and Strata.

use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Runtime;
use tonic::transport::Channel;

use super::target::Endpoints;
use super::{Backend, Opened};
use crate::error::{Error, Result};
use crate::workload::Workload;

const NAME: &str = "etcd";

/// The generated etcd KV client (`proto/etcd_kv.proto`).
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;

/// One connection to one etcd member.
pub struct Etcd {
    runtime: Runtime,
    client: KvClient<Channel>,
    endpoints: Arc<Endpoints>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// Connects to the first of `addrs` and checks that it answers a read.
pub fn open(addrs: &[String]) -> Result<Opened> {
    let endpoints = Arc::new(Endpoints::new(addrs));
    let first = Etcd::connect(Arc::clone(&endpoints))?;
    first.get(b"strata-bench-probe")?;
    Ok(Opened {
        backend: Arc::new(first),
        notes: vec![
            "etcd: writes are acknowledged after Raft commit (WAL synced), whatever --sync says; \
             reads are linearizable"
                .to_owned(),
        ],
    })
}

impl Etcd {
    fn connect(endpoints: Arc<Endpoints>) -> Result<Etcd> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::backend(NAME, "start runtime", e))?;
        let addr = format!("http://{}", endpoints.next());
        let client = runtime
            .block_on(KvClient::connect(addr))
            .map_err(|e| Error::backend(NAME, "connect", e))?;
        Ok(Etcd {
            runtime,
            client,
            endpoints,
        })
    }
}

impl Backend for Etcd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let request = pb::RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let mut client = self.client.clone();
        let reply = self
            .runtime
            .block_on(client.range(request))
            .map_err(|e| Error::backend(NAME, "range", e))?;
        Ok(reply.into_inner().kvs.into_iter().next().map(|kv| kv.value))
    }

    fn put(&self, key: &[u8], value: &[u8], _sync: bool) -> Result<()> {
        let request = pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: 0,
        };
        let mut client = self.client.clone();
        self.runtime
            .block_on(client.put(request))
            .map_err(|e| Error::backend(NAME, "put", e))?;
        Ok(())
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
        Ok(Some(Box::new(Etcd::connect(Arc::clone(&self.endpoints))?)))
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
