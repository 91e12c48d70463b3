//! Per-client rate limits (GCRA, the `governor` crate), answered with 429 and rate-limit headers.
//!
//! A client is the `sub` of its bearer token when the request has `Authorization: Bearer <JWT>`,
//! else the peer's IP address. The token is only *decoded* here, never verified: this module
//! picks a bucket, it does not authenticate anyone (authentication is another layer's job, and
//! this one must stay independent of it). The price: a client that forges tokens can spread
//! its requests over many buckets, or spend someone else's; the bulkheads (`shed`) still bound
//! what it can do to the service. Once verified identities exist, key on them instead.
//!
//! Every limited route (everything under `/v1`) answers with `RateLimit-Limit` (the burst),
//! `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is full again), the
//! header fields of the IETF `draft-ietf-httpapi-ratelimit-headers`. A request over the limit
//! never reaches a handler: it is a `429 urn:vacancy:problem:rate-limited` with `Retry-After`.
//! Operations endpoints are never limited. Buckets live in this replica's memory (N replicas
//! let a client through at up to N times the rate) unless [`SharedRateLimits`] names a Redis,
//! where every replica then keeps the same buckets (`shared`); when that Redis cannot answer,
//! the local buckets do.
//!
//! Metric: `vacancy_rate_limited_total`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::error::ApiError;

mod shared;

/// Per-client request rate.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client; 0 turns rate limiting off.
    pub per_second: u32,
    /// Requests a client may send at once after being idle (at least 1).
    pub burst: u32,
    /// Keep the buckets in Redis, shared by every replica; `None`: in this replica's memory.
    pub shared: Option<SharedRateLimits>,
}

/// Buckets shared by every replica through Redis.
#[derive(Clone)]
pub struct SharedRateLimits {
    /// A standalone Redis (`redis://…`); may hold a password, so it is never printed.
    pub redis_url: String,
    /// Prefix of the bucket keys, e.g. `vacancy:ratelimit:`.
    pub key_prefix: String,
}

impl SharedRateLimits {
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            key_prefix: "vacancy:ratelimit:".to_owned(),
        }
    }
}

impl std::fmt::Debug for SharedRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRateLimits")
            .field("redis_url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// Checks what can be checked before serving: a shared Redis URL must be understood.
pub fn check_config(config: &RateLimitConfig) -> Result<(), String> {
    match &config.shared {
        Some(shared) if config.per_second > 0 => redis::Client::open(shared.redis_url.as_str())
            .map(|_| ())
            .map_err(|e| format!("invalid rate-limit Redis URL: {e}")),
        _ => Ok(()),
    }
}

impl Default for RateLimitConfig {
    /// Off: behind a load balancer or for a load generator on one machine, every client may
    /// share one IP address. Turn it on where clients are told apart (e.g. 1,000/s, burst 2,000).
    fn default() -> Self {
        Self {
            per_second: 0,
            burst: 2_000,
            shared: None,
        }
    }
}

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// How often (in checks) buckets of clients that went quiet are forgotten.
const FORGET_EVERY: u64 = 16_384;
/// Longest bearer token looked at, and longest subject used as a key.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_SUBJECT_BYTES: usize = 256;

/// The buckets of every client seen recently.
pub struct ClientLimits {
    limiter: Limiter,
    shared: Option<shared::SharedBuckets>,
    burst: u32,
    replenish: Duration,
    checks: AtomicU64,
}

impl ClientLimits {
    /// `None` when rate limiting is off.
    pub fn new(config: &RateLimitConfig) -> Option<Arc<Self>> {
        let per_second = NonZeroU32::new(config.per_second)?;
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        let shared = config.shared.as_ref().and_then(|shared| {
            let buckets = shared::SharedBuckets::new(
                &shared.redis_url,
                &shared.key_prefix,
                quota.replenish_interval(),
                burst.get(),
            );
            // `check_config` refuses a bad URL at start-up; this is the last line of defence.
            buckets
                .inspect_err(|error| tracing::error!(%error, "shared rate limits disabled"))
                .ok()
        });
        Some(Arc::new(Self {
            limiter: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
            shared,
            burst: burst.get(),
            replenish: quota.replenish_interval(),
            checks: AtomicU64::new(0),
        }))
    }

    /// Takes one request from `client`'s bucket: the shared one when there is one and Redis
    /// answers, else this replica's.
    pub async fn take(&self, client: &str) -> Decision {
        if let Some(shared) = &self.shared
            && let Some(decision) = shared.check(client).await
        {
            return decision;
        }
        self.check(client)
    }

    /// Takes one request from `client`'s bucket in this replica's memory.
    pub fn check(&self, client: &str) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = client.to_owned();
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(self.burst);
                let until_full = self.replenish * (self.burst - remaining);
                Decision::Allowed(Headers {
                    limit: self.burst,
                    remaining,
                    reset_secs: ceil_secs(until_full),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let retry_after = ceil_secs(wait).max(1);
                Decision::Limited {
                    retry_after_secs: retry_after,
                    headers: Headers {
                        limit: self.burst,
                        remaining: 0,
                        reset_secs: retry_after,
                    },
                }
            }
        }
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000_000) as u64
}

