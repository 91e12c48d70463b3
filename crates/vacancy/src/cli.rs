//! Command-line interface: every flag is also an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vacancy_api::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevKeys, MintClaims};
use vacancy_api::ratelimit::{RateLimitConfig, SharedRateLimits};
use vacancy_api::shed::ConcurrencyLimits;
use vacancy_api::{
    ApiConfig, Application, AuthConfig, Clock, ConnectionLimits, Role, ServeConfig, SystemClock,
    TaskConfig, TlsConfig,
};
use vacancy_cache::CacheConfig;
use vacancy_events::BusConfig;
use vacancy_l2::{L2Config, L2Mode};
use vacancy_store::{BreakerConfig, DbPolicy, RetryPolicy, Store, StoreOptions};

/// Real-time availability and booking for marketplaces that sell nights.
#[derive(Debug, Parser)]
#[command(name = "vacancy", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: `json` (one object per line) or `pretty`.
    #[arg(long, env = "VACANCY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (embedded default: SQLite under ./data, 127.0.0.1:8080).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Load realistic demo data: listings in many time zones, with bookings and blocks.
    Seed(SeedArgs),
    /// Dev mode only: print a token signed with the local dev key, for trying the API.
    Token(TokenArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Guest,
    Host,
    Service,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Guest => Role::Guest,
            RoleArg::Host => Role::Host,
            RoleArg::Service => Role::Service,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The caller's role.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// The caller's opaque id (the token's `sub`): letters, digits, `-_.:`, at most 64.
    #[arg(long)]
    sub: String,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3_600)]
    ttl_secs: i64,
    /// Where dev mode keeps its key pair.
    #[arg(long, env = "VACANCY_DEV_KEYS_DIR", default_value = "data/dev-keys")]
    dev_keys_dir: PathBuf,
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// `sqlite://path/file.db` (embedded default) or `postgres://user:password@host/db`.
    #[arg(
        long,
        env = "VACANCY_DATABASE_URL",
        default_value = "sqlite://data/vacancy.db",
        hide_env_values = true
    )]
    database_url: String,
    /// Most database connections this process opens.
    #[arg(long, env = "VACANCY_DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
    /// Longest any database statement may run, in milliseconds.
    #[arg(long, env = "VACANCY_DB_STATEMENT_TIMEOUT_MS", default_value_t = 5_000)]
    db_statement_timeout_ms: u64,
    /// Longest a database read (with its retries) may take before the request gets a 503, in
    /// milliseconds.
    #[arg(long, env = "VACANCY_DB_READ_TIMEOUT_MS", default_value_t = 2_000)]
    db_read_timeout_ms: u64,
    /// Longest a write transaction may take before the request gets a 503, in milliseconds.
    #[arg(long, env = "VACANCY_DB_WRITE_TIMEOUT_MS", default_value_t = 5_000)]
    db_write_timeout_ms: u64,
    /// Retries of a read after a transient connection error (within a shared budget of 10 %).
    #[arg(long, env = "VACANCY_DB_READ_RETRIES", default_value_t = 2)]
    db_read_retries: u32,
    /// Consecutive database failures (errors, timeouts) that open its circuit breaker.
    #[arg(long, env = "VACANCY_DB_BREAKER_FAILURES", default_value_t = 5)]
    db_breaker_failures: u32,
    /// How long an open database breaker refuses calls before one probe, in milliseconds.
    #[arg(long, env = "VACANCY_DB_BREAKER_COOL_DOWN_MS", default_value_t = 1_000)]
    db_breaker_cool_down_ms: u64,
}

