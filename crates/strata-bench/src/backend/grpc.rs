//! The `grpc` backend: a Strata server through its gRPC API ([`strata_client`]).
//!
//! Each benchmark thread gets its own [`Grpc`] (see [`Backend::thread_client`]): by default
//! its own connection and a small current-thread runtime that it blocks on for every call, as
//! a synchronous client would; with `--conns N`, one of `N` clients shared by all threads
//! ([`Conns`]). Given several members of a cluster, the connections are spread over them
//! round-robin (each member forwards what it does not lead). Every write the server
//! acknowledges is synced (through its group commit), so `sync = false` cannot be honoured and
//! `fillsync` measures what every write costs.

use std::path::Path;
use std::sync::Arc;

use super::conns::{Blocker, Conns, ThreadClients};
use super::target::Endpoints;
use super::{Backend, Opened};
use crate::error::{Error, Result};
use strata_client::{Batch, Client, ClientOptions};

const NAME: &str = "grpc";

/// One client thread's connection to a Strata server (its own, or a shared one).
pub struct Grpc {
    blocker: Blocker,
    client: Client,
    clients: Arc<ThreadClients<Client>>,
}

impl std::fmt::Debug for Grpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grpc")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// Connects to the servers `addrs` (checking one answers), with `token` when given, giving
/// threads their connections as `conns` says.
pub fn open(addrs: &[String], token: Option<&str>, conns: Conns) -> Result<Opened> {
    let token = token.map(str::to_owned);
    let clients = ThreadClients::new(NAME, conns, Endpoints::new(addrs), move |blocker, addr| {
        blocker.block_on(connect(addr, token.as_deref()))
    })?;
    let first = Grpc::new(Arc::new(clients))?;
    first.call("status", first.client.status())?;
    let notes = std::iter::once(
        "grpc: every write is synced by the server (group commit), whatever --sync says".to_owned(),
    )
    .chain(first.clients.note())
    .collect();
    Ok(Opened {
        backend: Arc::new(first),
        notes,
    })
}

/// Connects a client to the server at `addr` (`host:port`), with `token` when given.
pub(crate) async fn connect(addr: &str, token: Option<&str>) -> Result<Client> {
    let opts = ClientOptions {
        token: token.map(str::to_owned),
        // A benchmark reports failures rather than hiding them behind retries.
        max_retries: 0,
        ..ClientOptions::default()
    };
    Client::connect(addr, opts)
        .await
        .map_err(|e| Error::backend(NAME, "connect", e))
}

/// `result` of the call `op`, with its error as the benchmark reports it.
pub(crate) fn answer<T>(op: &'static str, result: strata_client::Result<T>) -> Result<T> {
    result.map_err(|e| Error::backend(NAME, op, e))
}

impl Grpc {
    /// The next thread's connection from `clients`.
    fn new(clients: Arc<ThreadClients<Client>>) -> Result<Grpc> {
        let (blocker, client) = clients.take()?;
        Ok(Grpc {
            blocker,
            client,
            clients,
        })
    }

    fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = strata_client::Result<T>>,
    ) -> Result<T> {
        answer(op, self.blocker.block_on(fut))
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
        Ok(Some(Box::new(Grpc::new(Arc::clone(&self.clients))?)))
    }
}
