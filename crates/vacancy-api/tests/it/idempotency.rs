//! `Idempotency-Key`: replays, mismatches, in-flight requests, and no duplicates under a storm
//! of retries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use jiff::SignedDuration;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_api::extract::canonical_digest;
use vacancy_api::idempotency::fingerprint;
use vacancy_store::{Backend, IdemBegin, IdemKey};

use crate::helpers::spawn;

async fn a_replay_returns_the_first_response_marked_as_a_replay(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let body = json!({ "listing_id": listing, "check_in": "2030-02-01", "check_out": "2030-02-03", "guest_id": "g" });
    let first = app
        .post_with_key("/v1/bookings", &body, Some("key-1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let events = app.events().await;
    // Same body with keys in another order and other spacing is the same request.
    let reordered = json!({ "guest_id": "g", "check_out": "2030-02-03", "check_in": "2030-02-01", "listing_id": listing });
    let replay = app
        .post_with_key("/v1/bookings", &reordered, Some("key-1"))
        .await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(replay.body, first.body);
    assert_eq!(app.events().await, events, "a replay writes nothing");
}

async fn the_same_key_with_another_body_is_a_422_and_writes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(2, json!({})).await;
    let body = json!({ "listing_id": listing, "check_in": "2030-02-01", "check_out": "2030-02-03", "guest_id": "g" });
    app.post_with_key("/v1/bookings", &body, Some("key-2"))
        .await;
    let events = app.events().await;
    let other = json!({ "listing_id": listing, "check_in": "2030-02-05", "check_out": "2030-02-07", "guest_id": "g" });
    let reply = app
        .post_with_key("/v1/bookings", &other, Some("key-2"))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.problem(), "idempotency-key-reused");
    // The same key on another endpoint is another request too.
    let hold = app.post_with_key("/v1/holds", &body, Some("key-2")).await;
    assert_eq!(hold.problem(), "idempotency-key-reused");
    assert_eq!(app.events().await, events);
    assert_eq!(
        app.remaining(&listing, "2030-02-05", "2030-02-07").await,
        vec![2, 2]
    );
}

async fn a_refusal_is_replayed_too(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let taken = app.book(&listing, "2030-02-01", "2030-02-03", 1).await;
    let body = json!({ "listing_id": listing, "check_in": "2030-02-02", "check_out": "2030-02-04", "guest_id": "g" });
    let first = app
        .post_with_key("/v1/bookings", &body, Some("key-3"))
        .await;
    assert_eq!(first.status, StatusCode::CONFLICT);
    let id = taken.body["id"].as_str().expect("id");
    app.post(&format!("/v1/bookings/{id}/cancel"), &json!(null))
        .await;
    let replay = app
        .post_with_key("/v1/bookings", &body, Some("key-3"))
        .await;
    assert_eq!(
        replay.status,
        StatusCode::CONFLICT,
        "the first response, even though the nights are free now"
    );
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.content_type(), "application/problem+json");
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
}

async fn a_request_still_in_flight_is_a_409_until_its_lease_runs_out(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let body = json!({ "listing_id": listing, "check_in": "2030-02-01", "check_out": "2030-02-03", "guest_id": "g" });
    // Another replica took the key and has not finished (or died before committing).
    let key = IdemKey {
        client: crate::helpers::ADMIN.into(),
        key: "key-4".into(),
        fingerprint: fingerprint(&Method::POST, "/v1/bookings", &canonical_digest(&body)),
    };
    let begun = app
        .store
        .idem_begin(&key, app.now(), Duration::from_secs(60))
        .await
        .expect("begin");
    assert_eq!(begun, IdemBegin::Fresh);
    let reply = app
        .post_with_key("/v1/bookings", &body, Some("key-4"))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.problem(), "idempotency-request-in-flight");
    assert_eq!(
        app.remaining(&listing, "2030-02-01", "2030-02-03").await,
        vec![1, 1]
    );
    // The lease ran out with nothing committed: the retry takes the key over and runs once.
    app.clock.advance(SignedDuration::from_secs(61));
    let retry = app
        .post_with_key("/v1/bookings", &body, Some("key-4"))
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let replay = app
        .post_with_key("/v1/bookings", &body, Some("key-4"))
        .await;
    assert_eq!(replay.body["id"], retry.body["id"]);
}

