//! Ten concurrent clients record a history of puts and linearizable gets against a 3-node
//! cluster while the busiest leader is killed; the history must check linearizable, and the
//! same history with one stale read appended must not.

#![allow(clippy::unwrap_used, reason = "test: a panic is the failure report")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Cluster, init_tracing};
use std::sync::atomic::{AtomicU64, Ordering};

use strata_cluster::linearizability::{Op, Operation, Ret, Verdict, check};
use strata_cluster::partition::PartitionMap;
use strata_cluster::raft::kv::RaftKv;
use strata_cluster::{Error, KvService};

const CLIENTS: u64 = 10;
const OPS_PER_CLIENT: u64 = 80;
/// Pause between a client's operations, so the history spans the failover.
const PACE: Duration = Duration::from_millis(15);
const KEYS: u64 = 10;
/// How long a client waits for an answer before recording the operation as indeterminate.
const PATIENCE: Duration = Duration::from_secs(3);

enum Outcome {
    Done(Ret),
    Refused,
    Unknown,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The live node that leads `partition`, else any live node.
fn pick(handles: &Mutex<Vec<Option<RaftKv>>>, partition: u16) -> Option<RaftKv> {
    let hs = handles.lock().unwrap();
    let live: Vec<&RaftKv> = hs.iter().flatten().collect();
    let leader = live.iter().find_map(|kv| kv.node().leader(partition));
    live.iter()
        .find(|kv| Some(kv.node().id()) == leader)
        .or(live.first())
        .map(|kv| (*kv).clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_under_leader_failure_is_linearizable() {
    init_tracing();
    let mut c = Cluster::start(3, 8).await;
    c.await_leaders(Duration::from_secs(10)).await;
    let handles: Arc<Mutex<Vec<Option<RaftKv>>>> = Arc::new(Mutex::new(
        c.nodes
            .iter()
            .map(|n| n.as_ref().map(|n| n.kv.clone()))
            .collect(),
    ));
    let history: Arc<Mutex<Vec<Operation>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let map = PartitionMap::new(8).unwrap();

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (handles, history) = (Arc::clone(&handles), Arc::clone(&history));
        let refused = Arc::clone(&refused);
        tasks.push(tokio::spawn(async move {
            let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (client + 1);
            for n in 0..OPS_PER_CLIENT {
                let key = format!("k{}", xorshift(&mut rng) % KEYS).into_bytes();
                let partition = map.partition_of(&key);
                tokio::time::sleep(PACE).await;
                let Some(kv) = pick(&handles, partition) else {
                    continue;
                };
                let is_put = xorshift(&mut rng).is_multiple_of(2);
                let value = format!("c{client}-{n}").into_bytes();
                let invoked = start.elapsed().as_nanos() as u64;
                let outcome = if is_put {
                    match tokio::time::timeout(PATIENCE, kv.put(key.clone(), value.clone())).await {
                        Ok(Ok(())) => Outcome::Done(Ret::Ok),
                        // Refused by a node that does not lead: certainly not applied.
                        Ok(Err(Error::NotLeader { .. })) => Outcome::Refused,
                        // Any other failure or a timeout: it may still commit.
                        Ok(Err(_)) | Err(_) => Outcome::Unknown,
                    }
                } else {
                    match tokio::time::timeout(PATIENCE, kv.get(key.clone(), Default::default()))
                        .await
                    {
                        Ok(Ok(v)) => Outcome::Done(Ret::Value(v)),
                        // A failed read observed nothing.
                        _ => Outcome::Refused,
                    }
                };
                let done = start.elapsed().as_nanos() as u64;
                let completed = match outcome {
                    Outcome::Done(r) => Some((done, r)),
                    Outcome::Unknown => None,
                    Outcome::Refused => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        // Back off while the partition elects a leader.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                history.lock().unwrap().push(Operation {
                    client,
                    key,
                    op: if is_put { Op::Put(value) } else { Op::Get },
                    invoked,
                    completed,
                });
            }
        }));
    }

    // Let the clients run, then kill the node leading the most partitions.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let victim = (1..=3u64)
        .max_by_key(|&id| (0..8).filter(|&p| c.leader_of(p) == Some(id)).count())
        .unwrap();
    handles.lock().unwrap()[(victim - 1) as usize] = None;
    c.kill(victim).await;
    for t in tasks {
        t.await.unwrap();
    }

    let history = Arc::try_unwrap(history).unwrap().into_inner().unwrap();
    let completed = history.iter().filter(|o| o.completed.is_some()).count();
    eprintln!(
        "{} operations recorded, {completed} completed, {} refused by non-leaders",
        history.len(),
        refused.load(Ordering::Relaxed)
    );
    assert!(
        completed as u64 > CLIENTS * OPS_PER_CLIENT / 4,
        "too few operations completed"
    );
    let checked = Instant::now();
    assert_eq!(check(&history), Verdict::Linearizable);
    eprintln!("checked in {:?}", checked.elapsed());

    // The checker is not vacuous: append a read, after everything, of a value that a later
    // acknowledged put on the same key overwrote.
    let stale = history.iter().find_map(|old| {
        let (Op::Put(v), Some((old_done, _))) = (&old.op, &old.completed) else {
            return None;
        };
        history
            .iter()
            .any(|new| {
                new.key == old.key
                    && matches!(new.op, Op::Put(_))
                    && new.completed.is_some()
                    && new.invoked > *old_done
            })
            .then(|| (old.key.clone(), v.clone()))
    });
    let (key, old_value) = stale.expect("some key was written twice in sequence");
    let end = history
        .iter()
        .filter_map(|o| o.completed.as_ref().map(|c| c.0))
        .max()
        .unwrap();
    let mut tampered = history.clone();
    tampered.push(Operation {
        client: 99,
        key: key.clone(),
        op: Op::Get,
        invoked: end + 1,
        completed: Some((end + 2, Ret::Value(Some(old_value)))),
    });
    assert_eq!(check(&tampered), Verdict::NotLinearizable { key });
    c.shutdown().await;
}