impl DatabaseArgs {
    fn options(&self) -> StoreOptions {
        let mut options = StoreOptions::new(self.database_url.clone());
        options.max_connections = self.db_max_connections;
        options.statement_timeout = Duration::from_millis(self.db_statement_timeout_ms);
        options.policy = DbPolicy {
            read_timeout: Duration::from_millis(self.db_read_timeout_ms.max(1)),
            write_timeout: Duration::from_millis(self.db_write_timeout_ms.max(1)),
            breaker: BreakerConfig {
                failure_threshold: self.db_breaker_failures.max(1),
                cool_down: Duration::from_millis(self.db_breaker_cool_down_ms.max(1)),
            },
            retry: RetryPolicy {
                max_retries: self.db_read_retries,
                ..RetryPolicy::default()
            },
        };
        options
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "VACANCY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Hold lifetime when a client names none, in seconds.
    #[arg(long, env = "VACANCY_DEFAULT_HOLD_TTL_SECS", default_value_t = 900)]
    default_hold_ttl_secs: u64,
    /// How often expired holds are released, in milliseconds.
    #[arg(long, env = "VACANCY_SWEEP_INTERVAL_MS", default_value_t = 1_000)]
    sweep_interval_ms: u64,
    /// Longest wait for in-flight requests after SIGTERM or Ctrl-C, in seconds.
    #[arg(long, env = "VACANCY_DRAIN_TIMEOUT_SECS", default_value_t = 30)]
    drain_timeout_secs: u64,
    /// NATS server for the event stream (JetStream), e.g. `nats://127.0.0.1:4222`. Without it,
    /// events go to an in-process bus: fine for one replica, not for several.
    #[arg(long, env = "VACANCY_NATS_URL")]
    nats_url: Option<String>,
    /// Longest one event publish may wait for JetStream's acknowledgement, in milliseconds
    /// (unacknowledged events stay in the outbox and are published again).
    #[arg(long, env = "VACANCY_NATS_TIMEOUT_MS", default_value_t = 2_000)]
    nats_timeout_ms: u64,
    /// Redis for the shared calendar cache (L2), e.g. `redis://127.0.0.1:6379`. Without any
    /// Redis setting there is no L2 (L1 only).
    #[arg(long, env = "VACANCY_REDIS_URL", conflicts_with_all = ["redis_shards", "redis_cluster"])]
    redis_url: Option<String>,
    /// Several standalone Redis nodes, comma-separated, sharded by consistent hashing.
    #[arg(
        long,
        env = "VACANCY_REDIS_SHARDS",
        value_delimiter = ',',
        conflicts_with = "redis_cluster"
    )]
    redis_shards: Vec<String>,
    /// Seed nodes of a Redis Cluster, comma-separated.
    #[arg(long, env = "VACANCY_REDIS_CLUSTER", value_delimiter = ',')]
    redis_cluster: Vec<String>,
    /// Longest one L2 call may take, in milliseconds; slower calls count as misses.
    #[arg(long, env = "VACANCY_REDIS_TIMEOUT_MS", default_value_t = 25)]
    redis_timeout_ms: u64,
    /// Most memory the in-process calendar cache (L1) may use, in MiB.
    #[arg(long, env = "VACANCY_CACHE_MAX_MIB", default_value_t = 512)]
    cache_max_mib: u64,
    /// Longest a calendar stays in L1, in seconds (±10 % jitter).
    #[arg(long, env = "VACANCY_CACHE_TTL_SECS", default_value_t = 300)]
    cache_ttl_secs: u64,
    /// Age after which a cached calendar is refreshed in the background while still served.
    #[arg(long, env = "VACANCY_CACHE_FRESH_SECS", default_value_t = 30)]
    cache_fresh_secs: u64,
    /// How long an idempotent write may run before a retry with its key may take it over, in
    /// seconds (also how long a crashed attempt blocks its key).
    #[arg(long, env = "VACANCY_IDEMPOTENCY_LEASE_SECS", default_value_t = 60)]
    idempotency_lease_secs: u64,
    /// `/readyz` reports not ready while more outbox events than this wait for the relay (for
    /// example while NATS is down); 0 disables the bound.
    #[arg(long, env = "VACANCY_READY_MAX_BACKLOG", default_value_t = 100_000)]
    ready_max_backlog: i64,
    /// Most single reads (calendar, availability, GETs) served at once; more are shed with 503.
    #[arg(long, env = "VACANCY_MAX_CONCURRENT_READS", default_value_t = 512)]
    max_concurrent_reads: usize,
    /// Most batch availability checks served at once; more are shed with 503.
    #[arg(long, env = "VACANCY_MAX_CONCURRENT_BATCH", default_value_t = 32)]
    max_concurrent_batch: usize,
    /// Most writes served at once; more are shed with 503.
    #[arg(long, env = "VACANCY_MAX_CONCURRENT_WRITES", default_value_t = 64)]
    max_concurrent_writes: usize,
    /// Longest a request waits for a free slot of its class before it is shed, in milliseconds.
    #[arg(long, env = "VACANCY_SHED_QUEUE_WAIT_MS", default_value_t = 50)]
    shed_queue_wait_ms: u64,
    /// Scheduling lag (averaged over 20 ms) from which batch checks are shed, in
    /// milliseconds; single reads are shed from twice it, writes from four times it. It catches
    /// a saturated CPU, whose queue forms before any bulkhead sees it. 0 turns it off.
    #[arg(long, env = "VACANCY_SHED_LAG_MS", default_value_t = 5)]
    shed_lag_ms: u64,
    /// Requests per second each client may send (keyed on its bearer token's subject, else its
    /// IP address); more are answered 429. 0 turns rate limiting off.
    #[arg(long, env = "VACANCY_RATE_LIMIT_PER_SECOND", default_value_t = 0)]
    rate_limit_per_second: u32,
    /// Requests a client may send at once after being idle.
    #[arg(long, env = "VACANCY_RATE_LIMIT_BURST", default_value_t = 2_000)]
    rate_limit_burst: u32,
    /// A standalone Redis (`redis://…`) that keeps the rate-limit buckets, shared by every
    /// replica. Without it each replica limits on its own; when it is down, too.
    #[arg(long, env = "VACANCY_RATE_LIMIT_REDIS_URL", hide_env_values = true)]
    rate_limit_redis_url: Option<String>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Serve `/metrics` on this separate address instead of the API's.
    #[arg(long, env = "VACANCY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Longest wait for a request's headers before the connection is dropped, in seconds.
    #[arg(long, env = "VACANCY_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    header_read_timeout_secs: u64,
}

