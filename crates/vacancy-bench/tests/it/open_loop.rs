//! Open loop sends rate × duration requests, whatever the server does, and counts waiting
//! behind a slow server as latency (no coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use vacancy_bench::engine::{Pace, PhaseSpec, Workload, run_phase};
use vacancy_bench::http::Planned;

use crate::support::StatusServer;

struct Fixed(&'static str);

impl Workload for Fixed {
    fn next_request(&self, _rng: &mut SmallRng) -> Planned {
        Planned::get(self.0)
    }
}

fn open(per_second: f64, warmup_ms: u64, duration_ms: u64) -> PhaseSpec {
    PhaseSpec {
        pace: Pace::Open { per_second },
        connections: 4,
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(duration_ms),
        timeout: Duration::from_secs(5),
        max_requests: 1_000_000,
        drain: Duration::from_secs(5),
        seed: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_rate_times_duration_requests() {
    let server = StatusServer::start().await;
    let outcome = run_phase(
        &server.target,
        Arc::new(Fixed("/status/200")),
        &open(400.0, 0, 500),
    )
    .await
    .expect("phase");
    // 400/s for 0.5 s: requests 0..200 are due, each sent exactly once.
    assert_eq!(outcome.scheduled, Some(200));
    assert_eq!(outcome.missed, 0);
    assert_eq!(outcome.tally.requests(), 200);
    assert_eq!(outcome.tally.status_count(200), 200);
    assert_eq!(server.total(), 200);
    assert!(outcome.tally.send_lag.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_is_paced_too_but_not_measured() {
    let server = StatusServer::start().await;
    let outcome = run_phase(
        &server.target,
        Arc::new(Fixed("/status/200")),
        &open(400.0, 250, 500),
    )
    .await
    .expect("phase");
    assert_eq!(outcome.tally.warmup_requests, 100);
    assert_eq!(outcome.tally.requests(), 200);
    assert_eq!(server.total(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_behind_a_slow_server_counts_as_latency() {
    let server = StatusServer::start().await;
    // One connection, 100 requests/s due, 50 ms per answer: the server serves 20/s, so the
    // schedule falls further behind with every request.
    let spec = PhaseSpec {
        connections: 1,
        drain: Duration::ZERO,
        ..open(100.0, 0, 500)
    };
    let outcome = run_phase(&server.target, Arc::new(Fixed("/slow")), &spec)
        .await
        .expect("phase");
    let tally = &outcome.tally;
    assert_eq!(outcome.scheduled, Some(50));
    assert!(outcome.missed > 0, "most due requests could not be sent");
    assert_eq!(tally.requests() + outcome.missed, 50);
    assert_eq!(server.total(), tally.requests());
    // Request k is due at 10k ms but leaves at about 50k ms: its latency includes the wait,
    // far beyond the 50 ms the server takes per answer.
    let worst_ms = tally.latency_all().max() / 1000;
    assert!(worst_ms >= 250, "worst latency {worst_ms} ms");
}
