//! Routing to partition leaders. Any node of a cluster accepts every request and forwards it to
//! the leader of the key's partition, which costs a second hop; a client that knows where each
//! partition is led sends the request straight there. [`Routes`] keeps that table (from the
//! `Admin.Routes` call), a connection per leader address, and refreshes itself every
//! [`REFRESH_EVERY`] and after a routed call fails (asking another known node when the one it
//! connected to does not answer). A stale entry costs only the forwarding hop,
//! never a wrong answer: the node that receives a request forwards it when it does not lead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use strata_proto::slot;
use strata_proto::v1 as pb;
use strata_proto::v1::admin_client::AdminClient;
use strata_proto::v1::kv_client::KvClient;

use crate::client::{Connector, Svc};

/// How often the table is refreshed while the client is in use.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// The least time between two refreshes (failures trigger them, and may come in bursts).
const MIN_REFRESH_GAP: Duration = Duration::from_millis(200);

/// The leader table of one cluster.
pub(crate) struct Routes {
    partitions: u16,
    connector: Connector,
    /// Where the table is fetched from: the node the client connected to.
    seed: AdminClient<Svc>,
    /// Indexed by partition: a client of its leader, `None` while unknown.
    leaders: RwLock<Vec<Option<KvClient<Svc>>>>,
    /// One client per leader address, shared by the partitions it leads.
    by_addr: Mutex<HashMap<String, KvClient<Svc>>>,
    refreshed: Mutex<Instant>,
    refreshing: AtomicBool,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Routes {
    /// Asks `seed` for the cluster's routes. `None` when there is nothing to route: a single
    /// server (it answers with no partitions) or one that does not know the call.
    pub(crate) async fn discover(
        seed: AdminClient<Svc>,
        connector: Connector,
    ) -> Option<Arc<Routes>> {
        let reply = fetch(&seed, &connector).await?;
        let partitions = u16::try_from(reply.partitions).ok().filter(|p| *p > 0)?;
        let routes = Arc::new(Routes {
            partitions,
            connector,
            seed,
            leaders: RwLock::new(vec![None; usize::from(partitions)]),
            by_addr: Mutex::default(),
            refreshed: Mutex::new(Instant::now()),
            refreshing: AtomicBool::new(false),
        });
        routes.install(&reply);
        Some(routes)
    }

    /// The partition of `key`.
    pub(crate) fn partition_of(&self, key: &[u8]) -> u16 {
        slot::partition_of_slot(slot::slot(key), self.partitions)
    }

    /// A client of `partition`'s leader, if known; starts a refresh when the table is due.
    pub(crate) fn leader(self: &Arc<Self>, partition: u16) -> Option<KvClient<Svc>> {
        if lock(&self.refreshed).elapsed() >= REFRESH_EVERY {
            self.refresh();
        }
        self.leaders
            .read()
            .ok()?
            .get(usize::from(partition))
            .cloned()
            .flatten()
    }

    /// A call routed to `partition`'s leader failed: forget the leader (the next attempt goes
    /// to the node the client connected to) and refresh the table.
    pub(crate) fn failed(self: &Arc<Self>, partition: u16) {
        if let Ok(mut leaders) = self.leaders.write()
            && let Some(slot) = leaders.get_mut(usize::from(partition))
        {
            *slot = None;
        }
        self.refresh();
    }

    /// Refreshes the table in the background, unless a refresh runs or ran moments ago.
    fn refresh(self: &Arc<Self>) {
        if lock(&self.refreshed).elapsed() < MIN_REFRESH_GAP
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(reply) = this.fetch_anywhere().await
                && u16::try_from(reply.partitions).ok() == Some(this.partitions)
            {
                this.install(&reply);
            }
            *lock(&this.refreshed) = Instant::now();
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// The routes from the node the client connected to or, when it does not answer (it may
    /// be down), from any leader seen so far.
    async fn fetch_anywhere(&self) -> Option<pb::RoutesResponse> {
        if let Some(reply) = fetch(&self.seed, &self.connector).await {
            return Some(reply);
        }
        let others: Vec<String> = lock(&self.by_addr).keys().cloned().collect();
        for addr in others {
            let Ok(admin) = self.connector.lazy_admin(&addr) else {
                continue;
            };
            if let Some(reply) = fetch(&admin, &self.connector).await {
                return Some(reply);
            }
        }
        None
    }

    /// Installs the leaders of `reply`, connecting (lazily) to addresses not seen before.
    fn install(&self, reply: &pb::RoutesResponse) {
        let mut by_addr = lock(&self.by_addr);
        let table: Vec<Option<KvClient<Svc>>> = (0..usize::from(self.partitions))
            .map(|p| {
                let addr = reply.leaders.get(p).filter(|a| !a.is_empty())?;
                if let Some(c) = by_addr.get(addr) {
                    return Some(c.clone());
                }
                match self.connector.lazy_kv(addr) {
                    Ok(c) => {
                        by_addr.insert(addr.clone(), c.clone());
                        Some(c)
                    }
                    Err(e) => {
                        tracing::debug!(addr, error = %e, "cannot route to leader");
                        None
                    }
                }
            })
            .collect();
        if let Ok(mut leaders) = self.leaders.write() {
            *leaders = table;
        }
    }
}

/// One `Admin.Routes` call; `None` on any failure (routing is an optimisation).
async fn fetch(seed: &AdminClient<Svc>, connector: &Connector) -> Option<pb::RoutesResponse> {
    let mut admin = seed.clone();
    let mut req = tonic::Request::new(pb::RoutesRequest {});
    req.set_timeout(connector.opts.request_timeout);
    match tokio::time::timeout(connector.opts.request_timeout, admin.routes(req)).await {
        Ok(Ok(reply)) => Some(reply.into_inner()),
        Ok(Err(status)) => {
            tracing::debug!(%status, "no routes from the server");
            None
        }
        Err(_) => None,
    }
}
