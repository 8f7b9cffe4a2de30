//! Membership changes under load, 8 partitions: a fourth node that knows only itself is added
//! to every partition group while a writer keeps writing, catches up to identical data, and
//! serves; then one of the original nodes is removed and stopped, and the three that remain
//! keep serving. No acknowledged write is lost; repeating a change is a no-op.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first broken assumption"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Cluster, init_tracing};
use strata_cluster::KvService;
use strata_cluster::raft::kv::RaftKv;
use strata_cluster::raft::membership::MembershipChange;
use tokio::sync::Mutex;

/// Writes `w0, w1, ...` through `kv` until `stop`, recording every acknowledged key; returns
/// how many writes failed (each may or may not have applied).
async fn write_until(kv: RaftKv, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) -> u64 {
    let (mut i, mut failed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{i}");
        match kv
            .put(key.clone().into_bytes(), key.clone().into_bytes())
            .await
        {
            Ok(()) => acked.lock().await.push(key),
            Err(_) => failed += 1,
        }
        i += 1;
    }
    failed
}

/// Waits (at most 10 s) until every partition's voters, as node `seen_by` knows them, are
/// `expected`. A change is done once the leader has committed it; a member outside the
/// majority that committed it learns it with the next AppendEntries, a moment later.
async fn await_voters(c: &Cluster, seen_by: u64, expected: &[u64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for p in 0..8u16 {
        loop {
            let m = c.node(seen_by).kv.node().metrics(p).unwrap();
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            if voters == expected {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "partition {p}: node {seen_by} sees voters {voters:?}, not {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_a_fourth_node_and_remove_one_under_load() {
    init_tracing();
    let mut c = Cluster::start(3, 8).await;
    c.await_leaders(Duration::from_secs(10)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = tokio::spawn(write_until(
        c.node(2).kv.clone(),
        Arc::clone(&stop),
        Arc::clone(&acked),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Node 4 joins: every group adds it as a learner, catches it up, promotes it.
    let new = c.start_joining_node().await;
    let add = MembershipChange::Add {
        id: new,
        addr: c.addrs[(new - 1) as usize].to_string(),
    };
    let n = c
        .node(1)
        .kv
        .node()
        .change_membership(&add, Duration::from_secs(30))
        .await;
    assert_eq!(n.unwrap(), 8);
    // Again: nothing to do.
    let again = c
        .node(3)
        .kv
        .node()
        .change_membership(&add, Duration::from_secs(30))
        .await;
    assert_eq!(again.unwrap(), 8);
    await_voters(&c, new, &[1, 2, 3, 4]).await;

    // Node 1 leaves, and is stopped; the writer goes on through node 2.
    let remove = MembershipChange::Remove { id: 1 };
    let n = c
        .node(4)
        .kv
        .node()
        .change_membership(&remove, Duration::from_secs(30))
        .await;
    assert_eq!(n.unwrap(), 8);
    c.kill(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let failed = writer.await.unwrap();

    let acked = acked.lock().await.clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    eprintln!(
        "{} writes acknowledged during the changes, {failed} failed",
        acked.len()
    );
    await_voters(&c, 4, &[2, 3, 4]).await;
    // The three remaining replicas hold the same data, with every acknowledged write, readable
    // through the new node.
    let sums = c.await_converged(Duration::from_secs(15)).await;
    let keys = sums.iter().map(|s| s.0).sum::<u64>();
    let acked_n = acked.len() as u64;
    assert!(
        (acked_n..=acked_n + failed).contains(&keys),
        "{keys} keys after {acked_n} acknowledged and {failed} failed writes"
    );
    let kv = c.node(new).kv.clone();
    for key in acked.iter().step_by(7) {
        let got = kv
            .get(key.clone().into_bytes(), Default::default())
            .await
            .unwrap();
        assert_eq!(got, Some(key.clone().into_bytes()), "{key}");
    }
    // Every remaining node reports the new members, node 2 and 3 included (they did not make
    // the changes themselves).
    for id in 2..=4 {
        let members = c.node(id).kv.node().status().members;
        assert_eq!(members.keys().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
    }
    c.shutdown().await;
}
