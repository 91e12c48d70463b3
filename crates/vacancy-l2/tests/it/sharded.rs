//! Sharded mode over three `redis-server` nodes of the test's own.

use std::time::Duration;

use redis::AsyncCommands;
use vacancy_l2::{BreakerState, L2, L2Config, L2Mode, PutOutcome};

use crate::helpers::{CORRECTNESS_OP_TIMEOUT, RedisServer, TestMetrics, direct, unique_prefix};

const KEYS: i64 = 300;

#[tokio::test]
async fn keys_live_on_the_node_the_ring_names_and_batches_span_nodes() {
    TestMetrics::get();
    let mut nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let prefix = unique_prefix("sharded");
    let mut config = L2Config::new(L2Mode::Sharded(
        nodes.iter().map(RedisServer::url).collect(),
    ));
    config.key_prefix = prefix.clone();
    config.op_timeout = CORRECTNESS_OP_TIMEOUT;
    let l2 = L2::connect(config).await.expect("connect");
    let ttl = Duration::from_secs(60);

    let keys: Vec<String> = (0..KEYS).map(|i| format!("listing:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let version = i as i64;
        assert_eq!(
            l2.put(key, version, key.as_bytes(), ttl).await,
            PutOutcome::Written
        );
    }

    let mut conns = Vec::new();
    for node in &nodes {
        conns.push(direct(&node.url()).await);
    }
    let mut per_node = [0_usize; 3];
    for key in &keys {
        let owner = l2.shard_for(key).expect("sharded mode names a shard");
        per_node[owner] += 1;
        for (n, conn) in conns.iter_mut().enumerate() {
            let exists: bool = conn.exists(format!("{prefix}{key}")).await.expect("EXISTS");
            assert_eq!(
                exists,
                n == owner,
                "{key}: owner {owner}, found on node {n}: {exists}"
            );
        }
    }
    assert!(
        per_node.iter().all(|&count| count >= 50),
        "300 keys should spread over 3 nodes: {per_node:?}"
    );

    // One batch across all nodes, in the caller's order (reversed, with absent keys mixed in).
    let mut batch: Vec<String> = keys.iter().rev().cloned().collect();
    batch.insert(7, "listing:absent-a".to_owned());
    batch.push("listing:absent-b".to_owned());
    let values = l2.get_many(&batch).await;
    assert_eq!(values.len(), batch.len());
    for (key, value) in batch.iter().zip(&values) {
        match key
            .strip_prefix("listing:")
            .and_then(|i| i.parse::<i64>().ok())
        {
            Some(i) => {
                let v = value.as_ref().unwrap_or_else(|| panic!("{key} missing"));
                assert_eq!((v.version, &v.value[..]), (i, key.as_bytes()));
            }
            None => assert!(value.is_none(), "{key} was never written"),
        }
    }

    // A dead shard takes only its own keys with it.
    let dead = 1;
    nodes[dead].kill();
    let values = l2.get_many(&keys).await;
    for (key, value) in keys.iter().zip(&values) {
        let on_dead_node = l2.shard_for(key) == Some(dead);
        assert_eq!(value.is_none(), on_dead_node, "{key}");
    }
    for _ in 0..10 {
        let _ = l2.get_many(&keys).await;
    }
    let states = l2.node_breaker_states();
    assert_eq!(states[dead].1, BreakerState::Open, "{states:?}");
    assert_eq!(states[0].1, BreakerState::Closed, "{states:?}");
    assert_eq!(states[2].1, BreakerState::Closed, "{states:?}");
    assert_eq!(
        l2.breaker_state(),
        BreakerState::Open,
        "the least healthy node"
    );
    let healthy_key = keys
        .iter()
        .find(|k| l2.shard_for(k) != Some(dead))
        .expect("some key on a live node");
    assert!(l2.get(healthy_key).await.is_some());
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let node = "redis://127.0.0.1:1".to_owned();
    let same_node_with_password = "redis://:secret@127.0.0.1:1/0".to_owned();
    let config = L2Config::new(L2Mode::Sharded(vec![node, same_node_with_password]));
    let error = L2::connect(config).await.expect_err("a node listed twice");
    assert!(!error.to_string().contains("secret"), "{error}");
    assert!(
        L2::connect(L2Config::new(L2Mode::Sharded(vec![])))
            .await
            .is_err()
    );
    assert!(
        L2::connect(L2Config::new(L2Mode::Cluster(vec![])))
            .await
            .is_err()
    );
    let config = L2Config::new(L2Mode::Standalone("http://127.0.0.1:6379".to_owned()));
    assert!(L2::connect(config).await.is_err(), "not a redis URL");
}
