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

use super::conns::{Blocker, Conns, SharedClients};
use super::target::Endpoints;
use super::{Backend, Opened};
use crate::error::{Error, Result};
use strata_client::{Batch, Client, ClientOptions};

const NAME: &str = "grpc";

/// One client thread's connection to a Strata server (its own, or a shared one).
pub struct Grpc {
    blocker: Blocker,
    client: Client,
    source: Arc<Source>,
}

/// Where the threads' connections come from.
#[derive(Debug)]
enum Source {
    /// Each thread connects to the next endpoint.
    PerThread {
        endpoints: Endpoints,
        opts: ClientOptions,
    },
    /// Threads take turns at clients made once.
    Shared(SharedClients<Client>),
}

impl std::fmt::Debug for Grpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grpc")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Connects to the servers `addrs` (checking one answers), with `token` when given, giving
/// threads their connections as `conns` says.
pub fn open(addrs: &[String], token: Option<&str>, conns: Conns) -> Result<Opened> {
    let opts = ClientOptions {
        token: token.map(str::to_owned),
        // A benchmark reports failures rather than hiding them behind retries.
        max_retries: 0,
        ..ClientOptions::default()
    };
    let endpoints = Endpoints::new(addrs);
    let source = match conns {
        Conns::PerThread => Source::PerThread { endpoints, opts },
        Conns::Shared(n) => Source::Shared(SharedClients::connect(NAME, n, |blocker, _| {
            connect_client(blocker, endpoints.next(), &opts)
        })?),
    };
    let first = Grpc::new(Arc::new(source))?;
    first.call("status", first.client.status())?;
    let mut notes = vec![
        "grpc: every write is synced by the server (group commit), whatever --sync says".to_owned(),
    ];
    if let Conns::Shared(n) = conns {
        notes.push(format!("grpc: the threads share {n} connection(s)"));
    }
    Ok(Opened {
        backend: Arc::new(first),
        notes,
    })
}

fn connect_client(blocker: &Blocker, addr: &str, opts: &ClientOptions) -> Result<Client> {
    blocker
        .block_on(Client::connect(addr, opts.clone()))
        .map_err(|e| Error::backend(NAME, "connect", e))
}

impl Grpc {
    /// The next thread's connection from `source`.
    fn new(source: Arc<Source>) -> Result<Grpc> {
        let (blocker, client) = match &*source {
            Source::PerThread { endpoints, opts } => {
                let blocker = Blocker::own(NAME)?;
                let client = connect_client(&blocker, endpoints.next(), opts)?;
                (blocker, client)
            }
            Source::Shared(shared) => shared.take(),
        };
        Ok(Grpc {
            blocker,
            client,
            source,
        })
    }

    fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = strata_client::Result<T>>,
    ) -> Result<T> {
        self.blocker
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
        Ok(Some(Box::new(Grpc::new(Arc::clone(&self.source))?)))
    }
}
