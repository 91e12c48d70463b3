//! Bulkheads and load shedding: a full class answers a fast 503 `overloaded` with
//! `Retry-After`, other classes and the operations endpoints keep working, and shedding never
//! yields anything but a clean refusal.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vacancy_api::shed::ConcurrencyLimits;
use vacancy_store::Backend;

use crate::helpers::{TestApp, spawn_tuned};

async fn one_write_at_a_time(backend: Backend) -> TestApp {
    spawn_tuned(backend, |config| {
        config.api.concurrency = ConcurrencyLimits {
            reads: 64,
            batch: 1,
            writes: 1,
            queue_wait: Duration::from_millis(20),
            lag_target: None,
        };
    })
    .await
}

/// A request whose body is still on its way: it holds its class's permit until the rest comes.
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowRequest {
    async fn start(app: &TestApp, path: &str, body: &serde_json::Value) -> Self {
        let address = app.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let body = body.to_string().into_bytes();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            app.token,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("send head");
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(first).await.expect("send half a body");
        Self {
            stream,
            rest: rest.to_vec(),
        }
    }

    /// Sends the rest of the body and returns the response's status line.
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.expect("send rest");
        let mut response = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            self.stream.read_to_end(&mut response),
        )
        .await
        .expect("response in time")
        .expect("read response");
        String::from_utf8_lossy(&response)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends listing creations until one is shed (the slow request has its permit); bounded.
async fn until_shed(app: &TestApp) -> crate::helpers::Reply {
    for attempt in 0..200 {
        let body = json!({ "id": format!("probe-{attempt}"), "host_id": "host-1",
            "time_zone": "Europe/Lisbon", "units": 1 });
        let reply = app.post("/v1/listings", &body).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            return reply;
        }
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no write was shed while another held the only write slot");
}

async fn a_full_write_class_sheds_writes_and_only_writes(backend: Backend) {
    let app = one_write_at_a_time(backend).await;
    let listing = app.listing(1, json!({})).await;
    let booking = json!({ "listing_id": listing, "check_in": "2030-02-10",
        "check_out": "2030-02-12", "guest_id": "guest-slow" });
    let slow = SlowRequest::start(&app, "/v1/bookings", &booking).await;

    let shed = until_shed(&app).await;
    assert_eq!(shed.problem(), "overloaded", "{}", shed.body);
    assert_eq!(shed.content_type(), "application/problem+json");
    assert_eq!(shed.headers["retry-after"], "1");
    let other_write = app.book(&listing, "2030-03-10", "2030-03-12", 1).await;
    assert_eq!(other_write.status, StatusCode::SERVICE_UNAVAILABLE);

    // Reads, batch reads and operations are other bulkheads: unaffected.
    let remaining = app.remaining(&listing, "2030-02-10", "2030-02-12").await;
    assert_eq!(remaining, vec![1, 1]);
    let batch = app
        .post(
            "/v1/availability/batch",
            &json!({ "listing_ids": [listing], "check_in": "2030-02-10", "check_out": "2030-02-12" }),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }

    // The slow write was admitted, so it completes; then writes are admitted again.
    assert!(slow.finish().await.starts_with("HTTP/1.1 201"));
    let later = app.book(&listing, "2030-03-10", "2030-03-12", 1).await;
    assert_eq!(later.status, StatusCode::CREATED, "{}", later.body);
    let text = String::from_utf8_lossy(&metrics_text(&app).await).into_owned();
    assert!(
        text.contains("vacancy_shed_total{class=\"write\",reason=\"full\"}"),
        "{text}"
    );
    assert!(text.contains("vacancy_in_flight{class=\"write\"}"));
    app.assert_no_overbooking().await;
}

async fn metrics_text(app: &TestApp) -> Vec<u8> {
    app.http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .bytes()
        .await
        .expect("metrics body")
        .to_vec()
}

