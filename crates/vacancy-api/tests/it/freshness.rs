//! Several replicas on one database and one NATS JetStream: a change made through one is seen
//! by the others without waiting for a cache TTL, `min_version` never yields an older
//! calendar, and an outage of NATS loses no event.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use vacancy_store::Backend;

use crate::helpers::{START, TestApp, spawn_with};
use crate::nats::{OwnNats, private_bus, shared_url};

const STAY: &str = "check_in=2030-02-10&check_out=2030-02-12";

async fn two_replicas(backend: Backend, bus: vacancy_events::BusConfig) -> (TestApp, TestApp) {
    let url = vacancy_store::testing::fresh_database_url(backend)
        .await
        .expect("database");
    let clock = Arc::new(vacancy_api::ManualClock::new(START.parse().expect("start")));
    let a = spawn_with(&url, clock.clone(), bus.clone(), None).await;
    let b = spawn_with(&url, clock, bus, None).await;
    (a, b)
}

/// Reads availability on `app` until `done` says so, at most ~15 s (a bound, not a benchmark:
/// once, on a loaded machine, a replica had not caught up 5 s after a NATS restart).
async fn eventually(
    app: &TestApp,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..750 {
        last = app.get(path).await.body;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never became true; last answer: {last}");
}

async fn a_booking_through_one_replica_reaches_the_other_without_a_ttl(backend: Backend) {
    let (a, b) = two_replicas(backend, private_bus(&shared_url())).await;
    let listing = a.listing(1, json!({})).await;
    let path = format!("/v1/listings/{listing}/availability?{STAY}");
    // Warm B's cache: the second read is served from L1.
    b.get(&path).await;
    let warm = b.get(&path).await;
    assert_eq!(
        warm.headers
            .get("x-vacancy-source")
            .and_then(|v| v.to_str().ok()),
        Some("l1")
    );
    assert_eq!(warm.body["available"], true);

    let booked = a.book(&listing, "2030-02-10", "2030-02-12", 1).await;
    assert_eq!(booked.status, StatusCode::CREATED);
    let version = booked.body["listing_version"]
        .as_i64()
        .expect("a write returns its listing version");

    // Read-your-writes across replicas: asking for that version never yields an older one.
    let asked = b.get(&format!("{path}&min_version={version}")).await;
    assert!(
        asked.body["version"].as_i64().expect("version") >= version,
        "{}",
        asked.body
    );
    assert_eq!(asked.body["available"], false);

    // Without asking: the event reaches B (TTL is 5 minutes, so only the event can do it).
    let listing2 = a.listing(1, json!({})).await;
    let path2 = format!("/v1/listings/{listing2}/availability?{STAY}");
    b.get(&path2).await;
    assert_eq!(
        b.get(&path2)
            .await
            .headers
            .get("x-vacancy-source")
            .and_then(|v| v.to_str().ok()),
        Some("l1")
    );
    a.book(&listing2, "2030-02-10", "2030-02-12", 1).await;
    let seen = eventually(&b, &path2, |body| body["available"] == false).await;
    assert!(seen["version"].as_i64().expect("version") >= 2);
}

async fn a_nats_outage_loses_no_event(backend: Backend) {
    let mut nats = OwnNats::start().await;
    let bus = private_bus(&nats.url());
    let (a, b) = two_replicas(backend, bus.clone()).await;
    let listing = a.listing(20, json!({})).await;
    let calendar = format!("/v1/listings/{listing}/calendar?start=2030-03-01&end=2030-03-11");
    b.get(&calendar).await;

    nats.stop().await;
    for day in 1..=10 {
        let reply = a
            .book(
                &listing,
                &format!("2030-03-{day:02}"),
                &format!("2030-03-{:02}", day + 1),
                1,
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "writes go on while NATS is down: {}",
            reply.body
        );
    }
    let waiting = a.store.outbox_backlog().await.expect("backlog");
    assert!(waiting > 0, "events wait in the outbox while NATS is down");

    nats.resume().await;
    for _ in 0..300 {
        if a.store.outbox_backlog().await.expect("backlog") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        a.store.outbox_backlog().await.expect("backlog"),
        0,
        "the outbox drained after NATS came back"
    );
    // Every event is in the stream exactly once: the listing's creation and ten bookings.
    let vacancy_events::BusConfig::Nats { stream, .. } = &bus else {
        unreachable!("a NATS bus")
    };
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut info = js.get_stream(stream).await.expect("stream");
    let messages = info.info().await.expect("stream info").state.messages;
    assert_eq!(messages, 11);
    // And B's cache caught up from the stream.
    let seen = eventually(&b, &calendar, |body| {
        body["nights"]
            .as_array()
            .is_some_and(|n| n.iter().all(|night| night["remaining"] == 19))
    })
    .await;
    assert!(seen["version"].as_i64().expect("version") >= 11);
}

crate::backend_tests!(
    a_booking_through_one_replica_reaches_the_other_without_a_ttl,
    a_nats_outage_loses_no_event
);
