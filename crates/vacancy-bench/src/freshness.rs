//! Freshness lag across replicas (`--scenario freshness`): how long after a booking commits on
//! one replica the other replica's cache answers with it.
//!
//! Two in-process services, replica A and replica B, run on one database and one NATS JetStream
//! stream (a stream and subjects of this run's own, deleted afterwards). One of them holds the
//! outbox relay lease (`--relay-replica`). Bookings go through A at a fixed rate (`--rate`),
//! each on a listing of its own, and for each one the harness:
//!
//! 1. reads the listing's availability on A and on B, so each replica's L1 holds the version
//!    before the booking (a listing is booked once per run, so nothing else reloads it);
//! 2. books it on A and notes when the 201 arrived and the `listing_version` it returned;
//! 3. reads it again on A and on B, every `--poll-interval` (or a tenth of the time waited so
//!    far, when longer), until each answers that version or newer. A replica keeps answering from its cached copy until it applies the booking's
//!    event (A: its commit hook, before the 201; B: the event from NATS), so the first answer
//!    with the new version tells when it was applied, to within one poll.
//!
//! The lag reported per replica is *from the 201 to the first answer with the version*, an
//! upper bound of "201 → applied"; the time from the 201 to the sending of the last read that
//! still had the old version is its lower bound. Both bounds hold per booking, so the true
//! percentiles lie between the two reported ones. The commit precedes the 201 by A's commit
//! hook and the encoding of the response. The service's own `vacancy_freshness_lag_seconds`
//! (both replicas share this process's metrics registry, so it is their mix) is reported next
//! to it, interpolated from its buckets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::StatusCode;
use hyper::body::Bytes;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use vacancy_events::BusConfig;
use vacancy_events::relay::{LEASE, RelayConfig};
use vacancy_store::{Store, StoreOptions};

use crate::cli::{BenchArgs, Mode, RelayReplica};
use crate::cpu::{CpuSample, CpuUsage};
use crate::dataset::{self, BOOK_DAYS, Dataset, DatasetSpec, LoadReport, Sink, day};
use crate::engine::new_histogram;
use crate::http::{Planned, Reconnecting, Target, TransportError};
use crate::prometheus::{Buckets, CounterFilter, Counters};
use crate::report::{Machine, Percentiles};
use crate::scenarios::booking;
use crate::service::{InProcessService, ServiceOptions, drop_database, fresh_database_url};

/// Bookings per second when `--rate` is not given.
pub const DEFAULT_RATE: f64 = 200.0;
/// The service's histogram of commit → applied.
const LAG_METRIC: &str = "vacancy_freshness_lag_seconds";
/// Nights of each booking, from the first day of [`BOOK_DAYS`].
const NIGHTS: i64 = 2;
/// Longest wait for the outbox to drain before the run.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// Most reads of one replica while waiting for one booking.
const MAX_POLLS: u32 = 100_000;
/// The pause between two reads of a replica waiting for a booking is `--poll-interval`, or this
/// share of the time waited so far when that is longer: the bounds stay within about 10 % of
/// the lag, and a replica that falls behind is not flooded with reads (about 60 reads per
/// booking within the first second at a 1 ms interval, instead of 1,000), which would hold it
/// back further.
const POLL_BACKOFF: f64 = 0.1;

