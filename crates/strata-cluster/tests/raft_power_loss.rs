//! Power losses on in-process clusters whose nodes run on in-memory disks that keep only what
//! was synced: what a node had acknowledged stays visible after it comes back.

#![allow(clippy::unwrap_used, reason = "test: a panic is the failure report")]

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use strata_cluster::{Error, KvService};

/// A linearizable get of `key` through node `id`, retried while the cluster elects a leader.
async fn get_through(c: &Cluster, id: u64, key: &[u8]) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.node(id).kv.get(key.to_vec(), Default::default()).await {
            Err(Error::NotLeader { .. } | Error::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.unwrap(),
        }
    }
}

/// A leader that loses power right after acknowledging a write comes back as a follower (it may
/// have lost entries it had sent ahead of their sync, and the commit index it would resume from
/// may lie below its acknowledged writes: applies are not synced), and reads through it still
/// see the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_power_still_reads_what_it_acknowledged() {
    common::init_tracing();
    let mut c = Cluster::start_on_fault_disks(3, 1).await;
    c.await_leaders(Duration::from_secs(10)).await;
    for round in 0..8 {
        let leader = c.leader_of(0).unwrap();
        let term = c.node(leader).kv.node().metrics(0).unwrap().current_term;
        let value = format!("v{round}").into_bytes();
        c.node(leader)
            .kv
            .put(b"k".to_vec(), value.clone())
            .await
            .unwrap();
        c.power_loss(leader).await;
        c.restart(leader).await;
        let got = get_through(&c, leader, b"k").await;
        assert_eq!(
            got.as_deref(),
            Some(value.as_slice()),
            "round {round}: node {leader} acknowledged the write, lost power and restarted"
        );
        c.await_leaders(Duration::from_secs(10)).await;
        let now = c.node(leader).kv.node().metrics(0).unwrap().current_term;
        assert!(
            now > term,
            "round {round}: node {leader} resumed term {term}"
        );
    }
    c.shutdown().await;
}

/// A leader reports its own entries flushed before they are synced (so it replicates them
/// while its disk writes); when its disk then fails, it must acknowledge none of them, and what
/// it had acknowledged before stays. The cluster recovers around it once it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_disk_stops_syncing_acknowledges_nothing_more() {
    common::init_tracing();
    let mut c = Cluster::start_on_fault_disks(3, 1).await;
    c.await_leaders(Duration::from_secs(10)).await;
    let leader = c.leader_of(0).unwrap();
    let kv = c.node(leader).kv.clone();
    kv.put(b"k".to_vec(), b"v0".to_vec()).await.unwrap();
    let disk = c.disks.as_ref().unwrap()[(leader - 1) as usize].clone();
    disk.set_fail_syncs(true);
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        kv.put(b"k".to_vec(), b"v1".to_vec()),
    )
    .await
    .expect("the write ends, with an error");
    assert!(
        outcome.is_err(),
        "acknowledged a write its disk never synced: {outcome:?}"
    );
    drop(kv);
    c.power_loss(leader).await;
    c.restart(leader).await;
    // "v1" is indeterminate (the followers may have it and commit it); "v0" is not lost.
    let got = get_through(&c, leader, b"k").await;
    assert!(
        matches!(got.as_deref(), Some(b"v0" | b"v1")),
        "read {got:?}"
    );
    common::put(&c, "k", "v2").await;
    assert_eq!(common::get(&c, "k").await.as_deref(), Some("v2"));
    c.await_converged(Duration::from_secs(20)).await;
    c.shutdown().await;
}
