//! The service under test, started in this process the way `vacancy serve` starts it
//! ([`Application::build`] then [`Application::run_until`]) on a fresh database.
//!
//! It runs on its own tokio runtime in its own thread, so the load generator's runtime and the
//! service's do not share worker threads (they still share the machine's cores).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sqlx::{Connection, Executor};
use tokio::sync::oneshot;
use vacancy_api::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevKeys, MintClaims};
use vacancy_api::{Application, AuthConfig, Clock, Role, ServeConfig, SystemClock};
use vacancy_events::BusConfig;
use vacancy_store::{Backend, StoreOptions};

/// How the in-process service runs.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub backend: Backend,
    /// Worker threads of the service's runtime.
    pub threads: usize,
    /// The service's database pool size.
    pub db_max_connections: u32,
    /// Its bulkhead for single reads (`None`: the service's default).
    pub max_concurrent_reads: Option<usize>,
    /// Its longest wait for a bulkhead slot (`None`: the service's default).
    pub shed_queue_wait: Option<Duration>,
    /// Its standing-lag shedding threshold (`None`: the service's default; zero: off).
    pub shed_lag: Option<Duration>,
    /// Where it publishes and consumes events (the embedded default: in this replica only).
    pub bus: BusConfig,
    /// Its name as the outbox relay's lease holder (`None`: the service's default, the same for
    /// every replica in this process).
    pub relay_holder: Option<String>,
}

impl ServiceOptions {
    /// The service's defaults on `backend`, with `threads` runtime threads.
    pub fn new(backend: Backend, threads: usize) -> Self {
        Self {
            backend,
            threads,
            db_max_connections: 16,
            max_concurrent_reads: None,
            shed_queue_wait: None,
            shed_lag: None,
            bus: BusConfig::Local,
            relay_holder: None,
        }
    }
}

/// A running in-process service and the database it owns.
pub struct InProcessService {
    addr: SocketAddr,
    database_url: String,
    backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// The key pair the service trusts (made for this run).
    keys: Arc<DevKeys>,
    /// Until started: where the service thread says which address it bound.
    bound: Option<oneshot::Receiver<anyhow::Result<SocketAddr>>>,
}

/// How long the service may take to connect, migrate and bind.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

impl InProcessService {
    /// Creates a fresh database for `options.backend` and starts the service on it, on a free
    /// loopback port.
    pub async fn start(options: &ServiceOptions) -> anyhow::Result<Self> {
        let database_url = fresh_database_url(options.backend).await?;
        Self::start_on(database_url, options).await
    }

    /// Starts the service on an existing database (another replica's, say), on a free
    /// loopback port. The caller owns the database: it is never dropped here.
    pub async fn start_replica(
        database_url: &str,
        options: &ServiceOptions,
    ) -> anyhow::Result<Self> {
        let mut service = Self::launch(database_url.to_owned(), options)?;
        match service.bound().await {
            Ok(()) => Ok(service),
            Err(e) => {
                service.stop().await.ok();
                Err(e)
            }
        }
    }

    async fn start_on(database_url: String, options: &ServiceOptions) -> anyhow::Result<Self> {
        let mut service = Self::launch(database_url, options)?;
        match service.bound().await {
            Ok(()) => Ok(service),
            Err(e) => {
                service.stop_and_drop_database().await.ok();
                Err(e)
            }
        }
    }