/// What a freshness run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessReport {
    pub tool: &'static str,
    pub version: &'static str,
    pub started_at: String,
    pub command: String,
    pub machine: Machine,
    pub backend: &'static str,
    /// The NATS server (credentials removed) and this run's stream.
    pub nats_url: String,
    pub stream: String,
    /// The replica that held the outbox relay lease (`a` or `b`).
    pub relay_replica: &'static str,
    /// Whether it still held it after the run (leadership never moved).
    pub relay_kept: bool,
    pub server_threads_per_replica: usize,
    pub client_threads: usize,
    /// Bookings per second through A.
    pub rate: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub poll_interval_ms: f64,
    pub timeout_s: f64,
    pub dataset: LoadReport,
    /// Bookings due in the measured window.
    pub scheduled: u64,
    /// Of those, booked (201).
    pub booked: u64,
    /// Latency of the bookings on A (201s).
    pub booking_latency: Option<Percentiles>,
    /// How late bookings started relative to their schedule.
    pub schedule_lag: Option<Percentiles>,
    /// The replica not written to: the figure asked for.
    pub replica_b: ReplicaLag,
    /// The replica written to (read-your-writes through its commit hook).
    pub replica_a: ReplicaLag,
    /// Measured bookings that produced no lag, by cause (`missed` = not started because a
    /// second's worth of bookings, or --connections if more, were still in flight).
    pub failures: BTreeMap<String, u64>,
    /// The service's own histogram over the run, warm-up included.
    pub service_metric: Option<ServiceLag>,
    /// CPU used during the bookings (warm-up included), when the platform tells.
    pub cpu: Option<CpuUsage>,
}

/// What one replica showed for the measured bookings.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaLag {
    /// Bookings whose version this replica answered within `--timeout` of the 201.
    pub applied: u64,
    /// Bookings it had not answered with their version `--timeout` after the 201.
    pub not_applied: u64,
    /// From the 201 to the first answer with the version (an upper bound of the lag).
    pub lag: Option<Percentiles>,
    /// From the 201 to the sending of the last read that still had the old version, 0 when the
    /// first read already had it (a lower bound of the lag).
    pub lag_lower_bound: Option<Percentiles>,
    /// Bookings whose first read after the 201 already had the version.
    pub first_read_fresh: u64,
    /// Reads per applied booking, on average.
    pub mean_reads: f64,
}

/// The service's `vacancy_freshness_lag_seconds` over the run.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceLag {
    /// Observations: every event each replica applied (both replicas, warm-up included).
    pub count: f64,
    pub mean_ms: Option<f64>,
    /// Interpolated from the buckets, as `histogram_quantile` would.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The buckets' upper bounds (ms) with the observations in each (not cumulative).
    pub buckets: Vec<(f64, f64)>,
}

/// Runs the freshness mode `args` describe.
pub async fn run(args: &BenchArgs, command: String) -> anyhow::Result<FreshnessReport> {
    args.validate()?;
    anyhow::ensure!(
        args.mode()? == Mode::Freshness,
        "not a freshness run: pass --scenario freshness"
    );
    let plan = Plan::of(args)?;
    let started_at = Timestamp::now().round(jiff::Unit::Second)?.to_string();
    let machine = crate::run::machine();
    eprintln!(
        "vacancy-bench freshness: {} cores, {} build; reproduce with: {command}",
        machine.cores, machine.build_profile
    );
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let stream = format!("VACANCY_BENCH_{tag}");
    let bus = BusConfig::Nats {
        url: args.nats_url.clone(),
        stream: stream.clone(),
        subject_prefix: format!("vacancy-bench.{tag}"),
        publish_timeout: Duration::from_secs(2),
    };
    let database_url = fresh_database_url(args.backend.backend()).await?;
    let outcome = on_database(args, &plan, &database_url, &bus, &tag).await;
    if args.keep_database {
        eprintln!("kept the database: {database_url}");
    } else if let Err(e) = drop_database(&database_url).await {
        eprintln!("warning: could not drop {database_url}: {e:#}");
    }
    if let Err(e) = delete_stream(&args.nats_url, &stream).await {
        eprintln!("warning: could not delete the NATS stream {stream}: {e:#}");
    }
    let measured = outcome?;
    Ok(FreshnessReport {
        tool: "vacancy-bench",
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        command,
        machine,
        backend: args.backend.name(),
        nats_url: without_credentials(&args.nats_url),
        stream,
        relay_replica: args.relay_replica.name(),
        relay_kept: measured.relay_kept,
        server_threads_per_replica: args.server_threads(),
        client_threads: args.client_threads(),
        rate: plan.rate,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        poll_interval_ms: args.poll_interval.as_secs_f64() * 1000.0,
        timeout_s: args.timeout.as_secs_f64(),
        dataset: measured.loaded,
        scheduled: plan.measured as u64,
        booked: measured.tally.booking.len(),
        booking_latency: nonempty(&measured.tally.booking),
        schedule_lag: nonempty(&measured.tally.schedule_lag),
        replica_b: measured.tally.b.report(),
        replica_a: measured.tally.a.report(),
        failures: measured.tally.failures,
        service_metric: measured.service,
        cpu: measured.cpu,
    })
}

