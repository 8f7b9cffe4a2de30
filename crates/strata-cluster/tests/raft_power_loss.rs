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

/// openraft resumes the leadership a node held when it stopped, at once, from the commit index
/// its state machine had applied; applies are not synced (the log is), so after a power loss
/// that index can lie below writes the leader had acknowledged a moment before. Reads through
/// the restarted leader must still see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_power_still_reads_what_it_acknowledged() {
    common::init_tracing();
    let mut c = Cluster::start_on_fault_disks(3, 1).await;
    c.await_leaders(Duration::from_secs(10)).await;
    let mut resumed = 0;
    for round in 0..8 {
        let leader = c.leader_of(0).unwrap();
        let value = format!("v{round}").into_bytes();
        c.node(leader)
            .kv
            .put(b"k".to_vec(), value.clone())
            .await
            .unwrap();
        c.power_loss(leader).await;
        c.restart(leader).await;
        let got = get_through(&c, leader, b"k").await;
        if c.leader_of(0) == Some(leader) {
            resumed += 1;
        }
        assert_eq!(
            got.as_deref(),
            Some(value.as_slice()),
            "round {round}: node {leader} acknowledged the write, lost power and restarted"
        );
        c.await_leaders(Duration::from_secs(10)).await;
    }
    // The case under test is the one where the leader resumes its leadership; it must have
    // come up (a restart is quicker than the followers' election timeout).
    assert!(resumed > 0, "no restarted leader resumed its leadership");
    c.shutdown().await;
}
