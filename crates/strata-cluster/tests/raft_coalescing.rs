//! Concurrent clients of one partition share log entries and read barriers on its leader, and
//! each still gets its own outcome: 64 concurrent INCRs of one counter (through every node) take
//! fewer log entries than commands and return 64 distinct values; of 20 concurrent
//! compare-and-set batches on one key exactly one applies; concurrent linearizable reads see
//! every write acknowledged before they began; and reads in a row on a leader are served under
//! its read lease rather than with a heartbeat round each.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first broken assumption"
)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Cluster, init_tracing};
use strata_cluster::partition::PartitionMap;
use strata_cluster::{KvService, Mutation, Precondition, ReadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_share_entries_and_keep_their_own_outcomes() {
    init_tracing();
    let c = Cluster::start(3, 8).await;
    c.await_leaders(Duration::from_secs(10)).await;
    let key = b"counter".to_vec();
    let partition = PartitionMap::new(8).unwrap().partition_of(&key);
    // A write to each partition used first (retried while leaders change), so their leaders
    // have settled before the log is measured.
    c.on_leader(&key, |kv| async move {
        kv.incr_by(b"counter".to_vec(), 0).await
    })
    .await
    .unwrap();
    c.on_leader(
        b"owner",
        |kv| async move { kv.delete(b"owner".to_vec()).await },
    )
    .await
    .unwrap();
    let leader = c.leader_of(partition).unwrap();
    let last_index = || {
        c.node(leader)
            .kv
            .node()
            .metrics(partition)
            .unwrap()
            .last_log_index
            .unwrap_or(0)
    };
    let before = last_index();

    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let kv = c.node(1 + i % 3).kv.clone();
        tasks.push(tokio::spawn(async move {
            kv.incr_by(b"counter".to_vec(), 1).await
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(seen, (1..=64).collect::<BTreeSet<i64>>());
    let entries = last_index() - before;
    eprintln!("64 concurrent INCRs took {entries} log entries");
    assert!(
        entries < 64,
        "64 concurrent commands took {entries} entries: nothing was coalesced"
    );

    // Compare-and-set: of 20 concurrent claims on one absent key, exactly one applies.
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let kv = c.node(1 + i % 3).kv.clone();
        tasks.push(tokio::spawn(async move {
            kv.batch(
                vec![Precondition::Absent {
                    key: b"owner".to_vec(),
                }],
                vec![Mutation::Put {
                    key: b"owner".to_vec(),
                    value: i.to_string().into_bytes(),
                }],
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let outcome = t.await.unwrap().unwrap();
        if outcome.applied {
            winners.push(i);
        } else {
            assert_eq!(outcome.failed_precondition, Some(0));
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let owner = c.node(2).kv.get(b"owner".to_vec(), ReadOptions::default());
    assert_eq!(
        owner.await.unwrap(),
        Some(winners[0].to_string().into_bytes())
    );

    // Concurrent linearizable reads through every node, each started after the counter reached
    // 64, all read 64 (they share read barriers, never a stale one).
    let mut tasks = Vec::new();
    for i in 0..48u64 {
        let kv = c.node(1 + i % 3).kv.clone();
        tasks.push(tokio::spawn(async move {
            kv.get(b"counter".to_vec(), ReadOptions::default()).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Some(b"64".to_vec()));
    }

    // Reads one after another on the leader: nearly all are served under its read lease, not
    // each with a heartbeat round (the lease lasts 150 ms here and is renewed as it ages).
    let leader = c.leader_of(partition).unwrap();
    let counts = |c: &Cluster| {
        c.node(leader)
            .kv
            .node()
            .status()
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .unwrap()
            .reads
    };
    let before = counts(&c);
    for _ in 0..200 {
        let v = c
            .node(leader)
            .kv
            .get(b"counter".to_vec(), ReadOptions::default());
        assert_eq!(v.await.unwrap(), Some(b"64".to_vec()));
    }
    let after = counts(&c);
    let leased = after.leased - before.leased;
    let confirmations = after.confirmations - before.confirmations;
    eprintln!("200 reads: {leased} under the lease, {confirmations} confirmations");
    assert!(
        leased >= 180 && confirmations <= 20,
        "{before:?} -> {after:?}"
    );
    c.await_converged(Duration::from_secs(10)).await;
    c.shutdown().await;
}
