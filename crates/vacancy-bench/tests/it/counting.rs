//! The harness counts requests, statuses and transport errors exactly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use vacancy_bench::engine::{Pace, PhaseSpec, Workload, run_phase};
use vacancy_bench::http::{Planned, Target};
use vacancy_bench::report::PhaseReport;
use vacancy_bench::scenarios::Scenario;

use crate::support::{StatusServer, closing_server, silent_server};

/// Out of every 10 requests: 6 answered 200, 3 answered 409, 1 answered 503.
#[derive(Default)]
struct Mix {
    next: AtomicU64,
}

impl Workload for Mix {
    fn next_request(&self, _rng: &mut SmallRng) -> Planned {
        let code = match self.next.fetch_add(1, Ordering::Relaxed) % 10 {
            0..=5 => 200,
            6..=8 => 409,
            _ => 503,
        };
        Planned::get(format!("/status/{code}"))
    }
}

fn closed(connections: usize, max_requests: u64) -> PhaseSpec {
    PhaseSpec {
        pace: Pace::Closed,
        connections,
        warmup: Duration::ZERO,
        // The count bound ends these phases; the time bound is only a safety net.
        duration: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        max_requests,
        drain: Duration::ZERO,
        seed: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_every_status_exactly() {
    let server = StatusServer::start().await;
    let outcome = run_phase(&server.target, Arc::new(Mix::default()), &closed(4, 1000))
        .await
        .expect("phase");
    let tally = &outcome.tally;
    assert_eq!(tally.status_count(200), 600);
    assert_eq!(tally.status_count(409), 300);
    assert_eq!(tally.status_count(503), 100);
    assert_eq!(tally.transport_error_count(), 0);
    assert_eq!(tally.requests(), 1000);
    assert_eq!(tally.latency_all().len(), 1000);
    assert_eq!(
        server.counts(),
        BTreeMap::from([(200, 600), (409, 300), (503, 100)])
    );
    // In the report, a scenario expecting 200 counts the 409s and 503s as errors.
    let report = PhaseReport::new(Scenario::Check, &outcome, Vec::new());
    assert_eq!(
        (report.requests, report.ok, report.errors),
        (1000, 600, 400)
    );
    assert_eq!(
        report.statuses,
        BTreeMap::from([(200, 600), (409, 300), (503, 100)])
    );
    // The contend scenario expects 201 and 409: only the 200s and 503s are errors there.
    let report = PhaseReport::new(Scenario::Contend, &outcome, Vec::new());
    assert_eq!((report.ok, report.errors), (300, 700));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_requests_are_sent_but_not_measured() {
    let server = StatusServer::start().await;
    let spec = PhaseSpec {
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(300),
        max_requests: 1_000_000,
        ..closed(2, 0)
    };
    let outcome = run_phase(&server.target, Arc::new(Mix::default()), &spec)
        .await
        .expect("phase");
    let tally = &outcome.tally;
    assert!(tally.warmup_requests > 0 && tally.requests() > 0);
    assert_eq!(server.total(), tally.warmup_requests + tally.requests());
    let measured: u64 = [200, 409, 503].iter().map(|s| tally.status_count(*s)).sum();
    assert_eq!(measured, tally.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connections_are_transport_errors() {
    let target = Target::new(closing_server().await).expect("target");
    let outcome = run_phase(&target, Arc::new(Mix::default()), &closed(2, 20))
        .await
        .expect("phase");
    assert_eq!(outcome.tally.responses(), 0);
    assert_eq!(outcome.tally.transport_error_count(), 20);
    assert_eq!(outcome.tally.requests(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_time_out() {
    let target = Target::new(silent_server().await).expect("target");
    let spec = PhaseSpec {
        timeout: Duration::from_millis(100),
        ..closed(2, 4)
    };
    let outcome = run_phase(&target, Arc::new(Mix::default()), &spec)
        .await
        .expect("phase");
    assert_eq!(
        outcome.tally.transport_errors,
        BTreeMap::from([("timeout".to_owned(), 4)])
    );
}

#[tokio::test]
async fn only_loopback_is_a_target() {
    assert!(Target::new("10.1.2.3:80".parse().expect("address")).is_err());
    assert!(Target::from_url("https://127.0.0.1:1").await.is_err());
    let t = Target::from_url("http://127.0.0.1:8080/x")
        .await
        .expect("loopback");
    assert_eq!(t.addr().port(), 8080);
}
