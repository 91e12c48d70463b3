//! Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document, and the
//! request id every response carries.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_store::Backend;

use crate::helpers::{Reply, TestApp, spawn};

/// The documented body limit (`ApiConfig::default().max_body_bytes`).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Every route the router serves, with its methods (as in `src/routes/mod.rs`).
const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/listings", &["post"]),
    ("/v1/listings/{id}", &["get", "patch"]),
    ("/v1/listings/{id}/blocks", &["delete", "get", "post"]),
    ("/v1/listings/{id}/calendar", &["get"]),
    ("/v1/listings/{id}/availability", &["get"]),
    ("/v1/availability/batch", &["post"]),
    ("/v1/audit", &["get"]),
    ("/v1/holds", &["post"]),
    ("/v1/holds/{id}", &["get"]),
    ("/v1/holds/{id}/confirm", &["post"]),
    ("/v1/holds/{id}/release", &["post"]),
    ("/v1/bookings", &["post"]),
    ("/v1/bookings/{id}", &["get"]),
    ("/v1/bookings/{id}/cancel", &["post"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
];

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("response body");
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// POSTs `body` (longer than the limit) declaring its full length but sending only one byte
/// more than the limit, then reads the answer. The server answers 413 once it has read that
/// byte; a client that kept sending would race the server closing the connection on it (the
/// unread rest turns the close into a reset that can swallow the 413), which is what makes
/// reqwest flaky here. With nothing unread the close is clean and the 413 always arrives.
async fn post_oversized(app: &TestApp, path: &str, body: &[u8]) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert!(
        body.len() > MAX_BODY_BYTES,
        "the body must be over the limit"
    );
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream
        .write_all(&body[..=MAX_BODY_BYTES])
        .await
        .expect("send body");
    let mut raw = Vec::new();
    let read = async {
        let mut chunk = [0_u8; 8192];
        loop {
            if let Some(reply) = parse_response(&raw) {
                return reply;
            }
            let n = stream.read(&mut chunk).await.expect("read response");
            assert!(
                n > 0,
                "connection closed before a full response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("a response in time")
}

/// A complete HTTP/1.1 response with a Content-Length, if `raw` holds one.
fn parse_response(raw: &[u8]) -> Option<Reply> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..head_end]).expect("response head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .split(' ')
        .nth(1)?
        .parse::<u16>()
        .expect("status code");
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line");
        let name =
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name");
        let value = reqwest::header::HeaderValue::from_str(value.trim()).expect("header value");
        headers.append(name, value);
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = raw.get(head_end..head_end + length)?;
    Some(Reply {
        status: StatusCode::from_u16(status).expect("status"),
        headers,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    })
}

async fn text(app: &TestApp, path: &str) -> (StatusCode, String, String) {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// The value of an unlabelled counter in Prometheus text, 0 when absent.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse::<f64>().expect("counter value"))
        .sum()
}

/// The `http_requests_total` samples carrying every one of `labels`.
fn request_samples<'a>(metrics: &'a str, labels: &[&str]) -> Vec<&'a str> {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("http_requests_total{") && labels.iter().all(|l| line.contains(l))
        })
        .collect()
}

fn request_id(reply: &Reply) -> String {
    reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn healthz_is_ok(backend: Backend) {
    let app = spawn(backend).await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({ "status": "ok" }));
}

async fn readyz_is_ready_with_a_migrated_database(backend: Backend) {
    let app = spawn(backend).await;
    let reply = app.get("/readyz").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/json");
    assert_eq!(reply.body, json!({ "status": "ready" }));
}

