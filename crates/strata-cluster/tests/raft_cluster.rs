//! A 3-node cluster with 8 partitions on loopback: writes replicate to every replica, a killed
//! leader is replaced within seconds without losing acknowledged writes, and a restarted node
//! catches up (from snapshots, since logs are compacted) to identical per-partition data. Any
//! node serves writes, batches and linearizable reads and scans, forwarding to the leaders.

mod common;

use std::time::Duration;

use common::{Cluster, get, init_tracing, put};
use strata_cluster::{Error, KvService, Mutation, ReadOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicate_fail_over_and_catch_up() {
    init_tracing();
    let mut c = Cluster::start(3, 8).await;
    let took = c.await_leaders(Duration::from_secs(10)).await;
    eprintln!("all 8 partitions have leaders after {took:?}");

    // Writes through each partition's leader replicate to every node.
    for i in 0..120 {
        put(&c, &format!("key{i}"), &format!("v{i}")).await;
    }
    for i in (0..120).step_by(7) {
        assert_eq!(get(&c, &format!("key{i}")).await, Some(format!("v{i}")));
    }
    let sums = c.await_converged(Duration::from_secs(10)).await;
    assert_eq!(sums.iter().map(|s| s.0).sum::<u64>(), 120);

    // Every node reports every partition; each partition has one leader, which reports its
    // commit index and each follower's lag, all caught up once the replicas converged.
    let statuses: Vec<_> = (1..=3).map(|id| c.node(id).kv.node().status()).collect();
    for p in 0..8u16 {
        let views: Vec<_> = statuses
            .iter()
            .map(|s| s.partitions.iter().find(|x| x.partition == p).unwrap())
            .collect();
        let leaders: Vec<_> = views
            .iter()
            .filter(|v| v.role == strata_cluster::raft::status::Role::Leader)
            .collect();
        assert_eq!(leaders.len(), 1, "partition {p}: {views:?}");
        let l = leaders[0];
        assert!(
            views
                .iter()
                .all(|v| v.leader == l.leader && v.term == l.term)
        );
        assert_eq!(l.committed, l.last_log_index, "{l:?}");
        assert!(l.log_size > 0);
        assert_eq!(l.replication.len(), 2, "{l:?}");
    }
    assert_eq!(statuses.iter().map(|s| s.leading()).sum::<usize>(), 8);
    // Followers hear the last commit index with the next heartbeat: then every replica has
    // applied the leader's commit index and no follower lags.
    let started = std::time::Instant::now();
    loop {
        let statuses: Vec<_> = (1..=3).map(|id| c.node(id).kv.node().status()).collect();
        let caught_up = (0..8u16).all(|p| {
            let views: Vec<_> = statuses
                .iter()
                .map(|s| s.partitions.iter().find(|x| x.partition == p).unwrap())
                .collect();
            let committed = views.iter().find_map(|v| v.committed);
            views
                .iter()
                .all(|v| v.applied == committed && v.replication.iter().all(|f| f.lag == 0))
        });
        if caught_up {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "replicas lag: {statuses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Multi-partition atomic batches are refused; hash tags keep keys together.
    let any = c.node(1).kv.clone();
    let cross = any
        .batch(
            vec![],
            vec![
                Mutation::Put {
                    key: b"foo".to_vec(),
                    value: b"1".to_vec(),
                },
                Mutation::Put {
                    key: b"bar".to_vec(),
                    value: b"2".to_vec(),
                },
            ],
        )
        .await;
    assert!(matches!(cross, Err(Error::CrossSlot)), "{cross:?}");
    // The handle keeps node 1's store open; a killed node must release it.
    drop(any);
    let tagged = c
        .on_leader(b"{user1}.a", |kv| async move {
            kv.batch(
                vec![],
                vec![
                    Mutation::Put {
                        key: b"{user1}.a".to_vec(),
                        value: b"1".to_vec(),
                    },
                    Mutation::Put {
                        key: b"{user1}.b".to_vec(),
                        value: b"2".to_vec(),
                    },
                ],
            )
            .await
        })
        .await
        .unwrap();
    assert!(tagged.applied);

    // A follower forwards writes, batches and linearizable reads to the partition's leader; a
    // linearizable scan on a follower sees a write acknowledged just before; stale reads are
    // served from its own replica.
    let leader = c.leader_of(0).unwrap();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let map = strata_cluster::partition::PartitionMap::new(8).unwrap();
    let key0 = (0..120)
        .map(|i| format!("key{i}"))
        .find(|k| map.partition_of(k.as_bytes()) == 0)
        .unwrap();
    let fkv = c.node(follower).kv.clone();
    fkv.put(b"fwd-key".to_vec(), b"via follower".to_vec())
        .await
        .unwrap();
    let fwd_leader = c.leader_of(map.partition_of(b"fwd-key")).unwrap();
    let on_leader = c
        .node(fwd_leader)
        .kv
        .get(b"fwd-key".to_vec(), ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(on_leader.as_deref(), Some(&b"via follower"[..]));
    let on_follower = fkv
        .get(key0.clone().into_bytes(), ReadOptions::default())
        .await
        .unwrap();
    let i: usize = key0.trim_start_matches("key").parse().unwrap();
    assert_eq!(on_follower, Some(format!("v{i}").into_bytes()));
    // A write through one follower, read linearizably through every node at once.
    fkv.put(key0.clone().into_bytes(), b"new".to_vec())
        .await
        .unwrap();
    for id in 1..=3 {
        let v = c
            .node(id)
            .kv
            .get(key0.clone().into_bytes(), ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"new"[..]), "read through node {id}");
    }
    fkv.put(key0.clone().into_bytes(), format!("v{i}").into_bytes())
        .await
        .unwrap();
    let outcome = fkv
        .batch(
            vec![strata_cluster::Precondition::Absent {
                key: b"{fwd}.a".to_vec(),
            }],
            vec![
                Mutation::Put {
                    key: b"{fwd}.a".to_vec(),
                    value: b"1".to_vec(),
                },
                Mutation::Delete {
                    key: b"{fwd}.a".to_vec(),
                },
            ],
        )
        .await
        .unwrap();
    assert!(outcome.applied);
    assert_eq!(fkv.incr_by(b"{fwd}.n".to_vec(), 5).await.unwrap(), 5);
    assert_eq!(fkv.incr_by(b"{fwd}.n".to_vec(), -2).await.unwrap(), 3);
    fkv.delete(b"{fwd}.n".to_vec()).await.unwrap();
    // A linearizable scan through a follower sees everything acknowledged before it.
    fkv.put(b"zz-last".to_vec(), b"1".to_vec()).await.unwrap();
    let mut scanned = Vec::new();
    let mut stream = fkv
        .scan(strata_cluster::ScanRequest::default())
        .await
        .unwrap();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        scanned.extend(chunk.unwrap());
    }
    assert_eq!(
        scanned.len(),
        124,
        "120 keys, 2 tagged, fwd-key and zz-last"
    );
    assert!(
        scanned.windows(2).all(|w| w[0].0 < w[1].0),
        "scan out of order"
    );
    assert!(scanned.iter().any(|(k, _)| k == b"zz-last"));
    fkv.delete(b"zz-last".to_vec()).await.unwrap();
    fkv.delete(b"fwd-key".to_vec()).await.unwrap();
    let stale = fkv
        .get(
            key0.into_bytes(),
            ReadOptions {
                consistency: strata_cluster::Consistency::Stale,
            },
        )
        .await
        .unwrap();
    assert!(stale.is_some());
    drop(fkv);

    // Kill the node that leads the most partitions: every partition has a leader again within
    // seconds and every acknowledged write is still there.
    let victim = (1..=3u64)
        .max_by_key(|&id| (0..8).filter(|&p| c.leader_of(p) == Some(id)).count())
        .unwrap();
    c.kill(victim).await;
    let took = c.await_leaders(Duration::from_secs(10)).await;
    eprintln!("killed node {victim}; leaders again after {took:?}");
    assert!(took < Duration::from_secs(5), "failover took {took:?}");
    for i in 0..120 {
        assert_eq!(
            get(&c, &format!("key{i}")).await,
            Some(format!("v{i}")),
            "key{i} lost"
        );
    }
    // The survivors keep taking writes (enough to compact every partition's log).
    for i in 120..400 {
        put(&c, &format!("key{i}"), &format!("v{i}")).await;
    }

    // The killed node restarts on its data and converges to identical partitions.
    c.restart(victim).await;
    let sums = c.await_converged(Duration::from_secs(20)).await;
    assert_eq!(sums.iter().map(|s| s.0).sum::<u64>(), 402);
    for i in (0..400).step_by(13) {
        assert_eq!(get(&c, &format!("key{i}")).await, Some(format!("v{i}")));
    }

    // A user key of the full documented length fits behind the partition prefix; one byte
    // more is refused.
    let kv = &c.node(1).kv;
    let longest = vec![b'L'; strata_engine::MAX_KEY_LEN];
    kv.put(longest.clone(), b"long".to_vec()).await.unwrap();
    assert_eq!(
        kv.get(longest.clone(), ReadOptions::default())
            .await
            .unwrap(),
        Some(b"long".to_vec())
    );
    let mut too_long = longest;
    too_long.push(b'L');
    assert!(kv.put(too_long, b"v".to_vec()).await.is_err());
    c.shutdown().await;
}