/// 100 random creating writes, each sent 10 times under the same key in shuffled order from 16
/// concurrent clients: exactly one write per key, and every success for a key is the same one.
async fn a_thousand_retries_create_no_duplicates(backend: Backend) {
    let app = Arc::new(spawn(backend).await);
    let listings = [
        app.listing(3, json!({})).await,
        app.listing(1, json!({})).await,
        app.listing(5, json!({})).await,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut requests = Vec::new();
    for i in 0..100 {
        let listing = &listings[rng.random_range(0..listings.len())];
        let day = rng.random_range(1..25);
        let (check_in, check_out) = (
            format!("2030-03-{day:02}"),
            format!("2030-03-{:02}", day + rng.random_range(1..4)),
        );
        let (path, body) = match rng.random_range(0..4) {
            0 => (
                "/v1/holds".to_owned(),
                json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out, "guest_id": format!("g{i}") }),
            ),
            1 => (
                format!("/v1/listings/{listing}/blocks"),
                json!({ "start": check_in, "end": check_out, "units": 1 }),
            ),
            2 => (
                "/v1/listings".to_owned(),
                json!({ "host_id": "h", "time_zone": "Asia/Tokyo", "units": 2 }),
            ),
            _ => (
                "/v1/bookings".to_owned(),
                json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out, "guest_id": format!("g{i}") }),
            ),
        };
        requests.push((format!("storm-{i}"), path, body));
    }
    let mut sends: Vec<usize> = (0..requests.len())
        .flat_map(|i| std::iter::repeat_n(i, 10))
        .collect();
    sends.shuffle(&mut rng);
    let requests = Arc::new(requests);
    let queue = Arc::new(tokio::sync::Mutex::new(sends));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (app, requests, queue) = (app.clone(), requests.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(i) = queue.lock().await.pop() {
                let (key, path, body) = &requests[i];
                let reply = app.post_with_key(path, body, Some(key)).await;
                seen.push((i, reply.status, reply.body));
            }
            seen
        }));
    }
    let mut by_key: HashMap<usize, Vec<(StatusCode, Value)>> = HashMap::new();
    for worker in workers {
        for (i, status, body) in worker.await.expect("worker") {
            by_key.entry(i).or_default().push((status, body));
        }
    }
    let mut written = 0;
    for (i, replies) in &by_key {
        assert_eq!(replies.len(), 10);
        let finished: Vec<_> = replies
            .iter()
            .filter(|(s, b)| {
                !(*s == StatusCode::CONFLICT
                    && b["type"] == "urn:vacancy:problem:idempotency-request-in-flight")
            })
            .collect();
        assert!(
            !finished.is_empty(),
            "key {i}: every send saw the request in flight"
        );
        let first = finished[0];
        for other in &finished {
            assert_eq!(*other, first, "key {i}: two different outcomes for one key");
        }
        assert!(
            first.0.is_success()
                || first.0 == StatusCode::CONFLICT
                || first.0 == StatusCode::UNPROCESSABLE_ENTITY,
            "key {i}: {first:?}"
        );
        if first.0.is_success() {
            written += 1;
        }
    }
    // After the storm, every key replays its one outcome.
    let mut ids = HashSet::new();
    for (i, (key, path, body)) in requests.iter().enumerate() {
        let replay = app.post_with_key(path, body, Some(key)).await;
        assert_eq!(
            replay
                .headers
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok()),
            Some("true"),
            "key {i}"
        );
        if let Some(id) = replay.body["id"].as_str() {
            assert!(ids.insert(id.to_owned()), "two keys produced the same id");
        }
    }
    // One outbox event per successful write, plus the three listings made up front.
    assert_eq!(app.events().await, written + 3);
    app.assert_no_overbooking().await;
}

crate::backend_tests!(
    a_replay_returns_the_first_response_marked_as_a_replay,
    the_same_key_with_another_body_is_a_422_and_writes_nothing,
    a_refusal_is_replayed_too,
    a_request_still_in_flight_is_a_409_until_its_lease_runs_out,
    a_thousand_retries_create_no_duplicates,
);
