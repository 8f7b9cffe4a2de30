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

use crate::error::{Error, Result};

/// Where client threads get their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conns {
    /// One connection (and runtime) per thread.
    #[default]
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

/// `N` clients shared round-robin by the threads that ask for one.
#[derive(Debug)]
pub struct SharedClients<C> {
    blocker: Blocker,
    clients: Vec<C>,
    next: AtomicUsize,
}

impl<C: Clone> SharedClients<C> {
    /// `n` clients made by `connect` (given the connection's number) on one shared runtime.
    pub fn connect(
        backend: &'static str,
        n: usize,
        mut connect: impl FnMut(&Blocker, usize) -> Result<C>,
    ) -> Result<SharedClients<C>> {
        let blocker = Blocker::shared(backend)?;
        let clients = (0..n.max(1))
            .map(|i| connect(&blocker, i))
            .collect::<Result<_>>()?;
        Ok(SharedClients {
            blocker,
            clients,
            next: AtomicUsize::new(0),
        })
    }

    /// The next thread's client and the runtime to block on.
    pub fn take(&self) -> (Blocker, C) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        (self.blocker.clone(), self.clients[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_spread_over_the_shared_clients_in_turn() {
        let shared = SharedClients::connect("test", 3, |_, i| Ok(i)).unwrap();
        let got: Vec<usize> = (0..7).map(|_| shared.take().1).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
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