/// Where token keys come from. With neither `--jwks-file` nor `--jwks-url` the service runs in
/// DEV MODE with a local key pair.
#[derive(Debug, Args)]
struct AuthArgs {
    /// A JWKS file with the public keys tokens are verified with.
    #[arg(long, env = "VACANCY_JWKS_FILE")]
    jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched at start and every `--jwks-refresh-secs`.
    #[arg(long, env = "VACANCY_JWKS_URL")]
    jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again, in seconds.
    #[arg(long, env = "VACANCY_JWKS_REFRESH_SECS", default_value_t = 300)]
    jwks_refresh_secs: u64,
    /// The required `iss` of tokens (required with a JWKS; `vacancy-dev` in dev mode).
    #[arg(long, env = "VACANCY_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// The required `aud` of tokens (required with a JWKS; `vacancy` in dev mode).
    #[arg(long, env = "VACANCY_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Where dev mode keeps its key pair.
    #[arg(long, env = "VACANCY_DEV_KEYS_DIR", default_value = "data/dev-keys")]
    dev_keys_dir: PathBuf,
}

impl AuthArgs {
    fn config(&self) -> anyhow::Result<AuthConfig> {
        let mut config = AuthConfig {
            jwks_file: self.jwks_file.clone(),
            jwks_url: self.jwks_url.clone(),
            jwks_inline: None,
            jwks_refresh: Duration::from_secs(self.jwks_refresh_secs),
            issuer: String::new(),
            audience: String::new(),
            leeway: Duration::from_secs(30),
        };
        if self.jwks_file.is_none() && self.jwks_url.is_none() {
            let keys = DevKeys::load_or_create(&self.dev_keys_dir)?;
            tracing::warn!(
                keys_dir = %self.dev_keys_dir.display(),
                kid = keys.kid(),
                "DEV MODE: no --jwks-file or --jwks-url; trusting a local dev key. \
                 Anyone who can read the keys folder can mint tokens. Mint one with \
                 `vacancy token --role admin --sub me`. Never run this in production."
            );
            config.jwks_file = Some(DevKeys::jwks_path(&self.dev_keys_dir));
            config.issuer = self.jwt_issuer.clone().unwrap_or_else(|| DEV_ISSUER.into());
            config.audience = self
                .jwt_audience
                .clone()
                .unwrap_or_else(|| DEV_AUDIENCE.into());
        } else {
            let (Some(issuer), Some(audience)) = (&self.jwt_issuer, &self.jwt_audience) else {
                anyhow::bail!("--jwt-issuer and --jwt-audience are required with a JWKS");
            };
            config.issuer = issuer.clone();
            config.audience = audience.clone();
        }
        Ok(config)
    }
}