/// How many bookings, how fast.
#[derive(Debug, Clone, Copy)]
struct Plan {
    rate: f64,
    warmup: usize,
    measured: usize,
    listings: usize,
}

impl Plan {
    fn of(args: &BenchArgs) -> anyhow::Result<Self> {
        let rate = args.rate.unwrap_or(DEFAULT_RATE);
        let warmup = (rate * args.warmup.as_secs_f64()).round() as usize;
        let measured = ((rate * args.duration.as_secs_f64()).round() as usize).max(1);
        let listings = args.listings();
        let total = warmup + measured;
        anyhow::ensure!(
            total as u64 <= args.max_requests,
            "{total} bookings exceed --max-requests {}",
            args.max_requests
        );
        anyhow::ensure!(
            total <= listings,
            "{total} bookings need as many listings (each booking has a listing of its own, so \
             each replica holds the listing's previous version when it is booked): pass \
             --listings {total} or more, or lower --rate, --duration or --warmup"
        );
        Ok(Self {
            rate,
            warmup,
            measured,
            listings,
        })
    }
}

/// What the run on one database produced.
struct Measured {
    loaded: LoadReport,
    tally: Tally,
    service: Option<ServiceLag>,
    relay_kept: bool,
    cpu: Option<CpuUsage>,
}

async fn on_database(
    args: &BenchArgs,
    plan: &Plan,
    database_url: &str,
    bus: &BusConfig,
    tag: &str,
) -> anyhow::Result<Measured> {
    let store = Store::connect(&StoreOptions::new(database_url.to_owned())).await?;
    let outcome = async {
        store.migrate().await?;
        let short = &tag[tag.len() - 6..];
        let spec = DatasetSpec {
            listings: plan.listings,
            booked_fraction: args.booked_fraction,
            contend_listings: 0,
            seed: args.seed,
            concurrency: args.load_concurrency,
            id_prefix: format!("f{short}-"),
        };
        eprintln!("loading {} listings…", spec.listings);
        let (data, loaded) = dataset::load(&Sink::Store(store.clone()), &spec).await?;
        eprintln!(
            "loaded {} listings, {} bookings, {} blocks in {:.1} s",
            loaded.listings, loaded.bookings, loaded.blocks, loaded.seconds
        );
        let holders = [format!("bench-{short}-a"), format!("bench-{short}-b")];
        let leader = match args.relay_replica {
            RelayReplica::A => holders[0].clone(),
            RelayReplica::B => holders[1].clone(),
        };
        // The chosen replica's name takes the lease before either starts; its relay renews it
        // as its own, and the other's is refused while it runs.
        let ttl = RelayConfig::default().lease_ttl;
        anyhow::ensure!(
            store
                .try_lease(LEASE, &leader, Timestamp::now(), ttl)
                .await?,
            "the outbox relay lease of a fresh database is taken"
        );
        let options = |holder: &str| ServiceOptions {
            db_max_connections: args.db_max_connections,
            max_concurrent_reads: args.max_concurrent_reads,
            shed_queue_wait: args.shed_queue_wait,
            shed_lag: args.service_shed_lag(),
            bus: bus.clone(),
            relay_holder: Some(holder.to_owned()),
            ..ServiceOptions::new(args.backend.backend(), args.server_threads())
        };
        let mut a = InProcessService::start_replica(database_url, &options(&holders[0])).await?;
        let mut b = match InProcessService::start_replica(database_url, &options(&holders[1])).await
        {
            Ok(b) => b,
            Err(e) => {
                a.stop().await.ok();
                return Err(e);
            }
        };
        eprintln!(
            "replica A at {}, replica B at {}; {} relays the outbox",
            a.addr(),
            b.addr(),
            args.relay_replica.name().to_uppercase()
        );
        let measured = measure(args, plan, &store, &a, &b, &data, &leader).await;
        let stopped = (a.stop().await, b.stop().await);
        let run = measured?;
        stopped.0?;
        stopped.1?;
        anyhow::Ok(Measured {
            loaded,
            tally: run.tally,
            service: run.service,
            relay_kept: run.relay_kept,
            cpu: run.cpu,
        })
    }
    .await;
    store.close().await;
    outcome
}

