//! The meta group (group 0), 3 nodes and 8 partitions in process: a bootstrapped cluster
//! records itself there once; a membership change is recorded there and then carried out by
//! the reconcilers of the groups' leaders, so it is finished even when the node that recorded
//! it dies at once, and a node that restarts comes back with the record.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first broken assumption"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cluster, get, init_tracing, put};
use strata_cluster::partition::Keyspace;
use strata_cluster::raft::membership::MembershipChange;
use strata_cluster::raft::meta::ClusterMeta;

const PARTITIONS: u16 = 8;

/// Waits (at most `within`) until node `seen_by` sees `expected` as the only voters, with no
/// change under way and no learners, in the meta group and every partition's group.
async fn await_groups(c: &Cluster, seen_by: u64, expected: &[u64], within: Duration) {
    let expected: BTreeSet<u64> = expected.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + within;
    let keyspaces = std::iter::once(Keyspace::Meta).chain((0..PARTITIONS).map(Keyspace::Partition));
    for keyspace in keyspaces {
        loop {
            let m = c.node(seen_by).kv.node().group_metrics(keyspace).unwrap();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            let settled =
                membership.get_joint_config().len() == 1 && membership.learner_ids().count() == 0;
            if voters == expected && settled {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{keyspace}: node {seen_by} sees voters {voters:?} (settled: {settled}), not \
                 {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Waits (at most 10 s) until node `id`'s replica of the meta group holds a record with
/// `version`, and returns it.
async fn await_record(c: &Cluster, id: u64, version: u64) -> ClusterMeta {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let record = c.node(id).kv.node().local_meta().unwrap();
        if let Some(meta) = record.filter(|m| m.version >= version) {
            return meta;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {id} has no record of version {version}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records `change` in the meta group through node `on` (at most 10 s).
async fn record(c: &Cluster, on: u64, change: &MembershipChange) -> ClusterMeta {
    c.node(on)
        .kv
        .node()
        .record_membership(change, Duration::from_secs(10))
        .await
        .unwrap()
}

fn ids(meta: &ClusterMeta) -> Vec<u64> {
    meta.members.keys().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recorded_changes_are_finished_by_the_survivors_and_survive_restarts() {
    init_tracing();
    let mut c = Cluster::start(3, PARTITIONS).await;
    c.await_leaders(Duration::from_secs(10)).await;

    // Every node bootstrapped with the same members; exactly one record was created.
    for id in 1..=3 {
        let meta = await_record(&c, id, 1).await;
        assert_eq!(
            meta.version, 1,
            "bootstrapping more than once changed the record"
        );
        assert_eq!(meta.partitions, PARTITIONS);
        assert_eq!(ids(&meta), vec![1, 2, 3]);
    }
    for i in 0..40 {
        put(&c, &format!("k{i}"), &format!("v{i}")).await;
    }

    // Node 4 is recorded on node 1, which dies at once: the groups it led elect new leaders,
    // and their reconcilers (and the others') add node 4 everywhere.
    let new = c.start_joining_node().await;
    let add = MembershipChange::Add {
        id: new,
        addr: c.addrs[(new - 1) as usize].to_string(),
    };
    let meta = record(&c, 1, &add).await;
    assert_eq!((meta.version, ids(&meta)), (2, vec![1, 2, 3, 4]));
    c.kill(1).await;
    await_groups(&c, new, &[1, 2, 3, 4], Duration::from_secs(30)).await;
    assert_eq!(await_record(&c, new, 2).await, meta);

    // Node 1 restarts with its data and the record.
    c.restart(1).await;
    assert_eq!(await_record(&c, 1, 2).await, meta);
    await_groups(&c, 1, &[1, 2, 3, 4], Duration::from_secs(30)).await;

    // Node 2 records its own removal and dies at once; the others take it out everywhere.
    let remove = MembershipChange::Remove { id: 2 };
    let meta = record(&c, 2, &remove).await;
    assert_eq!((meta.version, ids(&meta)), (3, vec![1, 3, 4]));
    c.kill(2).await;
    for id in [1, 3, 4] {
        await_groups(&c, id, &[1, 3, 4], Duration::from_secs(30)).await;
        assert_eq!(await_record(&c, id, 3).await, meta);
        assert_eq!(c.node(id).kv.node().status().meta_version, Some(3));
    }

    // Recording the same change again changes nothing.
    let again = record(&c, 3, &remove).await;
    assert_eq!(again, meta);

    // The data written before the changes is on the three members left, identical.
    c.await_converged(Duration::from_secs(15)).await;
    for i in (0..40).step_by(3) {
        assert_eq!(get(&c, &format!("k{i}")).await, Some(format!("v{i}")));
    }
    c.shutdown().await;
}
