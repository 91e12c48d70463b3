//! Redis Cluster mode over a three-node cluster of the test's own.

use std::collections::HashSet;
use std::time::Duration;

use vacancy_l2::{BreakerState, L2, L2Config, L2Mode, PutOutcome};

use crate::helpers::{
    CORRECTNESS_OP_TIMEOUT, RedisCluster, RedisServer, TestMetrics, direct, unique_prefix,
};

#[tokio::test]
async fn round_trip_versions_and_batches_across_slots() {
    TestMetrics::get();
    let cluster = RedisCluster::start().await;
    let prefix = unique_prefix("cluster");
    let mut config = L2Config::new(L2Mode::Cluster(cluster.urls()));
    config.key_prefix = prefix.clone();
    config.op_timeout = CORRECTNESS_OP_TIMEOUT;
    let l2 = L2::connect(config).await.expect("connect");
    let ttl = Duration::from_secs(60);

    assert_eq!(
        l2.put("listing:1", 5, b"five", ttl).await,
        PutOutcome::Written
    );
    assert_eq!(
        l2.put("listing:1", 3, b"three", ttl).await,
        PutOutcome::Stale
    );
    assert_eq!(
        l2.put("listing:1", 5, b"again", ttl).await,
        PutOutcome::Stale
    );
    let got = l2.get("listing:1").await.expect("stored");
    assert_eq!((got.version, &got.value[..]), (5, &b"five"[..]));
    assert_eq!(
        l2.put("listing:1", 6, b"six", ttl).await,
        PutOutcome::Written
    );
    assert_eq!(l2.get("listing:1").await.map(|v| v.version), Some(6));

    let keys: Vec<String> = (0..200).map(|i| format!("listing:{i}:calendar")).collect();
    for (i, key) in keys.iter().enumerate().skip(2) {
        assert_eq!(
            l2.put(key, i as i64, key.as_bytes(), ttl).await,
            PutOutcome::Written,
            "{key}"
        );
    }

    // The keys really are spread over slots and over all three nodes.
    let mut conn = direct(&cluster.nodes[0].url()).await;
    let mut slots = HashSet::new();
    for key in &keys {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{prefix}{key}"))
            .query_async(&mut conn)
            .await
            .expect("CLUSTER KEYSLOT");
        slots.insert(slot);
    }
    // CRC16 of keys that differ in a few digits collides more than random keys would (130
    // distinct slots was seen once); the point is that keys are not pinned to one slot.
    assert!(
        slots.len() > 50,
        "200 keys should land in many slots: {}",
        slots.len()
    );
    for node in &cluster.nodes {
        let mut conn = direct(&node.url()).await;
        let size: u64 = redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .expect("DBSIZE");
        assert!(size > 20, "node {} holds only {size} keys", node.port);
    }

    let mut batch: Vec<String> = keys.iter().rev().cloned().collect();
    batch.push("listing:absent".to_owned());
    let values = l2.get_many(&batch).await;
    assert_eq!(values.len(), batch.len());
    for (key, value) in batch.iter().zip(&values) {
        match keys.iter().position(|k| k == key) {
            Some(0 | 1) => assert!(value.is_none(), "{key} was never written"),
            Some(i) => {
                let v = value.as_ref().unwrap_or_else(|| panic!("{key} missing"));
                assert_eq!((v.version, &v.value[..]), (i as i64, key.as_bytes()));
            }
            None => assert!(value.is_none(), "{key} was never written"),
        }
    }
    assert_eq!(l2.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn starts_without_a_cluster_and_answers_fast() {
    TestMetrics::get();
    // Ports that were just free and are closed again: nothing listens there.
    let seeds: Vec<String> = (0..3)
        .map(|_| {
            let mut server = RedisServer::start();
            server.kill();
            server.url()
        })
        .collect();
    let mut config = L2Config::new(L2Mode::Cluster(seeds));
    config.key_prefix = unique_prefix("no-cluster");
    let started = std::time::Instant::now();
    let l2 = L2::connect(config)
        .await
        .expect("connect succeeds without Redis");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "connect waited {:?}",
        started.elapsed()
    );
    for _ in 0..10 {
        let started = std::time::Instant::now();
        assert_eq!(l2.get("k").await, None);
        assert_eq!(
            l2.put("k", 1, b"v", Duration::from_secs(1)).await,
            PutOutcome::Unavailable
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(l2.breaker_state(), BreakerState::Open);
}