/// What the bookings produced, and what was seen around them.
struct Run {
    tally: Tally,
    service: Option<ServiceLag>,
    relay_kept: bool,
    cpu: Option<CpuUsage>,
}

async fn measure(
    args: &BenchArgs,
    plan: &Plan,
    store: &Store,
    a: &InProcessService,
    b: &InProcessService,
    data: &Dataset,
    leader: &str,
) -> anyhow::Result<Run> {
    let ttl = RelayConfig::default().lease_ttl;
    anyhow::ensure!(
        store
            .try_lease(LEASE, leader, Timestamp::now(), ttl)
            .await?,
        "the chosen replica lost the relay lease while starting"
    );
    wait_drained(store).await?;
    let context = Arc::new(Context {
        a: Pool::new(Target::new(a.addr())?.with_bearer(&a.admin_token()?)?),
        b: Pool::new(Target::new(b.addr())?.with_bearer(&b.admin_token()?)?),
        ids: data.listing_ids.clone(),
        today: data.today,
        prefix: data.id_prefix.clone(),
        timeout: args.timeout,
        poll_interval: args.poll_interval,
    });
    // The load's events are published; wait until both consumers have applied them, so the
    // service's histogram over the run does not count how long they waited in the outbox.
    wait_consumed(&context.a).await;
    let before = scrape_lag(&context.a).await;
    eprintln!(
        "freshness: {:.0} bookings/s through A, {:?} warm-up + {:?}, reading every {:?}…",
        plan.rate, args.warmup, args.duration, args.poll_interval
    );
    // Bookings are never queued behind a fixed number of connections: up to a second's worth
    // (or --connections, if more) run at once.
    let max_in_flight = args.connections.max(plan.rate.ceil() as usize).max(1);
    let cpu_before = CpuSample::now();
    let tally = drive(context.clone(), plan, max_in_flight).await;
    let cpu = match (cpu_before, CpuSample::now()) {
        (Some(a), Some(b)) => CpuUsage::between(&a, &b, crate::cli::cores()),
        _ => None,
    };
    let after = scrape_lag(&context.a).await;
    let service = match (before, after) {
        (Some(before), Some(after)) => Some(service_lag(&after.since(&before))),
        _ => None,
    };
    let relay_kept = store
        .try_lease(LEASE, leader, Timestamp::now(), ttl)
        .await
        .unwrap_or(false);
    let on_b = tally.b.report();
    let figure = |p: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
        p.map_or("-".to_owned(), |p| format!("{:.2}", f(&p)))
    };
    eprintln!(
        "  B applied {} of {} bookings; lag from the 201 p50 {} ms, p99 {} ms (lower bounds {} / {} ms)",
        on_b.applied,
        tally.booking.len(),
        figure(on_b.lag, |p| p.p50_ms),
        figure(on_b.lag, |p| p.p99_ms),
        figure(on_b.lag_lower_bound, |p| p.p50_ms),
        figure(on_b.lag_lower_bound, |p| p.p99_ms),
    );
    Ok(Run {
        tally,
        service,
        relay_kept,
        cpu,
    })
}