async fn a_full_batch_class_sheds_batches(backend: Backend) {
    let app = one_write_at_a_time(backend).await;
    let listing = app.listing(1, json!({})).await;
    let batch =
        json!({ "listing_ids": [listing], "check_in": "2030-02-10", "check_out": "2030-02-12" });
    let slow = SlowRequest::start(&app, "/v1/availability/batch", &batch).await;
    let mut shed = None;
    for _ in 0..200 {
        let reply = app.post("/v1/availability/batch", &batch).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shed = shed.expect("a batch shed while another held the only batch slot");
    assert_eq!(shed.problem(), "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");
    // Writes are another bulkhead.
    let booking = app.book(&listing, "2030-02-10", "2030-02-12", 1).await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
    assert!(slow.finish().await.starts_with("HTTP/1.1 200"));
}

/// Many clients racing for one night through one write slot: every answer is a booking, a
/// conflict or a shed, at most one booking wins, and nothing is overbooked.
async fn racing_through_one_write_slot_yields_only_clean_answers(backend: Backend) {
    let app = Arc::new(one_write_at_a_time(backend).await);
    let listing = app.listing(1, json!({})).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(48));
    let mut clients = Vec::new();
    for i in 0..48 {
        let (app, barrier, listing) = (app.clone(), barrier.clone(), listing.clone());
        clients.push(tokio::spawn(async move {
            let body = json!({ "listing_id": listing, "check_in": "2030-02-10",
                "check_out": "2030-02-12", "guest_id": format!("guest-{i}") });
            barrier.wait().await;
            let reply = app.post("/v1/bookings", &body).await;
            (reply.status, reply.headers.get("retry-after").cloned())
        }));
    }
    let mut created = 0;
    for client in clients {
        let (status, retry_after) = client.await.expect("client");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(
                retry_after.as_ref().and_then(|v| v.to_str().ok()),
                Some("1")
            ),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(created <= 1, "{created} bookings of one unit");
    app.assert_no_overbooking().await;
}

/// A saturated CPU: many clients flood batch checks into a service whose bulkheads are wide
/// open, so no bulkhead ever fills. The standing scheduling lag sheds batches with the same fast
/// 503; operations endpoints still answer; once the flood is over, batches are admitted again.
async fn a_saturated_runtime_sheds_batches_by_its_lag(backend: Backend) {
    let app = Arc::new(
        spawn_tuned(backend, |config| {
            config.api.concurrency = ConcurrencyLimits {
                // Wide open: no bulkhead fills, only the lag can shed.
                batch: 4096,
                lag_target: Some(Duration::from_millis(5)),
                ..ConcurrencyLimits::default()
            };
        })
        .await,
    );
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(app.listing(1, json!({})).await);
    }
    let batch = Arc::new(json!({ "listing_ids": ids, "check_in": "2030-02-10",
        "check_out": "2030-02-12" }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let sheds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..64 {
        let (app, batch, sheds) = (app.clone(), batch.clone(), sheds.clone());
        clients.push(tokio::spawn(async move {
            let mut admitted = 0;
            // Bounded in time; ends early once the service has shed plenty.
            while tokio::time::Instant::now() < deadline
                && sheds.load(std::sync::atomic::Ordering::Relaxed) < 50
            {
                let reply = app.post("/v1/availability/batch", &batch).await;
                match reply.status {
                    StatusCode::OK => admitted += 1,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert_eq!(reply.problem(), "overloaded", "{}", reply.body);
                        assert_eq!(reply.content_type(), "application/problem+json");
                        assert_eq!(reply.headers["retry-after"], "1");
                        sheds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    other => panic!("unexpected {other}: {}", reply.body),
                }
            }
            admitted
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.get("/healthz").await.status,
        StatusCode::OK,
        "never shed"
    );
    let mut admitted = 0;
    for client in clients {
        admitted += client.await.expect("client");
    }
    let shed = sheds.load(std::sync::atomic::Ordering::Relaxed);
    assert!(shed > 0, "nothing shed ({admitted} admitted)");
    assert!(admitted > 0, "everything shed");
    let text = String::from_utf8_lossy(&metrics_text(&app).await).into_owned();
    assert!(
        text.contains("vacancy_shed_total{class=\"batch\",reason=\"lag\"}"),
        "{text}"
    );
    assert!(text.contains("vacancy_runtime_lag_seconds"), "{text}");

    // The flood is over: within a bounded number of tries batches are admitted again.
    let mut back = false;
    for _ in 0..100 {
        let reply = app.post("/v1/availability/batch", &batch).await;
        if reply.status == StatusCode::OK {
            back = true;
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "batches still shed after the flood");
}

crate::backend_tests!(
    a_saturated_runtime_sheds_batches_by_its_lag,
    a_full_write_class_sheds_writes_and_only_writes,
    a_full_batch_class_sheds_batches,
    racing_through_one_write_slot_yields_only_clean_answers,
);
