//! The `grpc` backend: a Strata server through its gRPC API ([`strata_client`]).
//!
//! Each benchmark thread gets its own [`Grpc`] (see [`Backend::thread_client`]): its own
//! connection and a small current-thread runtime that it blocks on for every call, as a
//! synchronous client would. Given several members of a cluster, the threads are spread over
//! them round-robin (each member forwards what it does not lead). Every write the server
//! acknowledges is synced (through its group commit), so `sync = false` cannot be honoured and
//! `fillsync` measures what every write costs.

use std::path::Path;
use std::sync::Arc;

use strata_client::{Batch, Client, ClientOptions};
use tokio::runtime::Runtime;

use super::target::Endpoints;
use super::{Backend, Opened};
use crate::error::{Error, Result};

const NAME: &str = "grpc";

/// One connection to a Strata server.
pub struct Grpc {
    runtime: Runtime,
    client: Client,
    addr: String,
    opts: ClientOptions,
    endpoints: Arc<Endpoints>,
}

impl std::fmt::Debug for Grpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grpc").field("addr", &self.addr).finish()
    }
}

/// Connects to the first server of `addrs` (checking it answers), with `token` when given.
pub fn open(addrs: &[String], token: Option<&str>) -> Result<Opened> {
    let opts = ClientOptions {
        token: token.map(str::to_owned),
        // A benchmark reports failures rather than hiding them behind retries.
        max_retries: 0,
        ..ClientOptions::default()
    };
    let endpoints = Arc::new(Endpoints::new(addrs));
    let first = Grpc::connect(endpoints, opts)?;
    first.call("status", first.client.status())?;
    Ok(Opened {
        backend: Arc::new(first),
        notes: vec![
            "grpc: every write is synced by the server (group commit), whatever --sync says"
                .to_owned(),
        ],
    })
}

impl Grpc {
    fn connect(endpoints: Arc<Endpoints>, opts: ClientOptions) -> Result<Grpc> {
        let addr = endpoints.next().to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::backend(NAME, "start runtime", e))?;
        let client = runtime
            .block_on(Client::connect(&addr, opts.clone()))
            .map_err(|e| Error::backend(NAME, "connect", e))?;
        Ok(Grpc {
            runtime,
            client,
            addr,
            opts,
            endpoints,
        })
    }

    fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = strata_client::Result<T>>,
    ) -> Result<T> {
        self.runtime
            .block_on(fut)
            .map_err(|e| Error::backend(NAME, op, e))
    }
}

impl Backend for Grpc {
    fn name(&self) -> &'static str {
        NAME
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.call("get", self.client.get(key))
    }

    fn put(&self, key: &[u8], value: &[u8], _sync: bool) -> Result<()> {
        self.call("put", self.client.put(key, value))
    }

    fn delete(&self, key: &[u8], _sync: bool) -> Result<()> {
        self.call("delete", self.client.delete(key))
    }

    fn put_batch(&self, entries: &[(&[u8], &[u8])], _sync: bool) -> Result<()> {
        let batch = entries.iter().fold(Batch::new(), |b, (k, v)| b.put(k, v));
        self.call("batch", self.client.batch(batch)).map(|_| ())
    }

    fn scan(
        &self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        let pairs = self.call(
            "scan",
            self.client
                .scan(start, b"", u64::try_from(limit).unwrap_or(u64::MAX)),
        )?;
        for (k, v) in &pairs {
            visit(k, v);
        }
        Ok(pairs.len())
    }

    fn flush(&self) -> Result<()> {
        // The server flushes its memtable on its own schedule; there is no flush call.
        Ok(())
    }

    fn local_dir(&self) -> Option<&Path> {
        None
    }

    fn thread_client(&self) -> Result<Option<Box<dyn Backend>>> {
        Ok(Some(Box::new(Grpc::connect(
            Arc::clone(&self.endpoints),
            self.opts.clone(),
        )?)))
    }
}