/// Waits until every event of the data load has left the outbox.
async fn wait_drained(store: &Store) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let backlog = store.outbox_backlog().await?;
        if backlog == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < DRAIN_TIMEOUT,
            "{backlog} events still in the outbox after {DRAIN_TIMEOUT:?}: is NATS reachable?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most ~10 s) until the replicas' event consumers are idle: the process-wide
/// `vacancy_events_consumed_total` stops moving for 200 ms.
async fn wait_consumed(pool: &Pool) {
    let filter = CounterFilter::new(&["vacancy_events_consumed_total"]);
    let mut last = None;
    for _ in 0..50 {
        let consumed = match pool
            .exchange(&Planned::get("/metrics"), Duration::from_secs(10))
            .await
        {
            Ok((status, body)) if status.is_success() => {
                Counters::parse(&String::from_utf8_lossy(&body), &filter)
                    .get("vacancy_events_consumed_total", "")
            }
            _ => None,
        };
        if consumed.is_some() && consumed == last {
            return;
        }
        last = consumed;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keep-alive connections to one replica, opened as needed and reused.
struct Pool {
    target: Target,
    idle: Mutex<Vec<Reconnecting>>,
}

impl Pool {
    fn new(target: Target) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn exchange(
        &self,
        planned: &Planned,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = taken.unwrap_or_else(|| Reconnecting::new(self.target.clone()));
        let result = conn.exchange(planned, timeout).await;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }
}

struct Context {
    a: Pool,
    b: Pool,
    ids: Vec<String>,
    today: Date,
    prefix: String,
    timeout: Duration,
    poll_interval: Duration,
}

/// Lags of one replica over the measured bookings (µs).
struct ReplicaTally {
    lag: Histogram<u64>,
    lower: Histogram<u64>,
    not_applied: u64,
    first_read_fresh: u64,
    reads: u64,
}

impl ReplicaTally {
    fn new() -> Self {
        Self {
            lag: new_histogram(),
            lower: new_histogram(),
            not_applied: 0,
            first_read_fresh: 0,
            reads: 0,
        }
    }

    fn record(&mut self, seen: &Seen) {
        self.lag.saturating_record(micros(seen.upper));
        self.lower.saturating_record(micros(seen.lower));
        self.reads += u64::from(seen.reads);
        if seen.reads == 1 {
            self.first_read_fresh += 1;
        }
    }

    fn report(&self) -> ReplicaLag {
        let applied = self.lag.len();
        ReplicaLag {
            applied,
            not_applied: self.not_applied,
            lag: nonempty(&self.lag),
            lag_lower_bound: nonempty(&self.lower),
            first_read_fresh: self.first_read_fresh,
            mean_reads: if applied > 0 {
                self.reads as f64 / applied as f64
            } else {
                0.0
            },
        }
    }
}

/// Everything the measured bookings produced.
struct Tally {
    booking: Histogram<u64>,
    schedule_lag: Histogram<u64>,
    a: ReplicaTally,
    b: ReplicaTally,
    failures: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            booking: new_histogram(),
            schedule_lag: new_histogram(),
            a: ReplicaTally::new(),
            b: ReplicaTally::new(),
            failures: BTreeMap::new(),
        }
    }

    fn fail(&mut self, cause: String) {
        *self.failures.entry(cause).or_default() += 1;
    }

    fn record(&mut self, outcome: Outcome) {
        self.schedule_lag
            .saturating_record(micros(outcome.schedule_lag));
        let booked = match outcome.result {
            Ok(booked) => booked,
            Err(cause) => return self.fail(cause),
        };
        self.booking.saturating_record(micros(booked.latency));
        for (replica, tally, seen) in [("a", &mut self.a, booked.a), ("b", &mut self.b, booked.b)] {
            match seen {
                Ok(Some(seen)) => tally.record(&seen),
                Ok(None) => tally.not_applied += 1,
                Err(cause) => {
                    tally.not_applied += 1;
                    *self
                        .failures
                        .entry(format!("read on {replica}: {cause}"))
                        .or_default() += 1;
                }
            }
        }
    }
}