/// What the bucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Headers),
    Limited {
        retry_after_secs: u64,
        headers: Headers,
    },
}

/// The `RateLimit-*` header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl Headers {
    fn apply(self, headers: &mut HeaderMap) {
        let limit = HeaderName::from_static("ratelimit-limit");
        let remaining = HeaderName::from_static("ratelimit-remaining");
        let reset = HeaderName::from_static("ratelimit-reset");
        headers.insert(limit, HeaderValue::from(self.limit));
        headers.insert(remaining, HeaderValue::from(self.remaining));
        headers.insert(reset, HeaderValue::from(self.reset_secs));
    }
}

/// The bucket key of a request: `sub:<subject>` of a bearer JWT, else `ip:<peer address>`.
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    match bearer_subject(headers) {
        Some(subject) => format!("sub:{subject}"),
        None => match peer {
            Some(peer) => format!("ip:{}", peer.ip()),
            None => "ip:unknown".to_owned(),
        },
    }
}

/// The `sub` claim of a bearer JWT, decoded without verification (see the module doc).
fn bearer_subject(headers: &HeaderMap) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: Option<String>,
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.trim().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let sub = serde_json::from_slice::<Claims>(&payload).ok()?.sub?;
    (!sub.is_empty() && sub.len() <= MAX_SUBJECT_BYTES).then_some(sub)
}

/// The middleware: take one request from the client's bucket or answer 429.
pub async fn limit(
    State(limits): State<Option<Arc<ClientLimits>>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let limited_route = path == "/v1" || path.starts_with("/v1/");
    let Some(limits) = limits.filter(|_| limited_route) else {
        return next.run(request).await;
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let client = client_key(request.headers(), peer);
    match limits.take(&client).await {
        Decision::Allowed(headers) => {
            let mut response = next.run(request).await;
            headers.apply(response.headers_mut());
            response
        }
        Decision::Limited {
            retry_after_secs,
            headers,
        } => {
            metrics::counter!("vacancy_rate_limited_total").increment(1);
            let mut response = ApiError::RateLimited.into_response();
            let response_headers = response.headers_mut();
            headers.apply(response_headers);
            response_headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "Bearer {}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn key(authorization: Option<&str>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
        }
        client_key(&headers, Some("10.1.2.3:5555".parse().expect("addr")))
    }

    #[test]
    fn keys_by_subject_else_by_peer_ip() {
        assert_eq!(key(Some(&token(r#"{"sub":"alice"}"#))), "sub:alice");
        assert_eq!(
            key(Some(
                &token(r#"{"sub":"bob","exp":1}"#).replace("Bearer", "bearer")
            )),
            "sub:bob"
        );
        assert_eq!(key(None), "ip:10.1.2.3");
        for bad in [
            "Bearer".to_owned(),
            "Bearer not-a-jwt".to_owned(),
            "Bearer a.!!!.c".to_owned(),
            "Bearer a.b.c.d".to_owned(),
            "Basic dXNlcjpwYXNz".to_owned(),
            token(r#"{"exp":1}"#),
            token(r#"{"sub":""}"#),
            token(r#"{"sub":42}"#),
            token(&format!(r#"{{"sub":"{}"}}"#, "x".repeat(300))),
        ] {
            assert_eq!(key(Some(&bad)), "ip:10.1.2.3", "{bad}");
        }
        assert_eq!(client_key(&HeaderMap::new(), None), "ip:unknown");
    }

    #[test]
    fn a_bucket_allows_its_burst_then_limits_with_a_retry_time() {
        let limits = ClientLimits::new(&RateLimitConfig {
            per_second: 1,
            burst: 3,
            shared: None,
        })
        .expect("on");
        let first = limits.check("a");
        assert_eq!(
            first,
            Decision::Allowed(Headers {
                limit: 3,
                remaining: 2,
                reset_secs: 1
            })
        );
        assert!(matches!(limits.check("a"), Decision::Allowed(_)));
        assert!(matches!(limits.check("a"), Decision::Allowed(_)));
        match limits.check("a") {
            Decision::Limited {
                retry_after_secs,
                headers,
            } => {
                assert_eq!(retry_after_secs, 1);
                assert_eq!(headers.remaining, 0);
                assert_eq!(headers.limit, 3);
            }
            other => panic!("not limited: {other:?}"),
        }
        assert!(
            matches!(limits.check("b"), Decision::Allowed(_)),
            "other clients are unaffected"
        );
    }

    #[test]
    fn zero_per_second_is_off() {
        assert!(
            ClientLimits::new(&RateLimitConfig {
                per_second: 0,
                burst: 10,
                shared: None,
            })
            .is_none()
        );
    }
}
