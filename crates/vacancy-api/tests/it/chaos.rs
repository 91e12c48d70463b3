//! Chaos: a TCP proxy between the service and each dependency delays, blackholes, cuts and
//! restores its connections while clients book and read. Whatever happens, no night is
//! overbooked, no event is lost, and the only errors are the designed ones — 503 with
//! `Retry-After`, answered fast — and the breakers open and close as designed.
//!
//! Each test is bounded: a fixed timeline of a few seconds and bounded retries afterwards.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_api::clock::ManualClock;
use vacancy_cache::CacheConfig;
use vacancy_events::BusConfig;
use vacancy_l2::{BreakerConfig as L2BreakerConfig, L2Config, L2Mode};
use vacancy_store::testing::fresh_database_url;
use vacancy_store::{Backend, BreakerConfig, DbPolicy, RetryPolicy, Store, StoreOptions};

use crate::helpers::{START, TestApp, spawn_custom};
use crate::nats::{private_bus, shared_url};
use crate::proxy::{Proxy, through, upstream_of};

/// The longest any request may take to be answered, even during an outage: the service's
/// deadlines here are 300 ms (reads) and 600 ms (writes); the rest is slack for a busy machine.
const ANSWERED_FAST: Duration = Duration::from_secs(3);

/// One request the load made and what came back.
#[derive(Debug, Clone)]
struct Outcome {
    write: bool,
    /// A listing that only ever gets reads.
    quiet: bool,
    status: StatusCode,
    problem: String,
    retry_after: bool,
    stale: bool,
    took: Duration,
    /// For writes: the request, to send again with the same key after the outage.
    key: Option<String>,
    body: Value,
    booking_id: Option<String>,
}

struct Load {
    app: Arc<TestApp>,
    busy: Vec<String>,
    quiet: Vec<String>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Writers book random short stays on the busy listings; readers check busy and quiet
    /// listings (quiet ones are never written, so their cached copies stay usable).
    fn run(&self, writers: usize, readers: usize) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (app, busy, stop) = (self.app.clone(), self.busy.clone(), self.stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (listing, day, nights) = {
                        let mut rng = rand::rng();
                        (
                            busy[rng.random_range(0..busy.len())].clone(),
                            rng.random_range(1..=25u32),
                            rng.random_range(1..=3u32),
                        )
                    };
                    let body = json!({ "listing_id": listing, "guest_id": "guest-1", "units": 1,
                        "check_in": format!("2030-02-{day:02}"),
                        "check_out": format!("2030-02-{:02}", day + nights) });
                    let key = format!("chaos-{w}-{n}");
                    n += 1;
                    let o = send_write(&app, &body, &key).await;
                    // Like a client that backs off after a 503 (less than Retry-After asks,
                    // to keep the pressure on).
                    let pause = if o.status == StatusCode::SERVICE_UNAVAILABLE {
                        200
                    } else {
                        5
                    };
                    out.push(o);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                out
            }));
        }
        for r in 0..readers {
            let (app, busy, quiet, stop) = (
                self.app.clone(),
                self.busy.clone(),
                self.quiet.clone(),
                self.stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let is_quiet = (n + r).is_multiple_of(2);
                    let pool = if is_quiet { &quiet } else { &busy };
                    let listing = &pool[n % pool.len()];
                    n += 1;
                    let path = format!(
                        "/v1/listings/{listing}/availability?check_in=2030-02-10&check_out=2030-02-12"
                    );
                    let started = Instant::now();
                    let reply = app.get(&path).await;
                    out.push(outcome(false, is_quiet, &reply, started.elapsed(), None, Value::Null));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                out
            }));
        }
        tasks
    }
}

/// Creates `busy` + `quiet` listings on `app` (the quiet ones read once, so they are cached)
/// and starts `writers` and `readers` on them.
async fn start_load(
    app: &Arc<TestApp>,
    (busy, quiet): (usize, usize),
    (writers, readers): (usize, usize),
) -> (Load, Vec<tokio::task::JoinHandle<Vec<Outcome>>>) {
    let load = Load {
        app: app.clone(),
        busy: listings(app, busy).await,
        quiet: listings(app, quiet).await,
        stop: Arc::new(AtomicBool::new(false)),
    };
    warm(app, &load.quiet).await;
    let tasks = load.run(writers, readers);
    (load, tasks)
}

/// Stops the load and collects what every client saw.
async fn stop_load(load: &Load, tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    load.stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("load task"));
    }
    outcomes
}

