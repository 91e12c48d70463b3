//! Standalone mode on the shared Redis: round trip, versioned writes, TTL with jitter, batches.

use std::time::Duration;

use redis::AsyncCommands;
use vacancy_l2::{BreakerState, L2, L2Config, L2Mode, PutOutcome};

use crate::helpers::{
    CORRECTNESS_OP_TIMEOUT, RedisServer, SHARED_REDIS, TestMetrics, direct, unique_prefix,
};

async fn client(prefix: &str) -> L2 {
    TestMetrics::get();
    let mut config = L2Config::new(L2Mode::Standalone(SHARED_REDIS.to_owned()));
    config.key_prefix = prefix.to_owned();
    config.op_timeout = CORRECTNESS_OP_TIMEOUT;
    L2::connect(config).await.expect("connect")
}

#[tokio::test]
async fn round_trip_and_versions_only_move_forward() {
    let prefix = unique_prefix("round-trip");
    let l2 = client(&prefix).await;
    let ttl = Duration::from_secs(60);

    assert_eq!(l2.get("listing:1").await, None, "nothing stored yet");
    assert_eq!(
        l2.put("listing:1", 5, b"five", ttl).await,
        PutOutcome::Written
    );
    let got = l2.get("listing:1").await.expect("stored value");
    assert_eq!((got.version, &got.value[..]), (5, &b"five"[..]));

    let stale_before =
        TestMetrics::get().counter("vacancy_l2_writes_total", &[("outcome", "stale")]);
    assert_eq!(
        l2.put("listing:1", 3, b"three", ttl).await,
        PutOutcome::Stale,
        "older"
    );
    assert_eq!(
        l2.put("listing:1", 5, b"other five", ttl).await,
        PutOutcome::Stale,
        "equal"
    );
    let got = l2.get("listing:1").await.expect("stored value");
    assert_eq!(
        (got.version, &got.value[..]),
        (5, &b"five"[..]),
        "v5 survives"
    );
    assert!(
        TestMetrics::get().counter("vacancy_l2_writes_total", &[("outcome", "stale")])
            >= stale_before + 2
    );

    assert_eq!(
        l2.put("listing:1", 6, b"", ttl).await,
        PutOutcome::Written,
        "newer"
    );
    let got = l2.get("listing:1").await.expect("stored value");
    assert_eq!(
        (got.version, got.value.len()),
        (6, 0),
        "an empty value is a value"
    );

    // Versions past 2^53 (where Lua doubles lose precision) and negative ones still order.
    let big = (1_i64 << 53) + 1;
    assert_eq!(
        l2.put("listing:2", big, b"a", ttl).await,
        PutOutcome::Written
    );
    assert_eq!(
        l2.put("listing:2", big - 1, b"b", ttl).await,
        PutOutcome::Stale
    );
    assert_eq!(
        l2.put("listing:2", big + 1, b"c", ttl).await,
        PutOutcome::Written
    );
    assert_eq!(
        l2.put("listing:3", -2, b"a", ttl).await,
        PutOutcome::Written
    );
    assert_eq!(l2.put("listing:3", -3, b"b", ttl).await, PutOutcome::Stale);
    assert_eq!(
        l2.put("listing:3", -1, b"c", ttl).await,
        PutOutcome::Written
    );
    assert_eq!(l2.get("listing:2").await.map(|v| v.version), Some(big + 1));
    assert_eq!(l2.get("listing:3").await.map(|v| v.version), Some(-1));

    // Binary values come back byte for byte.
    let binary: Vec<u8> = (0..=255).collect();
    assert_eq!(
        l2.put("listing:4", 1, &binary, ttl).await,
        PutOutcome::Written
    );
    assert_eq!(
        l2.get("listing:4").await.map(|v| v.value.to_vec()),
        Some(binary)
    );
    assert_eq!(l2.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn ttl_is_set_within_ten_percent_and_jittered() {
    let prefix = unique_prefix("ttl");
    let l2 = client(&prefix).await;
    let mut redis = direct(SHARED_REDIS).await;
    let base_ms: i64 = 100_000;

    let mut ttls = Vec::new();
    for i in 0..20 {
        let key = format!("k{i}");
        assert_eq!(
            l2.put(&key, 1, b"v", Duration::from_millis(base_ms as u64))
                .await,
            PutOutcome::Written
        );
        let pttl: i64 = redis.pttl(format!("{prefix}{key}")).await.expect("PTTL");
        // A little slack below for the time between the write and the PTTL.
        assert!(
            (base_ms * 9 / 10 - 1_000..=base_ms * 11 / 10).contains(&pttl),
            "PTTL {pttl} ms outside {base_ms} ms ± 10 %"
        );
        ttls.push(pttl / 100);
    }
    ttls.sort_unstable();
    ttls.dedup();
    assert!(
        ttls.len() > 3,
        "entries written together should not expire together: {ttls:?}"
    );

    // A stale write changes nothing, not even the TTL.
    redis
        .pexpire::<_, ()>(format!("{prefix}k0"), 5_000)
        .await
        .expect("PEXPIRE");
    assert_eq!(
        l2.put("k0", 1, b"w", Duration::from_secs(100)).await,
        PutOutcome::Stale
    );
    let pttl: i64 = redis.pttl(format!("{prefix}k0")).await.expect("PTTL");
    assert!(
        pttl <= 5_000,
        "a stale write must not refresh the TTL: {pttl}"
    );
}

#[tokio::test]
async fn get_many_keeps_order_and_reports_gaps() {
    let prefix = unique_prefix("get-many");
    let l2 = client(&prefix).await;
    let ttl = Duration::from_secs(60);
    for i in (0..1000).step_by(2) {
        assert_eq!(
            l2.put(&format!("k{i}"), i, format!("v{i}").as_bytes(), ttl)
                .await,
            PutOutcome::Written
        );
    }
    let keys: Vec<String> = (0..1000).rev().map(|i| format!("k{i}")).collect();
    let values = l2.get_many(&keys).await;
    assert_eq!(values.len(), keys.len());
    for (key, value) in keys.iter().zip(&values) {
        let i: i64 = key[1..].parse().expect("numeric key");
        match value {
            Some(v) => {
                assert_eq!(i % 2, 0, "{key} was never written");
                assert_eq!((v.version, &v.value[..]), (i, format!("v{i}").as_bytes()));
            }
            None => assert_eq!(i % 2, 1, "{key} was written"),
        }
    }
    assert!(l2.get_many(&[]).await.is_empty());
}

#[tokio::test]
async fn a_value_that_is_not_ours_reads_as_absent_and_is_overwritten() {
    let prefix = unique_prefix("foreign");
    let l2 = client(&prefix).await;
    let mut redis = direct(SHARED_REDIS).await;
    redis
        .set::<_, _, ()>(format!("{prefix}k"), "hello")
        .await
        .expect("SET");
    assert_eq!(l2.get("k").await, None);
    assert_eq!(
        l2.put("k", 1, b"v", Duration::from_secs(60)).await,
        PutOutcome::Written
    );
    assert_eq!(l2.get("k").await.map(|v| v.version), Some(1));
    assert_eq!(
        l2.breaker_state(),
        BreakerState::Closed,
        "a foreign value is not an outage"
    );
}

#[tokio::test]
async fn starts_without_redis_and_uses_it_once_it_answers() {
    TestMetrics::get();
    let mut server = RedisServer::start();
    server.kill();
    let mut config = L2Config::new(L2Mode::Standalone(server.url()));
    config.key_prefix = unique_prefix("lazy");
    config.breaker.cool_down = Duration::from_millis(200);
    let l2 = L2::connect(config)
        .await
        .expect("connect succeeds without Redis");
    assert_eq!(l2.get("k").await, None);
    assert_eq!(
        l2.put("k", 1, b"v", Duration::from_secs(60)).await,
        PutOutcome::Unavailable
    );

    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    while l2.put("k", 1, b"v", Duration::from_secs(60)).await != PutOutcome::Written {
        tries += 1;
        assert!(
            std::time::Instant::now() < deadline && tries < 500,
            "Redis came back but the client never used it ({:?})",
            l2.breaker_state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(l2.get("k").await.map(|v| v.version), Some(1));
}
