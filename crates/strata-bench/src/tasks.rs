//! Clients as tasks (`--async-clients`): the `--threads` clients of a `grpc://` or `etcd://`
//! target run as tasks of one multi-threaded tokio runtime (a worker per core) instead of one
//! OS thread each, as etcd's own benchmark runs its clients as goroutines.
//!
//! Each client still has one request in flight and, unless `--conns N` makes them share, a
//! connection of its own, so the servers see the same load; what changes is the client's own
//! cost. With a thread per client every call blocks its thread, and each reply wakes a thread
//! of its own; on a small machine shared with the servers under test that costs the client as
//! much CPU per operation as a server spends, which narrows every difference between the
//! systems measured. Tasks share a few threads, and one wake-up of a worker serves every reply
//! that arrived meanwhile.

use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;
use strata_client::H2Channel;
use tokio::task::JoinHandle;

use crate::backend::conns::Conns;
use crate::backend::etcd::{self, pb::kv_client::KvClient};
use crate::backend::grpc;
use crate::backend::target::{Endpoints, Target};
use crate::error::{Error, Result};
use crate::keys::KeyFormat;
use crate::runner::{Shared, ThreadOutcome, ThreadState, past, write_key};
use crate::workload::Workload;

/// What every client task of one workload needs, owned so that tasks can hold it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    workload: Workload,
    keys: KeyFormat,
    value_size: usize,
    num: u64,
    ops: u64,
    seed: u64,
    deadline: Option<Instant>,
    bar: ProgressBar,
}

impl Plan {
    /// The plan of the workload the threads would share as `shared`.
    pub(crate) fn new(shared: &Shared<'_>) -> Plan {
        Plan {
            workload: shared.workload,
            keys: shared.keys,
            value_size: shared.value_size,
            num: shared.num,
            ops: shared.ops,
            seed: shared.seed,
            deadline: shared.deadline,
            bar: shared.bar.clone(),
        }
    }
}

/// One client's connection.
#[derive(Clone)]
enum TaskClient {
    Grpc(Box<strata_client::Client>),
    Etcd(KvClient<H2Channel>),
}

impl TaskClient {
    async fn connect(target: &Target, addr: &str, token: Option<&str>) -> Result<TaskClient> {
        match target {
            Target::Grpc(_) => Ok(TaskClient::Grpc(Box::new(
                grpc::connect(addr, token).await?,
            ))),
            Target::Etcd(_) => Ok(TaskClient::Etcd(etcd::connect(addr).await?)),
            Target::Redis(_) => Err(unsupported(target.name())),
        }
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self {
            TaskClient::Grpc(c) => grpc::answer("get", c.get(key).await),
            TaskClient::Etcd(c) => etcd::range(c, key).await,
        }
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        match self {
            TaskClient::Grpc(c) => grpc::answer("put", c.put(key, value).await),
            TaskClient::Etcd(c) => etcd::put(c, key, value).await,
        }
    }
}

fn unsupported(backend: &'static str) -> Error {
    Error::Unsupported {
        workload: "--async-clients",
        backend,
        reason: "clients as tasks run against grpc:// and etcd:// targets",
    }
}

/// Whether client tasks run `workload`: the fill workloads and the point reads.
pub(crate) fn runs(workload: Workload) -> bool {
    matches!(
        workload,
        Workload::FillSeq
            | Workload::FillRandom
            | Workload::Overwrite
            | Workload::FillSync
            | Workload::ReadRandom
            | Workload::ReadMissing
    )
}

/// Runs `plan` (of a workload that [`runs`]) with `clients` client tasks against `target`
/// (spread round-robin over its members, or sharing `conns` connections), and returns what
/// each measured.
pub(crate) fn run(
    target: &Target,
    token: Option<&str>,
    conns: Conns,
    plan: Plan,
    clients: usize,
) -> Result<Vec<Result<ThreadOutcome>>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
        .map_err(|e| Error::backend(target.name(), "start runtime", e))?;
    runtime.block_on(async {
        let endpoints = Endpoints::new(&target.addrs());
        let connections = match conns {
            Conns::PerThread => clients,
            Conns::Shared(n) => n.max(1),
        };
        let mut made = Vec::with_capacity(connections);
        for _ in 0..connections {
            made.push(TaskClient::connect(target, endpoints.next(), token).await?);
        }
        let plan = Arc::new(plan);
        let handles: Vec<JoinHandle<Result<ThreadOutcome>>> = (0..clients)
            .map(|tid| {
                let client = made[tid % made.len()].clone();
                tokio::spawn(client_loop(Arc::clone(&plan), tid, client))
            })
            .collect();
        let mut outcomes = Vec::with_capacity(clients);
        for handle in handles {
            outcomes.push(
                handle
                    .await
                    .unwrap_or_else(|_| Err(Error::ThreadPanicked(plan.workload.name()))),
            );
        }
        Ok(outcomes)
    })
}

/// One client task: `plan.ops` operations, or until the deadline, one at a time.
async fn client_loop(plan: Arc<Plan>, tid: usize, client: TaskClient) -> Result<ThreadOutcome> {
    let mut t = ThreadState::new(plan.seed, tid, plan.keys, plan.value_size);
    let key_len = plan.keys.key_size() as u64;
    let value_len = plan.value_size as u64;
    let mut seq_next = 0u64;
    t.out.start = Some(Instant::now());
    while t.out.ops < plan.ops {
        let started = Instant::now();
        if past(plan.deadline, started) {
            break;
        }
        let bytes = match plan.workload {
            Workload::ReadRandom | Workload::ReadMissing => {
                t.next_read_key(plan.workload, plan.keys, plan.num);
                let value = client.get(&t.key).await?;
                t.read_answered(plan.workload, key_len, value.map(|v| v.len()))
            }
            _ => {
                let k = write_key(plan.workload, plan.num, &mut t.rng, &mut seq_next);
                plan.keys.present(k, &mut t.key);
                client.put(&t.key, t.values.next(plan.value_size)).await?;
                key_len + value_len
            }
        };
        t.finished(&plan.bar, started, 1, bytes);
    }
    t.out.end = Some(Instant::now());
    plan.bar.inc(t.since_progress);
    Ok(t.out)
}