async fn metrics_count_requests_by_route(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let calendar = format!("/v1/listings/{listing}/calendar?start=2030-03-01&end=2030-03-03");
    assert_eq!(app.get(&calendar).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/v1/listings/ghost").await.status,
        StatusCode::NOT_FOUND
    );
    let (status, content_type, metrics) = text(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        metrics.contains("# TYPE http_requests_total counter"),
        "{metrics}"
    );
    // Labelled by the route template, never by the concrete path (which would explode cardinality).
    let route = r#"route="/v1/listings/{id}/calendar""#;
    assert!(
        !request_samples(&metrics, &[route, r#"method="GET""#, r#"status="200""#]).is_empty(),
        "{metrics}"
    );
    let read = r#"route="/v1/listings/{id}""#;
    assert!(
        !request_samples(&metrics, &[read, r#"status="404""#]).is_empty(),
        "{metrics}"
    );
    assert!(
        !request_samples(
            &metrics,
            &[
                r#"route="/v1/listings""#,
                r#"method="POST""#,
                r#"status="201""#
            ]
        )
        .is_empty()
    );
    assert!(
        !metrics.contains(&format!("route=\"/v1/listings/{listing}")),
        "a concrete id leaked into a label"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket{"),
        "{metrics}"
    );
}

async fn metrics_count_conflicts(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    assert_eq!(
        app.book(&listing, "2030-03-01", "2030-03-03", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    let (_, _, metrics) = text(&app, "/metrics").await;
    let before = counter(&metrics, "vacancy_conflicts_total");
    let reply = app.book(&listing, "2030-03-02", "2030-03-04", 1).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let reply = app.hold(&listing, "2030-03-01", "2030-03-02", 600).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let (_, _, metrics) = text(&app, "/metrics").await;
    assert!(
        metrics.contains("# TYPE vacancy_conflicts_total counter"),
        "{metrics}"
    );
    // Other tests share the process-wide registry: at least our two conflicts were counted.
    let after = counter(&metrics, "vacancy_conflicts_total");
    assert!(
        after >= before + 2.0,
        "vacancy_conflicts_total went from {before} to {after}"
    );
    assert!(
        !request_samples(&metrics, &[r#"route="/v1/bookings""#, r#"status="409""#]).is_empty(),
        "{metrics}"
    );
}

async fn openapi_documents_every_route(backend: Backend) {
    let app = spawn(backend).await;
    let reply = app.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/json");
    let doc = &reply.body;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "vacancy");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeMap<&str, BTreeSet<&str>> = paths
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .map(String::as_str);
            (
                path.as_str(),
                methods
                    .filter(|m| ["get", "post", "patch", "put", "delete"].contains(m))
                    .collect(),
            )
        })
        .collect();
    let served: BTreeMap<&str, BTreeSet<&str>> = ROUTES
        .iter()
        .map(|(path, methods)| (*path, methods.iter().copied().collect()))
        .collect();
    assert_eq!(documented, served);
    // Every documented operation answers with a response it documents, and the problem schema exists.
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                !responses.is_empty(),
                "{method} {path} documents no response"
            );
        }
    }
    assert!(
        doc["components"]["schemas"]["Problem"].is_object(),
        "no Problem schema"
    );
}

async fn every_documented_route_is_served(backend: Backend) {
    let app = spawn(backend).await;
    let doc = app.get("/openapi.json").await.body;
    let events = app.events().await;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{id}", "ghost");
        for method in item.as_object().expect("path item").keys() {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let reply = send(
                app.http
                    .request(method.clone(), format!("{}{concrete}", app.base)),
            )
            .await;
            // Whatever the answer (404 for a ghost listing, 415 for a missing body), the route exists.
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_ne!(reply.body["detail"], "no such route", "{method} {path}");
            assert!(
                !reply.status.is_server_error(),
                "{method} {path}: {}",
                reply.body
            );
        }
    }
    assert_eq!(
        app.events().await,
        events,
        "probing the routes wrote something"
    );
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let url = |path: &str| format!("{}{path}", app.base);
    let requests = [
        app.http.get(url("/healthz")),
        app.http.get(url("/metrics")),
        app.http.get(url(&format!("/v1/listings/{listing}"))),
        app.http
            .post(url("/v1/listings"))
            .json(&json!({ "host_id": "h", "time_zone": "UTC", "units": 1 })),
        app.http
            .post(url("/v1/bookings"))
            .json(&json!({ "listing_id": listing })),
        app.http.post(url("/v1/bookings")).body("{}"),
        app.http.get(url("/v1/nowhere")),
        app.http.delete(url("/v1/bookings")),
        app.http.get(url("/v1/listings/ghost")),
    ];
    let mut seen = BTreeSet::new();
    for request in requests {
        let reply = send(request).await;
        let id = request_id(&reply);
        assert!(
            !id.is_empty(),
            "{} without x-request-id: {}",
            reply.status,
            reply.body
        );
        assert!(seen.insert(id.clone()), "request id {id} given twice");
    }
    // A body over the limit still gets one.
    let reply = post_oversized(&app, "/v1/bookings", &vec![b'x'; 300 * 1024]).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!request_id(&reply).is_empty(), "{:?}", reply.headers);
}

async fn a_client_request_id_is_echoed(backend: Backend) {
    let app = spawn(backend).await;
    let url = |path: &str| format!("{}{path}", app.base);
    let cases = [
        ("trace-abc-123", app.http.get(url("/healthz"))),
        (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            app.http.get(url("/v1/listings/ghost")),
        ),
        (
            "conflict-probe",
            app.http.post(url("/v1/bookings")).json(&json!({})),
        ),
        ("route-probe", app.http.put(url("/healthz"))),
    ];
    for (id, request) in cases {
        let reply = send(request.header("x-request-id", id)).await;
        assert_eq!(request_id(&reply), id, "{}", reply.status);
    }
}

crate::backend_tests!(
    healthz_is_ok,
    readyz_is_ready_with_a_migrated_database,
    metrics_count_requests_by_route,
    metrics_count_conflicts,
    openapi_documents_every_route,
    every_documented_route_is_served,
    every_response_carries_a_request_id,
    a_client_request_id_is_echoed,
);
