//! The one HTTP error type, and how every failure becomes an RFC 9457 problem.
//!
//! Policy:
//! - every error response is `application/problem+json` with a stable `type` URN
//!   (`urn:vacancy:problem:<slug>`), a `title`, the `status` and a human `detail`;
//! - bad input is a 4xx that names the offending `field` (in `errors`), and never changes
//!   anything: handlers validate everything before they call the store;
//! - a conflict with other claims is a 409 that names the `nights`; broken stay rules are a 422
//!   that lists machine-readable `reasons`;
//! - a class of requests over its concurrency limit is a 503 `overloaded` with `Retry-After`
//!   (`shed`), a client over its rate a 429 `rate-limited` with `Retry-After` and `RateLimit-*`
//!   headers (`ratelimit`);
//! - a request without a valid bearer token is a 401 `unauthenticated` with
//!   `WWW-Authenticate: Bearer`; a caller whose role may not do something is a 403 `forbidden`
//!   that names nothing; a hold or booking the caller may not see is the same 404 as a missing
//!   one, so no tenant learns about another's data;
//! - the database being unreachable is a 503 with `Retry-After`; anything unexpected is a 500
//!   whose detail says nothing internal. Errors are logged by the logging middleware from the
//!   status, not here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vacancy_core::{Night, Reason};
use vacancy_store::StoreError;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field, e.g. `check_out` or `listing_ids[3]`; `""` for the whole body.
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:vacancy:problem:nights-unavailable`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For validation problems: the offending fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For conflicts: the nights that are taken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, format = Date)]
    pub nights: Vec<Night>,
    /// For broken stay rules: why, machine-readably.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Reason>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("invalid field {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthenticated: {0}")]
    Unauthenticated(crate::auth::AuthFailure),
    #[error("forbidden")]
    Forbidden,
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInFlight,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("not ready: {backlog} events wait for the relay (bound {bound})")]
    RelayBacklog { backlog: i64, bound: i64 },
    #[error("overloaded: too many {0} requests in flight")]
    Overloaded(&'static str),
    #[error("rate limited")]
    RateLimited,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The problem document this error is answered with.
    pub fn problem(&self) -> Problem {
        let p = |status: StatusCode, slug: &str, title: &str, detail: String| Problem {
            kind: format!("urn:vacancy:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors: Vec::new(),
            nights: Vec::new(),
            reasons: Vec::new(),
        };
        match self {
            ApiError::Malformed(detail) => p(StatusCode::BAD_REQUEST, "malformed-request", "Malformed request", detail.clone()),
            ApiError::Invalid { field, message } => {
                let mut problem =
                    p(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed", "Invalid request", format!("{field}: {message}"));
                problem.errors.push(FieldError { field: field.clone(), message: message.clone() });
                problem
            }
            ApiError::UnsupportedMediaType => p(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json".into(),
            ),
            ApiError::PayloadTooLarge => {
                p(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large", "the request body is too large".into())
            }
            ApiError::HeadTooLarge => p(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request headers too large",
                "the request line and headers are too large".into(),
            ),
            ApiError::NotFound(what) => p(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no such {what}")),
            ApiError::NoRoute => p(StatusCode::NOT_FOUND, "not-found", "Not found", "no such route".into()),
            ApiError::MethodNotAllowed => p(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this route does not take this method".into(),
            ),
            ApiError::Unauthenticated(failure) => p(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                failure.to_string(),
            ),
            ApiError::Forbidden => p(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "your role or identity does not allow this".into(),
            ),
            ApiError::IdempotencyMismatch => p(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was first used with a different request".into(),
            ),
            ApiError::IdempotencyInFlight => p(
                StatusCode::CONFLICT,
                "idempotency-request-in-flight",
                "Request in progress",
                "the first request with this Idempotency-Key has not finished; retry shortly".into(),
            ),
            ApiError::Store(err) => store_problem(err, p),
            ApiError::NotReady(_) => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                "the service cannot serve requests now: its database is unreachable or not migrated".into(),
            ),
            ApiError::RelayBacklog { backlog, bound } => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                format!("{backlog} events wait for the relay, over the bound of {bound}"),
            ),
            ApiError::Overloaded(class) => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Overloaded",
                format!("the service has no room for more {class} requests now; retry shortly"),
            ),
            ApiError::RateLimited => p(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                "this client is over its request rate; retry after the time in Retry-After".into(),
            ),
            ApiError::Internal(_) => {
                p(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "something went wrong on our side".into())
            }
        }
    }
}

fn store_problem(
    err: &StoreError,
    mut p: impl FnMut(StatusCode, &str, &str, String) -> Problem,
) -> Problem {
    match err {
        StoreError::NotFound(what) => p(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no such {what}"),
        ),
        StoreError::Conflict { nights } => {
            let mut problem = p(
                StatusCode::CONFLICT,
                "nights-unavailable",
                "Nights unavailable",
                format!("{} night(s) of the stay are already taken", nights.len()),
            );
            problem.nights = nights.clone();
            problem
        }
        StoreError::RulesBroken(reasons) => {
            let mut problem = p(
                StatusCode::UNPROCESSABLE_ENTITY,
                "stay-rules-broken",
                "Stay rules broken",
                "the stay breaks the listing's rules; see reasons".into(),
            );
            problem.reasons = reasons.clone();
            problem.nights = reasons
                .iter()
                .find_map(|r| match r {
                    Reason::NightsUnavailable { nights } => Some(nights.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            problem
        }
        StoreError::RulesInvalid(rule) => {
            let mut problem = p(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Invalid request",
                rule.to_string(),
            );
            problem.errors.push(FieldError {
                field: rule.field.to_owned(),
                message: rule.message.clone(),
            });
            problem
        }
        StoreError::WrongState { what, state } => p(
            StatusCode::CONFLICT,
            &format!("{what}-{state}"),
            "Invalid state",
            format!("the {what} is {state}"),
        ),
        StoreError::AlreadyExists(what) => p(
            StatusCode::CONFLICT,
            "already-exists",
            "Already exists",
            format!("a {what} with this id already exists"),
        ),
        StoreError::Unavailable(_) | StoreError::CircuitOpen { .. } => p(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "Service unavailable",
            "the database is not reachable right now; retry shortly".into(),
        ),
        StoreError::TimedOut { .. } => p(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "Service unavailable",
            "the database did not answer in time; retry shortly (a write retried with its \
             Idempotency-Key is applied at most once)"
                .into(),
        ),
        StoreError::Database(_) | StoreError::Corrupt(_) => p(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong on our side".into(),
        ),
    }
}

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.problem(), Some(self))
    }
}

/// The HTTP response for a problem. The error, when given, rides along as a response extension
/// so the logging middleware can record its cause.
pub fn problem_response(problem: &Problem, cause: Option<ApiError>) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if problem.detail == crate::auth::AuthFailure::Missing.to_string() {
            "Bearer"
        } else {
            "Bearer error=\"invalid_token\""
        };
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
        .extensions_mut()
        .insert(ProblemType(problem.kind.clone()));
    if let Some(cause) = cause.filter(|_| status.is_server_error()) {
        response
            .extensions_mut()
            .insert(ErrorCause(cause.to_string()));
    }
    response
}

/// The problem `type` of an error response, for metrics.
#[derive(Debug, Clone)]
pub struct ProblemType(pub String);

/// What really went wrong behind a 5xx, for the logs (never sent to the client).
#[derive(Debug, Clone)]
pub struct ErrorCause(pub String);
