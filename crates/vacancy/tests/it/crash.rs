//! SIGKILL in the middle of a burst of idempotent bookings: after a restart on the same
//! database, retrying every request with its key applies each key exactly once, everything a
//! client got a 201 for is there, and nothing is overbooked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::support::{Server, client, day, fresh_sqlite, one_unit_listing};

const REQUESTS: usize = 240;
/// The crash comes once this many answers have arrived.
const KILL_AFTER: usize = 12;

/// Request `i` books two nights overlapping those of `i - 1` and `i + 1`: many conflicts.
fn booking(i: usize) -> Value {
    let start = 20 + i as i64;
    json!({ "listing_id": "chalet", "check_in": day(start), "check_out": day(start + 2),
        "guest_id": format!("guest-{i}") })
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    i: usize,
) -> reqwest::Result<(StatusCode, Value)> {
    let response = http
        .post(format!("{base}/v1/bookings"))
        .header("Idempotency-Key", format!("burst-{i}"))
        .json(&booking(i))
        .send()
        .await?;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Retries request `i` until it is not "in flight" any more (a crashed attempt's lease is short).
async fn retry(http: &reqwest::Client, base: &str, i: usize) -> (StatusCode, Value) {
    for _ in 0..100 {
        let (status, body) = send(http, base, i).await.expect("retry reaches the server");
        if body["type"] != "urn:vacancy:problem:idempotency-request-in-flight" {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("request {i} stayed in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_then_retries_apply_each_key_exactly_once() {
    let database = fresh_sqlite().await;
    let lease = ["--idempotency-lease-secs", "1"];
    let mut first = Server::start(&database, &lease).await;
    let http = client(&first.token, reqwest::Client::builder());
    one_unit_listing(&http, &first.base, "chalet").await;

    // The burst: 8 clients at a time; SIGKILL once KILL_AFTER answers are in.
    let answered = Arc::new(Notify::new());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slots = Arc::new(Semaphore::new(8));
    let mut clients = Vec::new();
    for i in 0..REQUESTS {
        let (http, base) = (http.clone(), first.base.clone());
        let (answered, count, slots) = (answered.clone(), count.clone(), slots.clone());
        clients.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("slot");
            let result = send(&http, &base, i).await.ok();
            if result.is_some()
                && count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == KILL_AFTER
            {
                answered.notify_one();
            }
            result
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), answered.notified())
        .await
        .expect("the burst gets answers");
    first.signal("KILL");
    let status = first.exit_status().await;
    assert!(!status.success(), "killed: {status}");
    let mut before = HashMap::new();
    for (i, client) in clients.into_iter().enumerate() {
        if let Some(answer) = client.await.expect("client") {
            before.insert(i, answer);
        }
    }
    assert!(before.len() < REQUESTS, "the crash interrupted nothing");
    for (status, body) in before.values() {
        assert!(
            matches!(*status, StatusCode::CREATED | StatusCode::CONFLICT),
            "{status} {body}"
        );
    }

    // Restart on the same database and retry every request with its key.
    let second = Server::start(&database, &lease).await;
    let mut after = HashMap::new();
    for i in 0..REQUESTS {
        after.insert(i, retry(&http, &second.base, i).await);
    }
    for (i, (status, body)) in &after {
        assert!(
            matches!(*status, StatusCode::CREATED | StatusCode::CONFLICT),
            "request {i}: {status} {body}"
        );
        if let Some((first_status, first_body)) = before.get(i) {
            assert_eq!(
                status, first_status,
                "request {i} answered differently on retry"
            );
            if *status == StatusCode::CREATED {
                assert_eq!(body["id"], first_body["id"], "request {i} booked twice");
            }
        }
    }

    // Exactly once: one committed booking per 201, all distinct, all present and active.
    let booked: Vec<&str> = after
        .values()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body["id"].as_str().expect("booking id"))
        .collect();
    assert!(!booked.is_empty());
    assert_eq!(booked.iter().collect::<HashSet<_>>().len(), booked.len());
    let store = vacancy_store::Store::connect(&vacancy_store::StoreOptions::new(&database))
        .await
        .expect("open database");
    for id in &booked {
        let claim = store
            .claim(id)
            .await
            .expect("read")
            .expect("booking present");
        assert_eq!(claim.state, vacancy_store::ClaimState::Active, "{id}");
    }
    let created: Vec<String> = store
        .outbox_after(0, 10_000)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|(_, e)| e.kind == "booking.created")
        .filter_map(|(_, e)| e.claim_id)
        .collect();
    assert_eq!(
        created.len(),
        booked.len(),
        "bookings committed vs. answered"
    );
    let findings = store.audit(jiff::Timestamp::now()).await.expect("audit");
    assert!(findings.is_empty(), "overbooked: {findings:?}");
}
