//! Strict request extractors: every rejection becomes a problem naming what is wrong.
//!
//! - [`StrictJson`]: `application/json` only, size-limited by the router, unknown fields and
//!   wrong types rejected with the field's path; also keeps a digest of the canonical body for
//!   idempotency fingerprints.
//! - [`StrictQuery`]: query strings with unknown parameters rejected.
//! - [`IdempotencyKey`]: the optional `Idempotency-Key` header, 1–255 visible ASCII characters.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A JSON body of type `T`, with the SHA-256 of its canonical form (sorted keys, no spaces).
pub struct StrictJson<T> {
    pub value: T,
    pub digest: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(e) if is_too_large(&e) => {
                    ApiError::PayloadTooLarge
                }
                other => ApiError::Malformed(other.body_text()),
            })?;
        let (value, digest) = parse_json(&bytes)?;
        Ok(Self { value, digest })
    }
}

/// Parses a JSON body strictly into `T`, with the SHA-256 of its canonical form.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, String), ApiError> {
    let canonical: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Malformed(format!("body is not valid JSON: {e}")))?;
    let value = serde_path_to_error::deserialize(&canonical).map_err(field_error)?;
    Ok((value, canonical_digest(&canonical)))
}

/// Parses a query string strictly into `T`: unknown parameters are errors.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(field_error)
}

fn is_too_large(err: &axum::extract::rejection::FailedToBufferBody) -> bool {
    use std::error::Error;
    let mut source: Option<&dyn Error> = Some(err);
    while let Some(e) = source {
        if e.to_string().contains("length limit exceeded") {
            return true;
        }
        source = e.source();
    }
    false
}

/// A query string parsed strictly into `T`.
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(StrictQuery)
    }
}

/// A deserialization error as a validation problem naming the field. serde reports a missing
/// or unknown field at its parent, with the name only in the message: take it from there.
fn field_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ApiError {
    let path = e.path().to_string();
    let message = e.into_inner().to_string();
    // An unknown field is already the last segment of the path; a missing one is not.
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field"));
    let field = match (path.as_str(), named) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => message.split('`').nth(1).unwrap_or_default().to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (parent, None) => parent.to_owned(),
    };
    ApiError::invalid(field, message)
}

/// A path id. One that no listing, hold or booking could have (ids are letters, digits and
/// `-_.:`, at most 64) is a 404 without asking the database; a path that is not UTF-8 is a 400.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::Malformed(format!("bad path: {}", e.body_text())))?;
        if crate::dto::could_exist(&id) {
            Ok(Self(id))
        } else {
            Err(ApiError::NotFound("resource"))
        }
    }
}

/// The `Idempotency-Key` header, if present.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::invalid(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// SHA-256 (hex) of a JSON value in canonical form: keys sorted, no insignificant spaces.
pub fn canonical_digest(value: &serde_json::Value) -> String {
    hex(&Sha256::digest(value.to_string().as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
