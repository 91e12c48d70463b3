//! The vacancy service: HTTP API v1 (axum) over the store, and its startup.
//!
//! [`app`] builds the router for a given state (handler tests can `oneshot` it without a
//! socket); [`Application::build`] connects, migrates and binds, and
//! [`Application::run_until`] serves until a shutdown signal, then drains. The binary and the
//! integration tests start the service the same way.
//!
//! This crate never writes SQL and never decides availability itself: it validates input,
//! calls `vacancy_core` for decisions and `vacancy_store` for data, and maps errors to problems.

pub mod clock;
pub mod dto;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod observe;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod shed;
pub mod state;
mod tasks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use vacancy_cache::{CacheConfig, ReadPath};
use vacancy_events::relay::RelayConfig;
use vacancy_events::{Bus, BusConfig};
use vacancy_l2::{L2, L2Config};
use vacancy_store::{CommitHook, Store, StoreOptions};

pub use clock::{Clock, ManualClock, SystemClock};
pub use state::{ApiConfig, AppState};

use crate::error::ApiError;

/// Everything `vacancy serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    pub store: StoreOptions,
    pub api: ApiConfig,
    /// Background work: hold expiry and idempotency-record retention.
    pub tasks: TaskConfig,
    /// Longest wait for in-flight requests after a shutdown signal.
    pub drain_timeout: Duration,
    /// The read path's caches.
    pub cache: CacheConfig,
    /// Where committed changes are published.
    pub bus: BusConfig,
    /// The outbox relay.
    pub relay: RelayConfig,
    /// The shared L2 cache (Redis), if any.
    pub l2: Option<L2Config>,
}

impl ServeConfig {
    /// Defaults for everything but where to listen and which database to use.
    pub fn new(listen: SocketAddr, store: StoreOptions) -> Self {
        Self {
            listen,
            store,
            api: ApiConfig::default(),
            tasks: TaskConfig::default(),
            drain_timeout: Duration::from_secs(30),
            cache: CacheConfig::default(),
            bus: BusConfig::Local,
            relay: RelayConfig::default(),
            l2: None,
        }
    }
}

/// Background task settings.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// How often expired holds are released.
    pub sweep_interval: Duration,
    /// How long idempotency records are kept (at least 24 hours).
    pub idempotency_retention: Duration,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(1),
            idempotency_retention: Duration::from_secs(48 * 60 * 60),
        }
    }
}

/// The router with every layer, for `state`.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let request_id = HeaderName::from_static("x-request-id");
    let bulkheads = shed::Bulkheads::new(&state.config.concurrency);
    let client_limits = ratelimit::ClientLimits::new(&state.config.rate_limit);
    // Read bottom-up: request ids, panics, metrics and logs see every request, limited or not;
    // a client over its rate is refused before it can take a bulkhead slot.
    routes::router(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(bulkheads, shed::shed))
        .layer(axum::middleware::from_fn_with_state(
            client_limits,
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "handler panicked".into(),
            ))
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A built service: connected, migrated and bound, not yet serving.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
    bus: Bus,
    config: ServeConfig,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        ratelimit::check_config(&config.api.rate_limit).map_err(anyhow::Error::msg)?;
        let store = Store::connect(&config.store).await?;
        store.migrate().await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let bus = Bus::connect(&config.bus).await?;
        let l2 = match &config.l2 {
            Some(l2) => {
                Some(Arc::new(L2::connect(l2.clone()).await?) as Arc<dyn vacancy_cache::SharedCache>)
            }
            None => None,
        };
        let reads = ReadPath::new(store.clone(), l2, config.cache.clone());
        let events_wake = Arc::new(tokio::sync::Notify::new());
        // Every local commit tells the read path at once (so this replica never serves an older
        // copy after it) and wakes the relay (so the event leaves without waiting for a poll).
        let hook = {
            let (reads, wake) = (reads.clone(), events_wake.clone());
            CommitHook(Arc::new(move |event: &vacancy_store::Event| {
                reads.note(&event.listing_id, event.version);
                wake.notify_one();
            }))
        };
        let store = store.with_commit_hook(hook);
        let state = AppState {
            store,
            reads,
            events_wake,
            clock,
            metrics: observe::prometheus(),
            config: Arc::new(config.api.clone()),
        };
        Ok(Self {
            listener,
            state,
            bus,
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, waits for in-flight requests up
    /// to the drain timeout, stops background tasks and closes the database pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        let tasks = tasks::spawn(
            self.state.clone(),
            self.bus.clone(),
            &self.config,
            token.clone(),
        );
        let serve_token = token.clone();
        // Peer addresses reach the handlers (the rate limiter keys anonymous clients on them).
        let service = app(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, service)
            .with_graceful_shutdown(async move { serve_token.cancelled().await });
        let signal_token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining");
            signal_token.cancel();
        });
        let drain = self.config.drain_timeout;
        tokio::select! {
            served = server => served?,
            () = async { token.cancelled().await; tokio::time::sleep(drain).await } => {
                tracing::warn!(drain_timeout_ms = drain.as_millis() as u64, "drain deadline passed; closing open connections");
            }
        }
        token.cancel();
        tasks.wait().await;
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