/// One booking's outcome.
struct Outcome {
    schedule_lag: Duration,
    result: Result<Booked, String>,
}

struct Booked {
    latency: Duration,
    /// `Ok(None)`: not answered with the version within the timeout.
    a: Result<Option<Seen>, String>,
    b: Result<Option<Seen>, String>,
}

/// When a replica first answered the booked version, relative to the 201.
#[derive(Debug, Clone, Copy)]
struct Seen {
    upper: Duration,
    lower: Duration,
    reads: u32,
}

/// Starts booking `i` at `start + i / rate`, every booking on a task of its own; a booking due
/// while `max_in_flight` are still running is not started (counted as missed if measured), so
/// a stalled service cannot make the harness pile up tasks without bound.
async fn drive(context: Arc<Context>, plan: &Plan, max_in_flight: usize) -> Tally {
    let total = plan.warmup + plan.measured;
    let mut tally = Tally::new();
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now() + Duration::from_millis(20);
    let collect =
        |tally: &mut Tally, done: Result<(usize, Outcome), tokio::task::JoinError>| match done {
            Ok((i, outcome)) if i >= plan.warmup => tally.record(outcome),
            Ok(_) => {}
            Err(e) => tally.fail(format!("task: {e}")),
        };
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due.into()).await;
        while let Some(done) = tasks.try_join_next() {
            collect(&mut tally, done);
        }
        if tasks.len() >= max_in_flight {
            if i >= plan.warmup {
                tally.fail("missed (too many bookings in flight)".into());
            }
            continue;
        }
        let context = context.clone();
        tasks.spawn(async move {
            let schedule_lag = Instant::now().saturating_duration_since(due);
            let result = one_booking(&context, i).await;
            (
                i,
                Outcome {
                    schedule_lag,
                    result,
                },
            )
        });
    }
    // Every task ends within its timeouts: two reads, a booking and the wait for the version.
    while let Some(done) = tasks.join_next().await {
        collect(&mut tally, done);
    }
    tally
}

async fn one_booking(context: &Context, i: usize) -> Result<Booked, String> {
    let id = &context.ids[i];
    let check_in = day(context.today, BOOK_DAYS.start);
    let check_out = day(context.today, BOOK_DAYS.start + NIGHTS);
    let read = Planned::get(format!(
        "/v1/listings/{id}/availability?check_in={check_in}&check_out={check_out}"
    ));
    // Both replicas cache the listing's current version.
    let (on_a, on_b) = tokio::join!(
        read_version(&context.a, &read, context.timeout),
        read_version(&context.b, &read, context.timeout)
    );
    let before = on_a.map_err(|e| format!("first read on a: {e}"))?;
    on_b.map_err(|e| format!("first read on b: {e}"))?;
    let request = booking(
        id,
        check_in,
        check_out,
        &format!("{}fresh-{i}", context.prefix),
    );
    let sent = Instant::now();
    let (status, body) = context
        .a
        .exchange(&request, context.timeout)
        .await
        .map_err(|e| format!("booking: {}", e.kind()))?;
    let answered = Instant::now();
    if status != StatusCode::CREATED {
        return Err(format!("booking: {}", status.as_u16()));
    }
    let version = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["listing_version"].as_i64())
        .ok_or_else(|| "booking: no listing_version in the 201".to_owned())?;
    if version <= before {
        return Err(format!(
            "booking: listing_version {version} is not newer than {before}"
        ));
    }
    let deadline = answered + context.timeout;
    let (a, b) = tokio::join!(
        wait_for(&context.a, &read, version, answered, deadline, context),
        wait_for(&context.b, &read, version, answered, deadline, context)
    );
    Ok(Booked {
        latency: answered - sent,
        a,
        b,
    })
}

