//! Operations endpoints: liveness, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::dto::StatusBody;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = StatusBody)))]
pub async fn healthz() -> Json<StatusBody> {
    Json(StatusBody { status: "ok" })
}

/// Readiness: the database answers (its circuit breaker is not open), every migration is
/// applied, and the outbox backlog waiting for the relay is within its bound.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = StatusBody), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    let not_ready = |err: vacancy_store::StoreError| ApiError::NotReady(err.to_string());
    state.store.ready().await.map_err(not_ready)?;
    let bound = state.config.ready_max_backlog;
    if bound > 0 {
        let backlog = state.store.outbox_backlog().await.map_err(not_ready)?;
        if backlog > bound {
            return Err(ApiError::RelayBacklog { backlog, bound });
        }
    }
    Ok(Json(StatusBody { status: "ready" }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::ApiDoc::openapi())
}
