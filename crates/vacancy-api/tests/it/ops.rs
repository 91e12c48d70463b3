//! Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document, and the
//! request id every response carries.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::json;
use vacancy_store::Backend;

use crate::helpers::{Reply, TestApp, post_oversized, send, spawn};

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