/// Reads the listing on a replica until it answers `version` or newer, or `deadline` passes.
async fn wait_for(
    pool: &Pool,
    read: &Planned,
    version: i64,
    answered: Instant,
    deadline: Instant,
    context: &Context,
) -> Result<Option<Seen>, String> {
    let mut last_stale_sent = None;
    for reads in 1..=MAX_POLLS {
        let sent = Instant::now();
        let left = deadline.saturating_duration_since(sent);
        if left.is_zero() {
            return Ok(None);
        }
        let seen = read_version(pool, read, left.min(context.timeout)).await?;
        let received = Instant::now();
        if seen >= version {
            return Ok(Some(Seen {
                upper: received - answered,
                lower: last_stale_sent.map_or(Duration::ZERO, |s: Instant| s - answered),
                reads,
            }));
        }
        last_stale_sent = Some(sent);
        let pause = context
            .poll_interval
            .max((received - answered).mul_f64(POLL_BACKOFF));
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(None)
}

/// The listing version a replica answers an availability read with.
async fn read_version(pool: &Pool, read: &Planned, timeout: Duration) -> Result<i64, String> {
    let (status, body) = pool
        .exchange(read, timeout)
        .await
        .map_err(|e| e.kind().to_owned())?;
    if status != StatusCode::OK {
        return Err(status.as_u16().to_string());
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["version"].as_i64())
        .ok_or_else(|| "no version in the answer".to_owned())
}

/// The service's freshness histogram now, or `None` (with a warning) when `/metrics` fails.
async fn scrape_lag(pool: &Pool) -> Option<Buckets> {
    match pool
        .exchange(&Planned::get("/metrics"), Duration::from_secs(10))
        .await
    {
        Ok((status, body)) if status.is_success() => {
            Some(Buckets::parse(&String::from_utf8_lossy(&body), LAG_METRIC))
        }
        Ok((status, _)) => {
            eprintln!("  warning: /metrics answered {status}; no service histogram");
            None
        }
        Err(e) => {
            eprintln!("  warning: cannot scrape /metrics ({e}); no service histogram");
            None
        }
    }
}

fn service_lag(delta: &Buckets) -> ServiceLag {
    let ms = |s: f64| s * 1000.0;
    let mut previous = 0.0;
    let buckets = delta
        .cumulative
        .iter()
        .map(|&(bound, n)| {
            let within = n - previous;
            previous = n;
            (ms(bound), within)
        })
        .collect();
    ServiceLag {
        count: delta.count,
        mean_ms: (delta.count > 0.0).then(|| ms(delta.sum / delta.count)),
        p50_ms: delta.quantile(0.5).map(ms),
        p99_ms: delta.quantile(0.99).map(ms),
        buckets,
    }
}

/// Deletes this run's stream, so runs leave nothing behind on the NATS server.
async fn delete_stream(url: &str, stream: &str) -> anyhow::Result<()> {
    let limit = Duration::from_secs(5);
    let client = tokio::time::timeout(limit, async_nats::connect(url)).await??;
    let js = async_nats::jetstream::new(client);
    tokio::time::timeout(limit, js.delete_stream(stream)).await??;
    Ok(())
}

/// `nats://user:secret@host:4222` → `nats://host:4222`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn nonempty(h: &Histogram<u64>) -> Option<Percentiles> {
    (!h.is_empty()).then(|| Percentiles::of(h))
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl FreshnessReport {
    /// The results as markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "### vacancy-bench freshness, {}\n", self.started_at);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(md, "{}", m.markdown_line());
        let _ = writeln!(
            md,
            "- two in-process replicas ({} runtime threads each) on one {} database, NATS JetStream at {} (stream {}); replica {} held the outbox relay lease{}",
            self.server_threads_per_replica,
            self.backend,
            self.nats_url,
            self.stream,
            self.relay_replica.to_uppercase(),
            if self.relay_kept {
                " throughout"
            } else {
                " (it did NOT hold it at the end: leadership moved)"
            },
        );
        let d = &self.dataset;
        let _ = writeln!(
            md,
            "- data: {} listings, {} bookings, {} blocks, loaded through the {} in {:.1} s",
            d.listings, d.bookings, d.blocks, d.via, d.seconds
        );
        let _ = writeln!(
            md,
            "- bookings through A at {:.0}/s, each on a listing of its own: {} s warm-up, then {} s measured ({} due, {} booked); each replica read every {} ms until it answered the booked version (timeout {} s)\n",
            self.rate,
            self.warmup_s,
            self.duration_s,
            self.scheduled,
            self.booked,
            self.poll_interval_ms,
            self.timeout_s
        );
        md.push_str(
            "Lag from A's 201 to the replica's first answer with the booked version (upper bound), \
             and to the last read that still had the old one (lower bound), in ms:\n\n\
             | replica | applied | not applied | p50 | p95 | p99 | p99.9 | max | lower bound p50 | lower bound p99 | first read fresh | reads per booking |\n\
             |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for (name, r) in [
            ("B (the other replica)", &self.replica_b),
            ("A (written to)", &self.replica_a),
        ] {
            let cell = |p: Option<Percentiles>, f: fn(&Percentiles) -> f64| {
                p.as_ref().map_or("-".to_owned(), |p| ms(f(p)))
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                r.applied,
                r.not_applied,
                cell(r.lag, |p| p.p50_ms),
                cell(r.lag, |p| p.p95_ms),
                cell(r.lag, |p| p.p99_ms),
                cell(r.lag, |p| p.p999_ms),
                cell(r.lag, |p| p.max_ms),
                cell(r.lag_lower_bound, |p| p.p50_ms),
                cell(r.lag_lower_bound, |p| p.p99_ms),
                r.first_read_fresh,
                r.mean_reads,
            );
        }
        if let Some(l) = &self.booking_latency {
            let _ = writeln!(
                md,
                "\nBookings on A: p50 {} ms, p99 {} ms, max {} ms.",
                ms(l.p50_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            );
        }
        if let Some(c) = &self.cpu {
            let _ = writeln!(
                md,
                "CPU during the bookings, in cores: {:.2} this process (both replicas and the harness), {:.2} PostgreSQL, {:.2} other processes.",
                c.this_process_cores, c.postgres_cores, c.other_cores
            );
        }
        if let Some(l) = &self.schedule_lag {
            let _ = writeln!(
                md,
                "Bookings started late by p99 {} ms, max {} ms.",
                ms(l.p99_ms),
                ms(l.max_ms)
            );
        }
        if !self.failures.is_empty() {
            let parts: Vec<String> = self
                .failures
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let _ = writeln!(md, "\nFailures: {}.", parts.join(", "));
        }
        if let Some(s) = &self.service_metric {
            let opt = |v: Option<f64>| v.map_or("-".to_owned(), ms);
            let _ = writeln!(
                md,
                "\nThe service's own `{LAG_METRIC}` over the run (both replicas in one registry, \
                 warm-up included; from the event's `at_ms`, the write's start in whole ms, to \
                 the end of applying it): {} observations, mean {} ms, p50 {} ms, p99 {} ms \
                 (interpolated from its buckets).",
                s.count,
                opt(s.mean_ms),
                opt(s.p50_ms),
                opt(s.p99_ms)
            );
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_reported() {
        assert_eq!(
            without_credentials("nats://u:p@127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(
            without_credentials("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }

    #[test]
    fn a_plan_needs_a_listing_per_booking() {
        use clap::Parser;
        let args = |extra: &[&str]| {
            BenchArgs::try_parse_from(
                ["vacancy-bench", "--scenario", "freshness"]
                    .iter()
                    .chain(extra),
            )
            .expect("parse")
        };
        let plan = Plan::of(&args(&[
            "--rate",
            "100",
            "--duration",
            "2s",
            "--warmup",
            "1s",
        ]))
        .expect("plan");
        assert_eq!((plan.warmup, plan.measured), (100, 200));
        assert!(
            Plan::of(&args(&[
                "--rate",
                "100",
                "--duration",
                "2s",
                "--listings",
                "250"
            ]))
            .is_err()
        );
    }
}