async fn send_write(app: &TestApp, body: &Value, key: &str) -> Outcome {
    let started = Instant::now();
    let reply = app.post_with_key("/v1/bookings", body, Some(key)).await;
    outcome(
        true,
        false,
        &reply,
        started.elapsed(),
        Some(key.to_owned()),
        body.clone(),
    )
}

fn outcome(
    write: bool,
    quiet: bool,
    reply: &crate::helpers::Reply,
    took: Duration,
    key: Option<String>,
    body: Value,
) -> Outcome {
    Outcome {
        write,
        quiet,
        status: reply.status,
        problem: reply.problem().to_owned(),
        retry_after: reply.headers.contains_key("retry-after"),
        stale: reply
            .headers
            .get("x-vacancy-stale")
            .is_some_and(|v| v == "true"),
        took,
        key,
        body,
        booking_id: (reply.status == StatusCode::CREATED)
            .then(|| reply.body["id"].as_str().map(str::to_owned))
            .flatten(),
    }
}

/// Asserts every outcome is a designed one, answered fast; prints what happened.
fn assert_only_designed_errors(outcomes: &[Outcome]) {
    let mut summary: std::collections::BTreeMap<String, (usize, Duration)> = Default::default();
    for o in outcomes {
        let kind = format!(
            "{} {}{}",
            if o.write { "write" } else { "read" },
            o.status.as_u16(),
            if o.stale { " stale" } else { "" }
        );
        let slot = summary.entry(kind).or_default();
        slot.0 += 1;
        slot.1 = slot.1.max(o.took);
    }
    eprintln!("outcomes (count, slowest): {summary:?}");
    for o in outcomes {
        match o.status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::CONFLICT => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    matches!(o.problem.as_str(), "database-unavailable" | "overloaded"),
                    "unexpected 503 problem: {o:?}"
                );
                assert!(o.retry_after, "a 503 without Retry-After: {o:?}");
            }
            other => panic!("an undesigned answer {other}: {o:?}"),
        }
        assert!(o.took < ANSWERED_FAST, "answered slowly: {o:?}");
    }
}

