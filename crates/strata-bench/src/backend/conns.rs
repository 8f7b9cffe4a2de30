//! How the client threads of a remote benchmark reach the server: [`Conns`].
//!
//! By default every thread opens a connection of its own and blocks on a small runtime of its
//! own, as independent synchronous clients would. With `--conns N` the threads share `N`
//! connections instead (thread `i` uses connection `i mod N`), multiplexed by HTTP/2 and
//! driven by one runtime whose workers serve every thread: the way gRPC clients are meant to
//! be used (one channel, many concurrent calls), and what etcd's own benchmark tool does
//! (`benchmark --conns N --clients M`). Either way each thread has one request in flight, so
//! the server sees the same concurrency; what changes is how many requests share a socket
//! read or write on both sides.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Runtime;

use super::target::Endpoints;
use crate::error::{Error, Result};

/// Where client threads get their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conns {
    /// One connection (and runtime) per thread.
    PerThread,
    /// This many connections shared by all threads.
    Shared(usize),
}

impl Conns {
    /// `--conns`: `None` (one per thread) or how many to share (at least one, as
    /// [`BenchArgs::validate`](crate::args::BenchArgs::validate) checks).
    pub fn from_arg(conns: Option<usize>) -> Conns {
        match conns {
            None => Conns::PerThread,
            Some(n) => Conns::Shared(n),
        }
    }
}

/// A runtime to block on, owned by one thread or shared by all of them.
#[derive(Debug, Clone)]
pub struct Blocker(Arc<Runtime>);

impl Blocker {
    /// A runtime for one thread's own connection.
    pub fn own(backend: &'static str) -> Result<Blocker> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::backend(backend, "start runtime", e))?;
        Ok(Blocker(Arc::new(rt)))
    }

    /// A runtime whose workers drive connections shared by many threads.
    pub fn shared(backend: &'static str) -> Result<Blocker> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("bench-conns")
            .build()
            .map_err(|e| Error::backend(backend, "start runtime", e))?;
        Ok(Blocker(Arc::new(rt)))
    }

    /// Runs `fut` to completion on the calling thread.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }
}

/// Connects a client to one `host:port`, blocking on the runtime given.
type Connect<C> = Box<dyn Fn(&Blocker, &str) -> Result<C> + Send + Sync>;

/// The clients of a remote backend's threads, handed out as [`Conns`] says: each thread
/// connecting to the next endpoint on a runtime of its own, or taking turns at `N` clients made
/// once, round-robin over the endpoints, on one shared runtime.
pub(crate) struct ThreadClients<C> {
    backend: &'static str,
    source: Source<C>,
}

enum Source<C> {
    PerThread {
        endpoints: Endpoints,
        connect: Connect<C>,
    },
    Shared {
        blocker: Blocker,
        clients: Vec<C>,
        next: AtomicUsize,
    },
}

impl<C> std::fmt::Debug for ThreadClients<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let conns = match &self.source {
            Source::PerThread { .. } => Conns::PerThread,
            Source::Shared { clients, .. } => Conns::Shared(clients.len()),
        };
        f.debug_struct("ThreadClients")
            .field("backend", &self.backend)
            .field("conns", &conns)
            .finish_non_exhaustive()
    }
}

impl<C: Clone> ThreadClients<C> {
    /// Clients of `backend` reaching `endpoints` through `connect`, as `conns` says (shared
    /// clients are connected here).
    pub(crate) fn new(
        backend: &'static str,
        conns: Conns,
        endpoints: Endpoints,
        connect: impl Fn(&Blocker, &str) -> Result<C> + Send + Sync + 'static,
    ) -> Result<ThreadClients<C>> {
        let source = match conns {
            Conns::PerThread => Source::PerThread {
                endpoints,
                connect: Box::new(connect),
            },
            Conns::Shared(n) => {
                let blocker = Blocker::shared(backend)?;
                let clients = (0..n.max(1))
                    .map(|_| connect(&blocker, endpoints.next()))
                    .collect::<Result<_>>()?;
                Source::Shared {
                    blocker,
                    clients,
                    next: AtomicUsize::new(0),
                }
            }
        };
        Ok(ThreadClients { backend, source })
    }

    /// The next thread's client and the runtime to block on.
    pub(crate) fn take(&self) -> Result<(Blocker, C)> {
        match &self.source {
            Source::PerThread { endpoints, connect } => {
                let blocker = Blocker::own(self.backend)?;
                let client = connect(&blocker, endpoints.next())?;
                Ok((blocker, client))
            }
            Source::Shared {
                blocker,
                clients,
                next,
            } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % clients.len();
                Ok((blocker.clone(), clients[i].clone()))
            }
        }
    }

    /// A line for the report when the threads share connections.
    pub(crate) fn note(&self) -> Option<String> {
        match &self.source {
            Source::PerThread { .. } => None,
            Source::Shared { clients, .. } => Some(format!(
                "{}: the threads share {} connection(s)",
                self.backend,
                clients.len()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints::new(&["a:1".to_owned(), "b:2".to_owned()])
    }

    #[test]
    fn threads_take_turns_at_the_shared_clients() {
        let made = std::sync::Mutex::new(0);
        let clients = ThreadClients::new("test", Conns::Shared(3), endpoints(), move |_, addr| {
            let mut n = made.lock().unwrap();
            *n += 1;
            Ok(format!("{addr}#{n}"))
        })
        .unwrap();
        let got: Vec<String> = (0..4).map(|_| clients.take().unwrap().1).collect();
        assert_eq!(got, ["a:1#1", "b:2#2", "a:1#3", "a:1#1"]);
        assert_eq!(
            clients.note().as_deref(),
            Some("test: the threads share 3 connection(s)")
        );
    }

    #[test]
    fn each_thread_connects_to_the_next_endpoint_on_its_own() {
        let clients = ThreadClients::new("test", Conns::PerThread, endpoints(), |_, addr| {
            Ok(addr.to_owned())
        })
        .unwrap();
        let got: Vec<String> = (0..3).map(|_| clients.take().unwrap().1).collect();
        assert_eq!(got, ["a:1", "b:2", "a:1"]);
        assert_eq!(clients.note(), None);
    }

    #[test]
    fn a_shared_runtime_serves_several_threads_at_once() {
        let blocker = Blocker::shared("test").unwrap();
        let handles: Vec<_> = (0..4u64)
            .map(|i| {
                let b = blocker.clone();
                std::thread::spawn(move || {
                    b.block_on(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        i * 2
                    })
                })
            })
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 12);
    }
}
