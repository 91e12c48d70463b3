//! `Idempotency-Key` semantics for creating writes.
//!
//! The first request with a key runs; its response (success or 4xx) is stored — on success in
//! the write's own transaction — and every later request with the same key and the same
//! request gets that response again, marked `Idempotent-Replayed: true`. The same key with a
//! different request is a 422; a repeat while the first still runs is a 409. A 5xx stores
//! nothing, so the client's retry runs again. Keys are scoped per authenticated subject: two
//! subjects using the same key never see each other's responses.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use vacancy_store::{IdemBegin, IdemCommit, IdemKey, StoreError, StoredResponse};

use crate::error::ApiError;
use crate::extract::hex;
use crate::state::AppState;

/// What identifies "the same request": method, path and the canonical body's digest.
pub fn fingerprint(method: &Method, path: &str, body_digest: &str) -> String {
    hex(&Sha256::digest(
        format!("{method} {path} {body_digest}").as_bytes(),
    ))
}

/// Runs `write` at most once per idempotency key and answers with `status` and the body
/// `to_body` makes of its result. `client` is the key space (the caller's subject).
pub async fn run<T, B, F>(
    state: &AppState,
    client: &str,
    key: Option<String>,
    (method, path, body_digest): (Method, &str, &str),
    status: StatusCode,
    to_body: impl Fn(&T) -> B + Send + Sync,
    write: F,
) -> Result<Response, ApiError>
where
    B: Serialize,
    F: AsyncFnOnce(Option<&IdemCommit<'_, T>>) -> Result<T, StoreError>,
{
    let render = |value: &T| StoredResponse {
        status: status.as_u16(),
        body: serde_json::to_string(&to_body(value)).unwrap_or_default(),
    };
    let Some(key) = key else {
        let value = write(None).await?;
        return Ok(json_response(status, &render(&value).body, false));
    };
    let fingerprint = hex(&Sha256::digest(
        format!("{method} {path} {body_digest}").as_bytes(),
    ));
    let key = IdemKey {
        client: client.to_owned(),
        key,
        fingerprint,
    };
    let now = state.clock.now();
    match state
        .store
        .idem_begin(&key, now, state.config.idempotency_lease)
        .await?
    {
        IdemBegin::Fresh => {}
        IdemBegin::Replay(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            return Ok(json_response(status, &stored.body, true));
        }
        IdemBegin::Mismatch => return Err(ApiError::IdempotencyMismatch),
        IdemBegin::InFlight => return Err(ApiError::IdempotencyInFlight),
    }
    let commit = IdemCommit {
        key: &key,
        render: &render,
    };
    match write(Some(&commit)).await {
        Ok(value) => Ok(json_response(status, &render(&value).body, false)),
        Err(err) => {
            let error = ApiError::from(err);
            let problem = error.problem();
            if problem.status < 500 {
                let body = serde_json::to_string(&problem).unwrap_or_default();
                state
                    .store
                    .idem_finish(
                        &key,
                        &StoredResponse {
                            status: problem.status,
                            body,
                        },
                    )
                    .await?;
            } else if let Err(abandon) = state.store.idem_abandon(&key).await {
                // The lease runs out by itself; a retry after it takes the key over.
                tracing::warn!(error = %abandon, "could not release idempotency key");
            }
            Err(error)
        }
    }
}

fn json_response(status: StatusCode, body: &str, replayed: bool) -> Response {
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, body.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Counts a created resource in `metric`, unless the response is a replay of an earlier one.
pub fn count_created(
    response: Result<Response, ApiError>,
    metric: &'static str,
) -> Result<Response, ApiError> {
    if let Ok(r) = &response
        && r.status() == StatusCode::CREATED
        && !r.headers().contains_key("idempotent-replayed")
    {
        metrics::counter!(metric).increment(1);
    }
    response
}
