//! A node of the test's own is killed and restarted: calls stay fast, the breaker opens,
//! refuses calls without touching the network, and closes again once Redis is back.

use std::time::{Duration, Instant};

use vacancy_l2::{BreakerConfig, BreakerState, L2, L2Config, L2Mode, PutOutcome};

use crate::helpers::{RedisServer, TestMetrics, direct, unique_prefix};

const FAST: Duration = Duration::from_millis(500);
const COOL_DOWN: Duration = Duration::from_millis(1500);
const THRESHOLD: u32 = 5;

#[tokio::test]
async fn outage_opens_the_breaker_and_recovery_closes_it() {
    let metrics = TestMetrics::get();
    let mut server = RedisServer::start();
    let mut config = L2Config::new(L2Mode::Standalone(server.url()));
    config.key_prefix = unique_prefix("outage");
    // Above the 25 ms default so that a busy test machine does not count as an outage before
    // the kill; still far below the 500 ms a failing call may take here.
    config.op_timeout = Duration::from_millis(100);
    config.breaker = BreakerConfig {
        failure_threshold: THRESHOLD,
        cool_down: COOL_DOWN,
    };
    let l2 = L2::connect(config).await.expect("connect");
    let node = format!("127.0.0.1:{}/0", server.port);
    let gauge = || {
        metrics.gauge(
            "vacancy_breaker_state",
            &[("dependency", "redis"), ("instance", &node)],
        )
    };
    let ttl = Duration::from_secs(60);
    let keys = vec!["k".to_owned(), "other".to_owned()];

    assert_eq!(l2.put("k", 1, b"one", ttl).await, PutOutcome::Written);
    assert_eq!(l2.get("k").await.map(|v| v.version), Some(1));
    assert_eq!(gauge(), Some(0.0));

    server.kill();
    for failures in 1..=THRESHOLD {
        let started = Instant::now();
        assert_eq!(l2.get("k").await, None);
        assert!(
            started.elapsed() < FAST,
            "get took {:?} with Redis down",
            started.elapsed()
        );
        let expected = if failures < THRESHOLD {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(l2.breaker_state(), expected, "after {failures} failures");
    }
    let opened = Instant::now();
    assert_eq!(gauge(), Some(1.0));

    // Redis is back, but the breaker is open: calls are refused without reaching it.
    server.restart();
    let mut conn = direct(&server.url()).await;
    let refused = |op| metrics.counter("vacancy_l2_errors_total", &[("op", op), ("kind", "open")]);
    let refused_before = [refused("get"), refused("put"), refused("get_many")];
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(l2.get("k").await, None);
        assert_eq!(l2.put("k", 2, b"two", ttl).await, PutOutcome::Unavailable);
        assert_eq!(l2.get_many(&keys).await, vec![None, None]);
        assert!(
            started.elapsed() < FAST,
            "refused calls must return at once"
        );
    }
    assert!(
        opened.elapsed() < COOL_DOWN,
        "the open window outlasted the cool-down ({:?}); the checks below would prove nothing",
        opened.elapsed()
    );
    assert_eq!(
        l2.breaker_state(),
        BreakerState::Open,
        "no probe during the cool-down"
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO commandstats");
    for command in [
        "cmdstat_get:",
        "cmdstat_mget:",
        "cmdstat_evalsha:",
        "cmdstat_eval:",
    ] {
        assert!(
            !stats.contains(command),
            "an open breaker let {command} through:\n{stats}"
        );
    }
    let refused_after = [refused("get"), refused("put"), refused("get_many")];
    for (before, after) in refused_before.iter().zip(&refused_after) {
        assert!(
            after >= &(before + 20),
            "refusals are counted: {refused_after:?}"
        );
    }

    // After the cool-down a probe finds Redis and the breaker closes by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    while l2.put("k", 2, b"two", ttl).await != PutOutcome::Written {
        tries += 1;
        assert!(
            Instant::now() < deadline && tries < 200,
            "not recovered within 10 s ({:?})",
            l2.breaker_state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        opened.elapsed() < COOL_DOWN * 3,
        "recovery took {:?}, expected about one cool-down",
        opened.elapsed()
    );
    assert_eq!(l2.breaker_state(), BreakerState::Closed);
    assert_eq!(gauge(), Some(0.0));
    let got = l2.get("k").await.expect("value written after recovery");
    assert_eq!((got.version, &got.value[..]), (2, &b"two"[..]));
    assert_eq!(
        l2.get_many(&keys)
            .await
            .iter()
            .filter(|v| v.is_some())
            .count(),
        1
    );
}
