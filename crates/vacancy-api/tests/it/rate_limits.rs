//! Per-client rate limits: a client over its rate gets a 429 with `Retry-After` and
//! `RateLimit-*` headers; other clients (other bearer subjects, or the anonymous peer) and the
//! operations endpoints are unaffected.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;
use vacancy_api::ratelimit::RateLimitConfig;
use vacancy_store::Backend;

use crate::helpers::{TestApp, spawn_tuned};

const BURST: u32 = 5;

/// A valid guest token naming `subject` (the limiter keys on its `sub`).
fn token(subject: &str) -> String {
    crate::helpers::token(vacancy_api::Role::Guest, subject)
}

async fn get_as(app: &TestApp, path: &str, subject: Option<&str>) -> (StatusCode, HeaderMap) {
    let mut request = app.http.get(format!("{}{path}", app.base));
    if let Some(subject) = subject {
        request = request.bearer_auth(token(subject));
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.bytes().await.expect("body");
    if status == StatusCode::TOO_MANY_REQUESTS {
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem");
        assert_eq!(problem["type"], "urn:vacancy:problem:rate-limited");
        assert_eq!(problem["status"], 429);
    }
    (status, headers)
}

fn header(headers: &HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing or not a number: {headers:?}"))
}

async fn a_client_over_its_rate_is_limited_and_no_one_else_is(backend: Backend) {
    let app = spawn_tuned(backend, |config| {
        config.api.rate_limit = RateLimitConfig {
            per_second: 1,
            burst: BURST,
            shared: None,
        };
    })
    .await;
    let listing = app.listing(1, json!({})).await;
    let path = format!("/v1/listings/{listing}/calendar?start=2030-02-01&end=2030-02-03");

    let (status, headers) = get_as(&app, &path, Some("alice")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "ratelimit-limit"), u64::from(BURST));
    assert!(header(&headers, "ratelimit-remaining") < u64::from(BURST));
    assert!(header(&headers, "ratelimit-reset") >= 1);

    // Alice goes on until she is limited; it takes about the burst (bounded, whatever the pace).
    let mut limited = None;
    for _ in 0..(BURST * 20) {
        let (status, headers) = get_as(&app, &path, Some("alice")).await;
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited = Some(headers);
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let limited = limited.expect("alice was never limited");
    assert!(header(&limited, "retry-after") >= 1);
    assert_eq!(header(&limited, "ratelimit-limit"), u64::from(BURST));
    assert_eq!(header(&limited, "ratelimit-remaining"), 0);
    assert!(header(&limited, "ratelimit-reset") >= 1);
    assert_eq!(
        limited
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        "application/problem+json"
    );

    // Bob has his own bucket, and so has the anonymous client (keyed on its address).
    let (status, headers) = get_as(&app, &path, Some("bob")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "ratelimit-remaining"),
        u64::from(BURST - 1)
    );
    assert_eq!(get_as(&app, &path, None).await.0, StatusCode::OK);
    // Operations endpoints are never limited.
    for _ in 0..BURST * 2 {
        assert_eq!(
            get_as(&app, "/healthz", Some("alice")).await.0,
            StatusCode::OK
        );
    }
}

async fn rate_limits_are_off_by_default(backend: Backend) {
    let app = crate::helpers::spawn(backend).await;
    let reply = app.get("/v1/listings/nope").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.headers.get("ratelimit-limit").is_none());
}

crate::backend_tests!(
    a_client_over_its_rate_is_limited_and_no_one_else_is,
    rate_limits_are_off_by_default,
);

mod shared {
    //! Buckets shared by replicas through Redis, and what happens when Redis is gone.

    use std::sync::Arc;

    use reqwest::StatusCode;
    use serde_json::json;
    use vacancy_api::ratelimit::{RateLimitConfig, SharedRateLimits};

    use super::{BURST, get_as, header};
    use crate::helpers::{START, TestApp, spawn_custom};
    use crate::redis::OwnRedis;

    async fn two_replicas(redis_url: &str) -> (TestApp, TestApp) {
        let url = vacancy_store::testing::fresh_database_url(vacancy_store::Backend::Sqlite)
            .await
            .expect("database");
        let clock = Arc::new(vacancy_api::ManualClock::new(START.parse().expect("start")));
        let config = RateLimitConfig {
            per_second: 1,
            burst: BURST,
            shared: Some(SharedRateLimits {
                redis_url: redis_url.to_owned(),
                key_prefix: format!("test:{}:", uuid::Uuid::now_v7().simple()),
            }),
        };
        let tune = |c: &mut vacancy_api::ServeConfig| c.api.rate_limit = config.clone();
        let a = spawn_custom(&url, clock.clone(), tune).await;
        let b = spawn_custom(&url, clock, tune).await;
        (a, b)
    }

    /// Alice alternates between two replicas: together they let through about one burst, not two.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_one_bucket_per_client() {
        let redis = OwnRedis::start().await;
        let (a, b) = two_replicas(&format!("redis://127.0.0.1:{}", redis.port)).await;
        let listing = a.listing(1, json!({})).await;
        let path = format!("/v1/listings/{listing}/calendar?start=2030-02-01&end=2030-02-03");
        let mut allowed = 0;
        let mut limited = None;
        for i in 0..(BURST * 4) {
            let app = if i % 2 == 0 { &a } else { &b };
            let (status, headers) = get_as(app, &path, Some("alice")).await;
            match status {
                StatusCode::OK => allowed += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    limited = Some(headers);
                    break;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        let limited = limited.expect("alice was never limited");
        // One burst (the creating POST was anonymous), plus what refilled meanwhile at 1/s.
        assert!(
            allowed < 2 * BURST,
            "{allowed} allowed: the replicas did not share"
        );
        assert!(header(&limited, "retry-after") >= 1);
        assert_eq!(header(&limited, "ratelimit-remaining"), 0);
        let (status, headers) = get_as(&b, &path, Some("bob")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            header(&headers, "ratelimit-remaining"),
            u64::from(BURST - 1)
        );
    }

    /// With Redis gone, each replica limits on its own buckets: still served, still limited.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_redis_each_replica_limits_locally() {
        let mut redis = OwnRedis::start().await;
        let url = format!("redis://127.0.0.1:{}", redis.port);
        redis.stop();
        let (a, _b) = two_replicas(&url).await;
        let listing = a.listing(1, json!({})).await;
        let path = format!("/v1/listings/{listing}/calendar?start=2030-02-01&end=2030-02-03");
        let mut limited = false;
        for _ in 0..(BURST * 20) {
            let (status, _) = get_as(&a, &path, Some("carol")).await;
            match status {
                StatusCode::OK => {}
                StatusCode::TOO_MANY_REQUESTS => {
                    limited = true;
                    break;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        assert!(limited, "the local buckets did not limit");
    }
}
