//! Per-request metrics and logs, in one middleware.
//!
//! Metrics: `http_requests_total{method,route,status}`, `http_request_duration_seconds{method,route}`
//! (histogram), and `vacancy_conflicts_total` for 409s that name taken nights (handlers add
//! `vacancy_bookings_total` and `vacancy_holds_placed_total`; the sweeper
//! `vacancy_holds_expired_total`). Logs: one
//! structured line per request — debug for successes, info for client errors, error (with the
//! cause) for server errors — carrying the request id.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{ErrorCause, ProblemType};

/// The process-wide Prometheus recorder (a process can install only one).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (an embedding program's): keep ours private.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let labels = [("method", method.to_string()), ("route", route.clone())];
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    metrics::counter!(
        "http_requests_total",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => status.as_str().to_owned()
    )
    .increment(1);
    let problem = response
        .extensions()
        .get::<ProblemType>()
        .map(|p| p.0.as_str());
    if problem == Some("urn:vacancy:problem:nights-unavailable") {
        metrics::counter!("vacancy_conflicts_total").increment(1);
    }
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let refused = matches!(
        problem,
        Some("urn:vacancy:problem:overloaded" | "urn:vacancy:problem:rate-limited")
    );
    if refused {
        // Shed and rate-limited requests are counted by their own metrics; under a spike there
        // are many of them, so they are not error logs.
        tracing::debug!(%method, %route, status = status.as_u16(), duration_ms, request_id, problem, "request refused");
    } else if status.is_server_error() {
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .map_or("", |c| c.0.as_str());
        tracing::error!(%method, %route, status = status.as_u16(), duration_ms, request_id, cause, "request failed");
    } else if status.is_client_error() {
        tracing::info!(%method, %route, status = status.as_u16(), duration_ms, request_id, problem, "request refused");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), duration_ms, request_id, "request served");
    }
    response
}