/// The value of the sample of `name` whose labels include every one of `labels`.
async fn metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn labels<'a>(owned: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Sends every write that got a 503 again with its key until it has a final answer, the way
/// a client honouring `Retry-After` would. In-flight keys of abandoned attempts are taken over
/// once their lease (1 s on the service clock) has passed.
async fn retry_unfinished(app: &TestApp, clock: &ManualClock, outcomes: &mut Vec<Outcome>) {
    let unfinished: Vec<Outcome> = outcomes
        .iter()
        .filter(|o| o.write && o.status == StatusCode::SERVICE_UNAVAILABLE)
        .cloned()
        .collect();
    for first in unfinished {
        let key = first.key.clone().expect("a write has a key");
        let mut last = None;
        for _ in 0..40 {
            let o = send_write(app, &first.body, &key).await;
            if o.status == StatusCode::CONFLICT && o.problem == "idempotency-request-in-flight" {
                clock.advance(jiff::SignedDuration::from_secs(2));
                continue;
            }
            if o.status == StatusCode::SERVICE_UNAVAILABLE {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            last = Some(o);
            break;
        }
        let last = last.unwrap_or_else(|| panic!("key {key} never got a final answer"));
        assert!(
            matches!(last.status, StatusCode::CREATED | StatusCode::CONFLICT),
            "{last:?}"
        );
        outcomes.push(last);
    }
}

/// Waits (bounded) until the relay has published every outbox event.
async fn drained(store: &Store) {
    for _ in 0..300 {
        if store.outbox_backlog().await.expect("backlog") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox did not drain");
}

/// Every booking a client was told about exists once, with its event published once.
async fn assert_nothing_lost(checker: &Store, bus: &BusConfig, outcomes: &[Outcome]) {
    drained(checker).await;
    let findings = checker
        .audit(START.parse().expect("instant"))
        .await
        .expect("audit");
    assert!(findings.is_empty(), "overbooked: {findings:?}");
    let events = checker.outbox_after(0, 1_000_000).await.expect("outbox");
    let booked_events: BTreeSet<String> = events
        .iter()
        .filter(|(_, e)| e.kind == "booking.created")
        .filter_map(|(_, e)| e.claim_id.clone())
        .collect();
    let told: BTreeSet<String> = outcomes
        .iter()
        .filter_map(|o| o.booking_id.clone())
        .collect();
    assert_eq!(
        told, booked_events,
        "the bookings clients were told of are exactly those committed"
    );
    let BusConfig::Nats { url, stream, .. } = bus else {
        unreachable!("a NATS bus")
    };
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut info = js.get_stream(stream).await.expect("stream");
    let messages = info.info().await.expect("stream info").state.messages;
    assert_eq!(
        messages,
        events.len() as u64,
        "every outbox event is in the stream exactly once"
    );
}

async fn listings(app: &TestApp, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(app.listing(2, json!({})).await);
    }
    out
}

/// Reads each listing once so its calendar is cached.
async fn warm(app: &TestApp, ids: &[String]) {
    for id in ids {
        let path =
            format!("/v1/listings/{id}/availability?check_in=2030-02-10&check_out=2030-02-12");
        assert_eq!(app.get(&path).await.status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_slow_partitioned_and_cut_under_load() {
    let direct = fresh_database_url(Backend::Postgres)
        .await
        .expect("fresh database");
    let proxy = Proxy::start(upstream_of(&direct)).await;
    let via_proxy = through(&direct, &proxy);
    let clock = Arc::new(ManualClock::new(START.parse().expect("start")));
    let bus = private_bus(&shared_url());
    let app = spawn_custom(&via_proxy, clock.clone(), |config| {
        config.store.policy = DbPolicy {
            read_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(600),
            breaker: BreakerConfig {
                failure_threshold: 3,
                cool_down: Duration::from_millis(300),
            },
            retry: RetryPolicy::default(),
        };
        config.cache = CacheConfig {
            ttl: Duration::from_millis(400),
            fresh_for: Duration::from_millis(400),
            ..CacheConfig::default()
        };
        config.api.idempotency_lease = Duration::from_secs(1);
        config.bus = bus.clone();
    })
    .await;
    let checker = Store::connect(&StoreOptions::new(&direct))
        .await
        .expect("direct connection");
    let instance = via_proxy.clone();
    let breaker = |to: &'static str| {
        [
            ("dependency", "database".to_owned()),
            ("instance", instance.clone()),
            ("to", to.to_owned()),
        ]
    };

    let app = Arc::new(app);
    let (load, tasks) = start_load(&app, (4, 2), (6, 4)).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.delay(Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.blackhole();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A search page's batch over cached listings is answered from the expired copies.
    let batch = app
        .post(
            "/v1/availability/batch",
            &json!({ "listing_ids": load.quiet, "check_in": "2030-02-10", "check_out": "2030-02-12" }),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
    assert_eq!(
        batch.headers.get("x-vacancy-stale").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert!(batch.headers.contains_key("age"));
    assert_eq!(
        batch.body["available"].as_array().map(Vec::len),
        Some(load.quiet.len())
    );
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready while the database is away"
    );
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut outcomes = stop_load(&load, tasks).await;
    assert_only_designed_errors(&outcomes);
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    assert!(
        count(&|o| o.write && o.status == StatusCode::SERVICE_UNAVAILABLE) > 0,
        "the outage was felt by writes"
    );
    assert!(
        count(&|o| o.write && o.status == StatusCode::CREATED) > 0,
        "bookings went through around the outage"
    );
    // Reads of cached listings keep answering, marked stale once their copy has expired.
    assert!(
        count(&|o| o.stale) > 0,
        "stale copies answered during the outage"
    );
    assert_eq!(
        count(&|o| o.quiet && o.status != StatusCode::OK),
        0,
        "every read of a cached listing was answered: {:?}",
        outcomes
            .iter()
            .filter(|o| o.quiet && o.status != StatusCode::OK)
            .take(3)
            .collect::<Vec<_>>()
    );
    // The breaker opened, and closed again once the database answered.
    let opened = metric(
        &app,
        "vacancy_breaker_transitions_total",
        &labels(&breaker("open")),
    )
    .await;
    assert!(opened.unwrap_or(0.0) >= 1.0, "the database breaker opened");
    let mut closed = false;
    for _ in 0..100 {
        // Any call may be the half-open probe.
        app.get("/readyz").await;
        let state = metric(
            &app,
            "vacancy_breaker_state",
            &[("dependency", "database"), ("instance", &instance)],
        )
        .await;
        if state == Some(0.0) {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the database breaker closed again");
    assert!(
        metric(
            &app,
            "vacancy_breaker_transitions_total",
            &labels(&breaker("closed"))
        )
        .await
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);

    retry_unfinished(&app, &clock, &mut outcomes).await;
    assert_nothing_lost(&checker, &bus, &outcomes).await;
    let _ = checker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slow_and_cut_under_load_fails_nothing() {
    let redis_url =
        std::env::var("VACANCY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let proxy = Proxy::start(upstream_of(&redis_url)).await;
    let direct = fresh_database_url(Backend::Postgres)
        .await
        .expect("fresh database");
    let clock = Arc::new(ManualClock::new(START.parse().expect("start")));
    let bus = private_bus(&shared_url());
    let l2 = L2Config {
        op_timeout: Duration::from_millis(50),
        breaker: L2BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_millis(300),
        },
        ..L2Config::new(L2Mode::Standalone(through(&redis_url, &proxy)))
    };
    let app = spawn_custom(&direct, clock.clone(), |config| {
        config.l2 = Some(l2);
        config.cache = CacheConfig {
            ttl: Duration::from_millis(300),
            fresh_for: Duration::from_millis(300),
            ..CacheConfig::default()
        };
        config.bus = bus.clone();
    })
    .await;
    let app = Arc::new(app);
    let (load, tasks) = start_load(&app, (4, 4), (4, 4)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.delay(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let outcomes = stop_load(&load, tasks).await;
    assert_only_designed_errors(&outcomes);
    let statuses: HashMap<StatusCode, usize> = outcomes.iter().fold(HashMap::new(), |mut m, o| {
        *m.entry(o.status).or_default() += 1;
        m
    });
    assert!(
        statuses.keys().all(|s| matches!(
            *s,
            StatusCode::OK | StatusCode::CREATED | StatusCode::CONFLICT
        )),
        "Redis trouble failed requests: {statuses:?}"
    );
    assert!(outcomes.iter().all(|o| o.took < ANSWERED_FAST));
    let node = format!("{}/0", proxy.addr());
    let opened = metric(
        &app,
        "vacancy_breaker_transitions_total",
        &[("dependency", "redis"), ("instance", &node), ("to", "open")],
    )
    .await;
    assert!(opened.unwrap_or(0.0) >= 1.0, "the L2 breaker opened");
    // Closed again after the restore (reads keep probing it).
    let mut closed = false;
    for _ in 0..50 {
        warm(&app, &load.quiet).await;
        let state = metric(
            &app,
            "vacancy_breaker_state",
            &[("dependency", "redis"), ("instance", &node)],
        )
        .await;
        if state == Some(0.0) {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the L2 breaker closed again once Redis answered");
    let checker = Store::connect(&StoreOptions::new(&direct))
        .await
        .expect("direct connection");
    assert_nothing_lost(&checker, &bus, &outcomes).await;
    checker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_slow_and_cut_loses_no_event() {
    let nats_url = shared_url();
    let proxy = Proxy::start(upstream_of(&nats_url)).await;
    let direct = fresh_database_url(Backend::Postgres)
        .await
        .expect("fresh database");
    let clock = Arc::new(ManualClock::new(START.parse().expect("start")));
    let bus = private_bus(&through(&nats_url, &proxy));
    let app = spawn_custom(&direct, clock.clone(), |config| {
        config.bus = bus.clone().with_publish_timeout(Duration::from_millis(300));
        config.api.ready_max_backlog = 5;
    })
    .await;
    let app = Arc::new(app);
    let (load, tasks) = start_load(&app, (4, 2), (4, 2)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.delay(Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let backlog = app.store.outbox_backlog().await.expect("backlog");
    let ready = app.get("/readyz").await;
    assert!(
        backlog > 5,
        "events waited in the outbox while NATS was cut off"
    );
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert!(
        ready.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("wait for the relay"),
        "{}",
        ready.body
    );
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let outcomes = stop_load(&load, tasks).await;
    assert!(
        outcomes.iter().all(|o| matches!(
            o.status,
            StatusCode::OK | StatusCode::CREATED | StatusCode::CONFLICT
        )),
        "NATS trouble failed requests"
    );
    assert_only_designed_errors(&outcomes);
    assert!(outcomes.iter().all(|o| o.took < ANSWERED_FAST));
    assert!(
        backlog > 0,
        "events waited in the outbox while NATS was cut off"
    );
    // Count the stream through NATS directly (not through the proxy).
    let BusConfig::Nats {
        stream,
        subject_prefix,
        publish_timeout,
        ..
    } = bus
    else {
        unreachable!("a NATS bus")
    };
    let direct_bus = BusConfig::Nats {
        url: nats_url,
        stream,
        subject_prefix,
        publish_timeout,
    };
    let checker = Store::connect(&StoreOptions::new(&direct))
        .await
        .expect("direct connection");
    assert_nothing_lost(&checker, &direct_bus, &outcomes).await;
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::OK,
        "ready once drained"
    );
    checker.close().await;
}