/// TLS on the API listener.
#[derive(Debug, Args)]
struct TlsArgs {
    /// PEM certificate chain; with `--tls-key`, the API is served over TLS.
    #[arg(long, env = "VACANCY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "VACANCY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate signed by one (mTLS).
    #[arg(long, env = "VACANCY_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    fn config(&self) -> Option<TlsConfig> {
        Some(TlsConfig {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// How many listings to create.
    #[arg(long, env = "VACANCY_SEED_LISTINGS", default_value_t = 1_000)]
    listings: u32,
    /// Random seed, for repeatable data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve(*args).await,
            Command::Migrate(args) => {
                let store = Store::connect(&args.options()).await?;
                store.migrate().await?;
                tracing::info!("migrations applied");
                Ok(())
            }
            Command::Token(args) => {
                let keys = DevKeys::load(&args.dev_keys_dir)?;
                if !vacancy_api::dto::could_exist(&args.sub) {
                    anyhow::bail!("--sub must be 1 to 64 letters, digits, '-', '_', '.' or ':'");
                }
                let now = SystemClock.now().as_second();
                let claims = MintClaims::new(&args.sub, args.role.into(), now, args.ttl_secs);
                println!("{}", keys.mint(&claims)?);
                Ok(())
            }
            Command::Seed(args) => {
                let store = Store::connect(&args.database.options()).await?;
                store.migrate().await?;
                let report = crate::seed::seed(&store, args.listings, args.seed).await?;
                tracing::info!(
                    listings = report.listings,
                    bookings = report.bookings,
                    blocks = report.blocks,
                    "seeded"
                );
                Ok(())
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServeConfig::new(args.listen, args.database.options(), args.auth.config()?);
    config.tls = args.tls.config();
    config.metrics_listen = args.metrics_listen;
    config.limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs.max(1)),
        ..ConnectionLimits::default()
    };
    config.api = ApiConfig {
        default_hold_ttl: Duration::from_secs(args.default_hold_ttl_secs),
        idempotency_lease: Duration::from_secs(args.idempotency_lease_secs.max(1)),
        ready_max_backlog: args.ready_max_backlog.max(0),
        concurrency: ConcurrencyLimits {
            reads: args.max_concurrent_reads,
            batch: args.max_concurrent_batch,
            writes: args.max_concurrent_writes,
            queue_wait: Duration::from_millis(args.shed_queue_wait_ms),
            lag_target: (args.shed_lag_ms > 0).then(|| Duration::from_millis(args.shed_lag_ms)),
        },
        rate_limit: RateLimitConfig {
            per_second: args.rate_limit_per_second,
            burst: args.rate_limit_burst,
            shared: args.rate_limit_redis_url.map(SharedRateLimits::new),
        },
        ..ApiConfig::default()
    };
    config.tasks = TaskConfig {
        sweep_interval: Duration::from_millis(args.sweep_interval_ms.max(10)),
        ..TaskConfig::default()
    };
    config.drain_timeout = Duration::from_secs(args.drain_timeout_secs);
    config.cache = CacheConfig {
        max_bytes: args.cache_max_mib * 1024 * 1024,
        ttl: Duration::from_secs(args.cache_ttl_secs.max(1)),
        fresh_for: Duration::from_secs(args.cache_fresh_secs.max(1)),
        ..CacheConfig::default()
    };
    if let Some(url) = args.nats_url {
        config.bus = BusConfig::nats(url)
            .with_publish_timeout(Duration::from_millis(args.nats_timeout_ms.max(1)));
    }
    let l2_mode = match (args.redis_url, args.redis_shards, args.redis_cluster) {
        (Some(url), _, _) => Some(L2Mode::Standalone(url)),
        (None, shards, _) if !shards.is_empty() => Some(L2Mode::Sharded(shards)),
        (None, _, seeds) if !seeds.is_empty() => Some(L2Mode::Cluster(seeds)),
        _ => None,
    };
    config.l2 = l2_mode.map(|mode| L2Config {
        op_timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
        ..L2Config::new(mode)
    });
    let app = Application::build(config, Arc::new(SystemClock)).await?;
    tracing::info!(
        address = %app.local_addr()?,
        metrics_address = ?app.metrics_addr(),
        tls = args.tls.tls_cert.is_some(),
        mtls = args.tls.tls_client_ca.is_some(),
        backend = ?app.state().store.backend(),
        "listening"
    );
    app.run_until(shutdown_signal()).await
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Pretty => builder.init(),
    }
}
