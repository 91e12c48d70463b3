//! SIGTERM: the request in flight completes, new connections are refused, the process exits 0
//! within the drain timeout.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{PATIENCE, Server, client, day, fresh_sqlite, one_unit_listing};

/// Polls `/metrics` until the write bulkhead holds exactly `n` requests (bounded).
async fn wait_for_writes_in_flight(http: &reqwest::Client, base: &str, n: u32) {
    let wanted = format!("vacancy_in_flight{{class=\"write\"}} {n}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        if text.lines().any(|line| line == wanted) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_and_exits_cleanly() {
    let database = fresh_sqlite().await;
    let mut server = Server::start(&database, &["--drain-timeout-secs", "15"]).await;
    let http = client(
        &server.token,
        reqwest::Client::builder().pool_max_idle_per_host(0),
    );
    one_unit_listing(&http, &server.base, "cabin").await;

    // A booking whose body is only half sent: genuinely in flight, holding a write slot.
    let body = json!({ "listing_id": "cabin", "check_in": day(10), "check_out": day(12),
        "guest_id": "guest-slow" })
    .to_string();
    let mut stream = TcpStream::connect(server.address).await.expect("connect");
    let head = format!(
        "POST /v1/bookings HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        server.address,
        server.token,
        body.len()
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(first).await.expect("send half the body");
    wait_for_writes_in_flight(&http, &server.base, 1).await;

    server.signal("TERM");
    server.log("shutdown requested; draining").await;

    // The listener is closed: new connections are refused (bounded wait for the accept loop).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match TcpStream::connect(server.address).await {
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
                break;
            }
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still accepting connections after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the process must wait for the request in flight"
    );

    // The request in flight completes.
    stream.write_all(rest).await.expect("send the rest");
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("guest-slow"), "{response}");

    // And the process exits cleanly, well within the drain timeout.
    let status = server.exit_status().await;
    assert!(status.success(), "exit status {status}");
    server.log("stopped").await;

    // The booking it answered 201 for is in the database.
    let store = vacancy_store::Store::connect(&vacancy_store::StoreOptions::new(&database))
        .await
        .expect("open database");
    let findings = store.audit(jiff::Timestamp::now()).await.expect("audit");
    assert!(findings.is_empty(), "{findings:?}");
    let events = store.outbox_after(0, 1_000).await.expect("outbox");
    let bookings = events
        .iter()
        .filter(|(_, e)| e.kind == "booking.created")
        .count();
    assert_eq!(bookings, 1);
}
