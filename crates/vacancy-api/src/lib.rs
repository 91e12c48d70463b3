//! The vacancy service: HTTP API v1 (axum) over the store, and its startup.
//!
//! [`app`] builds the router for a given state (handler tests can `oneshot` it without a
//! socket); [`Application::build`] connects, migrates and binds, and
//! [`Application::run_until`] serves until a shutdown signal, then drains. The binary and the
//! integration tests start the service the same way.
//!
//! Every `/v1` route needs a verified bearer token ([`auth`]); mutations are recorded in the
//! audit trail as made by the token's subject. TLS (and mTLS) is optional ([`tls`]);
//! connections are served with hostile-client limits ([`serve`]).
//!
//! This crate never writes SQL and never decides availability itself: it validates input,
//! calls `vacancy_core` for decisions and `vacancy_store` for data, and maps errors to problems.

pub mod auth;
pub mod clock;
pub mod dto;
pub mod error;
pub mod extract;
pub mod fuzzing;
pub mod idempotency;
pub mod observe;
pub mod openapi;
pub mod pressure;
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod shed;
pub mod state;
mod tasks;
pub mod tls;

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

pub use auth::{AuthConfig, Caller, Role, Verifier};
pub use clock::{Clock, ManualClock, SystemClock};
pub use serve::ConnectionLimits;
pub use state::{ApiConfig, AppState};
pub use tls::TlsConfig;

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
    /// Where token keys come from and what tokens must say.
    pub auth: AuthConfig,
    /// TLS (and mTLS) on the API listener; plain HTTP when `None`.
    pub tls: Option<TlsConfig>,
    /// A separate plain-HTTP listener for `/metrics`; when set, the API listener does not
    /// serve `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
    /// Limits against slow and oversized clients.
    pub limits: ConnectionLimits,
}

impl ServeConfig {
    /// Defaults for everything but where to listen and which database to use.
    pub fn new(listen: SocketAddr, store: StoreOptions, auth: AuthConfig) -> Self {
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
            auth,
            tls: None,
            metrics_listen: None,
            limits: ConnectionLimits::default(),
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

/// Whether the API router also serves `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsRoute {
    /// `/metrics` on the API listener.
    Included,
    /// `/metrics` only on its own listener.
    Separate,
}

/// The router with every layer, for `state`.
pub fn app(state: AppState, metrics: MetricsRoute) -> Router {
    let max_body = state.config.max_body_bytes;
    let max_head = state.config.max_head_bytes;
    let request_id = HeaderName::from_static("x-request-id");
    // In an `Arc`: the layer clones its state for every request.
    let bulkheads = Arc::new(shed::Bulkheads::new(&state.config.concurrency));
    let client_limits = ratelimit::ClientLimits::new(&state.config.rate_limit);
    // Read bottom-up: request ids, panics, metrics and logs see every request, limited or not;
    // an oversized head is refused first; a client over its rate is refused before it can take
    // a bulkhead slot.
    routes::router(state, metrics)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(bulkheads, shed::shed))
        .layer(axum::middleware::from_fn_with_state(
            client_limits,
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(max_head, limit_head))
        .layer(axum::middleware::from_fn(observe::observe))
        .layer(CatchPanicLayer::custom(|_panic| {
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "handler panicked".into(),
            ))
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Refuses a request whose head (URI and headers) is over `max` bytes with a 431, before any
/// handler or token check sees it.
async fn limit_head(
    axum::extract::State(max): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let head = request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if head > max {
        return axum::response::IntoResponse::into_response(ApiError::HeadTooLarge);
    }
    next.run(request).await
}

/// A built service: connected, migrated and bound, not yet serving.
pub struct Application {
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    bus: Bus,
    config: ServeConfig,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        ratelimit::check_config(&config.api.rate_limit).map_err(anyhow::Error::msg)?;
        let tls = config
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()?
            .map(tokio_rustls::TlsAcceptor::from);
        let auth = Arc::new(Verifier::load(config.auth.clone()).await?);
        let store = Store::connect(&config.store).await?;
        store.migrate().await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
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
        let state = AppState::new(state::SharedState {
            store,
            reads,
            events_wake,
            clock,
            metrics: observe::prometheus(),
            config: Arc::new(config.api.clone()),
            auth,
        });
        Ok(Self {
            listener,
            metrics_listener,
            tls,
            state,
            bus,
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the separate metrics listener, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
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
        let limits = Arc::new(self.config.limits.clone());
        let metrics_route = if let Some(listener) = self.metrics_listener {
            let router = routes::metrics_router(self.state.clone());
            tokio::spawn(serve::serve(
                listener,
                None,
                router,
                limits.clone(),
                token.clone(),
            ));
            MetricsRoute::Separate
        } else {
            MetricsRoute::Included
        };
        tokio::spawn(self.state.auth.clone().refresh_until(token.clone()));
        let server = serve::serve(
            self.listener,
            self.tls,
            app(self.state.clone(), metrics_route),
            limits,
            token.clone(),
        );
        let signal_token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining");
            signal_token.cancel();
        });
        let drain = self.config.drain_timeout;
        tokio::select! {
            () = server => {}
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
