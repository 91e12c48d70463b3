//! The freshness mode end to end: two replicas on one PostgreSQL database and NATS JetStream,
//! bookings through A, every one of them seen on B, and the relay where it was asked to be.

use clap::Parser;
use vacancy_bench::cli::BenchArgs;
use vacancy_bench::freshness::{FreshnessReport, run};

fn nats_url() -> String {
    std::env::var("VACANCY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn freshness(relay: &str) -> FreshnessReport {
    let nats = nats_url();
    let args = BenchArgs::try_parse_from([
        "vacancy-bench",
        "--scenario",
        "freshness",
        "--backend",
        "postgres",
        "--nats-url",
        &nats,
        "--relay-replica",
        relay,
        "--listings",
        "60",
        "--rate",
        "40",
        "--warmup",
        "250ms",
        "--duration",
        "1s",
        "--server-threads",
        "1",
        "--db-max-connections",
        "4",
    ])
    .expect("arguments");
    run(&args, "test".into()).await.expect("run")
}

fn assert_every_booking_reached_both(report: &FreshnessReport) {
    assert_eq!(report.scheduled, 40);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.booked, report.scheduled);
    assert!(
        report.relay_kept,
        "replica {} kept the relay lease",
        report.relay_replica
    );
    let b = &report.replica_b;
    assert_eq!((b.applied, b.not_applied), (report.booked, 0));
    let lag = b.lag.expect("B's lag");
    assert_eq!(lag.count, report.booked);
    let lower = b.lag_lower_bound.expect("B's lower bound");
    assert_eq!(lower.count, report.booked);
    assert!(lower.p50_ms <= lag.p50_ms && lower.max_ms <= lag.max_ms);
    assert!(b.mean_reads >= 1.0);
    // A answers its own write at once: its commit hook noted the version before the 201.
    let a = &report.replica_a;
    assert_eq!(a.applied, report.booked);
    assert_eq!(a.first_read_fresh, report.booked);
    // The service measured at least B's applications too (the registry is process-wide, so
    // other tests' events may be in it as well).
    let service = report
        .service_metric
        .as_ref()
        .expect("the service's histogram");
    assert!(service.count >= report.booked as f64, "{service:?}");
    assert!(service.p99_ms.is_some());
    let markdown = report.to_markdown();
    assert!(
        markdown.contains("| B (the other replica) | 40 | 0 |"),
        "{markdown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_booking_on_a_is_applied_on_b_when_a_relays() {
    let report = freshness("a").await;
    assert_eq!(report.relay_replica, "a");
    assert_eq!(report.backend, "postgres");
    assert_every_booking_reached_both(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_booking_on_a_is_applied_on_b_when_b_relays() {
    let report = freshness("b").await;
    assert_eq!(report.relay_replica, "b");
    assert_every_booking_reached_both(&report);
}