    fn launch(database_url: String, options: &ServiceOptions) -> anyhow::Result<Self> {
        let mut store = StoreOptions::new(database_url.clone());
        store.max_connections = options.db_max_connections;
        let keys = Arc::new(DevKeys::generate()?);
        let auth = AuthConfig::inline(keys.jwks(), DEV_ISSUER, DEV_AUDIENCE);
        let mut config = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), store, auth);
        config.drain_timeout = Duration::from_secs(5);
        if let Some(reads) = options.max_concurrent_reads {
            config.api.concurrency.reads = reads.max(1);
        }
        if let Some(wait) = options.shed_queue_wait {
            config.api.concurrency.queue_wait = wait;
        }
        if let Some(lag) = options.shed_lag {
            config.api.concurrency.lag_target = (!lag.is_zero()).then_some(lag);
        }
        config.bus = options.bus.clone();
        if let Some(holder) = &options.relay_holder {
            config.relay.holder = holder.clone();
        }
        let (bound_tx, bound_rx) = oneshot::channel::<anyhow::Result<SocketAddr>>();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let threads = options.threads.max(1);
        let thread = std::thread::Builder::new()
            .name("vacancy-service".into())
            .spawn(move || serve(config, threads, bound_tx, shutdown_rx))?;
        Ok(Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            backend: options.backend,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            keys,
            bound: Some(bound_rx),
        })
    }

    /// Waits until the service listens (or failed to start).
    async fn bound(&mut self) -> anyhow::Result<()> {
        let bound = self
            .bound
            .take()
            .ok_or_else(|| anyhow::anyhow!("the service was already started"))?;
        match tokio::time::timeout(STARTUP_TIMEOUT, bound).await {
            Ok(Ok(Ok(addr))) => {
                self.addr = addr;
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(e.context("starting the service")),
            Ok(Err(_)) | Err(_) => {
                anyhow::bail!("the service did not start within {STARTUP_TIMEOUT:?}")
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An admin token the service accepts, valid for a day.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let now = SystemClock.now().as_second();
        self.keys
            .mint(&MintClaims::new("bench", Role::Admin, now, 24 * 60 * 60))
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Asks the service to drain and stop, and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await?
                .map_err(|_| anyhow::anyhow!("the service thread panicked"))??;
        }
        Ok(())
    }

    /// Stops the service and deletes its database.
    pub async fn stop_and_drop_database(mut self) -> anyhow::Result<()> {
        self.stop().await?;
        drop_database(&self.database_url).await
    }
}

impl Drop for InProcessService {
    fn drop(&mut self) {
        // Never leave a serving thread behind; the thread ends once it has drained.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn serve(
    config: ServeConfig,
    threads: usize,
    bound: oneshot::Sender<anyhow::Result<SocketAddr>>,
    shutdown: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("vacancy-service-worker")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = match Application::build(config, Arc::new(SystemClock)).await {
            Ok(app) => app,
            Err(e) => {
                let message = format!("{e:#}");
                let _ = bound.send(Err(e));
                anyhow::bail!("{message}");
            }
        };
        let _ = bound.send(app.local_addr().map_err(anyhow::Error::from));
        app.run_until(async move {
            let _ = shutdown.await;
        })
        .await
    })
}

/// Prefix of the databases the harness creates. Not `vacancy_test_`: the test script drops
/// every database with that prefix when it starts, which must not happen to a benchmark's
/// database in the middle of a run.
const DATABASE_PREFIX: &str = "vacancy_bench_";

/// A URL for a new, empty database of `backend` that nobody else uses: a SQLite file under the
/// temporary directory, or a PostgreSQL database created through the same admin URL the tests
/// use (`VACANCY_TEST_POSTGRES_URL`).
pub async fn fresh_database_url(backend: Backend) -> anyhow::Result<String> {
    let name = format!("{DATABASE_PREFIX}{}", uuid::Uuid::now_v7().simple());
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir()
                .join("vacancy-bench")
                .join(format!("{name}.db"));
            Ok(format!("sqlite://{}", path.display()))
        }
        Backend::Postgres => {
            let admin = vacancy_store::testing::postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await?;
            conn.close().await?;
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base);
            Ok(format!("{base}/{name}"))
        }
    }
}

/// Deletes a throwaway database — one made by [`fresh_database_url`] or by
/// `vacancy_store::testing::fresh_database_url`: the SQLite file (and its WAL files) or the
/// PostgreSQL database. Only names that look like those are touched.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let name = url.rsplit('/').next().unwrap_or_default();
    let stem = name.trim_end_matches(".db");
    let throwaway = [DATABASE_PREFIX, "vacancy_test_"].iter().any(|prefix| {
        stem.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
    });
    anyhow::ensure!(throwaway, "not a throwaway database: {name}");
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            match std::fs::remove_file(format!("{path}{suffix}")) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    } else {
        let mut admin =
            sqlx::PgConnection::connect(&vacancy_store::testing::postgres_admin_url()).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {stem} WITH (FORCE)").as_str())
            .await?;
        admin.close().await?;
    }
    Ok(())
}
