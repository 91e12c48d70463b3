//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;
use vacancy_cache::ReadPath;
use vacancy_store::Store;

use crate::auth::Verifier;
use crate::clock::Clock;
use crate::ratelimit::RateLimitConfig;
use crate::shed::ConcurrencyLimits;

/// Tunables of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Hold lifetime when the client names none.
    pub default_hold_ttl: Duration,
    /// Longest hold lifetime a client may ask for.
    pub max_hold_ttl: Duration,
    /// How long an idempotent request may run before a retry may take its key over.
    pub idempotency_lease: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Bulkheads: concurrency limits per class of request (see `shed`).
    pub concurrency: ConcurrencyLimits,
    /// Per-client request rate (see `ratelimit`).
    pub rate_limit: RateLimitConfig,
    /// Largest request head accepted (the URI plus every header name and value), in bytes.
    pub max_head_bytes: usize,
    /// `/readyz` fails while more outbox events than this wait for the relay (0: no bound).
    pub ready_max_backlog: i64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            default_hold_ttl: Duration::from_secs(15 * 60),
            max_hold_ttl: Duration::from_secs(24 * 60 * 60),
            idempotency_lease: Duration::from_secs(60),
            max_body_bytes: 256 * 1024,
            concurrency: ConcurrencyLimits::default(),
            rate_limit: RateLimitConfig::default(),
            max_head_bytes: 32 * 1024,
            ready_max_backlog: 100_000,
        }
    }
}

/// Shared state: the store, the clock, the metrics registry, the token verifier and the config.
///
/// One `Arc` inside: axum clones the state for every request and every layer that takes it, so
/// a clone must cost one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] shares; its fields are read through `AppState` (`state.store`, …).
pub struct SharedState {
    pub store: Store,
    /// Reads of listings and calendars: L1, L2, then the store.
    pub reads: ReadPath,
    /// Wakes the outbox relay after a local commit, so the event leaves at once.
    pub events_wake: Arc<Notify>,
    pub clock: Arc<dyn Clock>,
    pub metrics: PrometheusHandle,
    pub config: Arc<ApiConfig>,
    pub auth: Arc<Verifier>,
}

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}
