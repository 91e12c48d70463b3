//! Small complete runs against the real service: every scenario's requests are valid (no
//! unexpected status), contention ends without overbooking, and the outputs are written.

use clap::Parser;
use vacancy_bench::cli::BenchArgs;
use vacancy_bench::engine::Pace;
use vacancy_bench::report::BenchReport;
use vacancy_bench::run::{overbookings, run, write_outputs};
use vacancy_bench::service::{InProcessService, ServiceOptions};
use vacancy_store::Backend;

/// Small defaults, each replaced by the same option in `extra` (clap refuses an option given
/// twice).
fn args(extra: &[&str]) -> BenchArgs {
    let base = [
        ["--listings", "60"],
        ["--contend-listings", "2"],
        ["--duration", "300ms"],
        ["--warmup", "100ms"],
        ["--connections", "4"],
        ["--batch-size", "50"],
    ];
    let kept = base
        .iter()
        .filter(|[option, _]| !extra.contains(option))
        .flatten();
    BenchArgs::try_parse_from(std::iter::once(&"vacancy-bench").chain(kept).chain(extra))
        .expect("arguments")
}

fn assert_no_unexpected_status(report: &BenchReport) {
    for scenario in &report.scenarios {
        for phase in &scenario.phases {
            assert!(phase.requests > 0, "{} sent nothing", scenario.name);
            assert_eq!(
                phase.errors,
                0,
                "{} {}: {:?} {:?}",
                scenario.name,
                phase.mode_label(),
                phase.statuses,
                phase.transport_errors
            );
        }
    }
}

fn assert_contention_was_audited(report: &BenchReport) {
    let contend = report
        .scenarios
        .iter()
        .find(|s| s.name == "contend")
        .expect("contend ran");
    let c = contend.contention.as_ref().expect("contention report");
    assert_eq!(c.overbookings, Some(0), "{:?}", c.findings);
    // Contention happened (someone was refused). Whether any measured request still won
    // depends on how many the warm-up already placed on this machine, so it is not asserted.
    assert!(c.conflicts > 0, "{c:?}");
    let requests: u64 = contend.phases.iter().map(|p| p.requests).sum();
    assert_eq!(c.winners + c.conflicts, requests);
    assert_eq!(overbookings(report), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("vacancy-bench-{}", uuid::Uuid::now_v7()));
    let (json, md, svg) = (dir.join("r.json"), dir.join("r.md"), dir.join("l.svg"));
    let mut extra = vec!["--scenario", "all", "--open-loop-at", "0.5"];
    let paths = [
        json.display().to_string(),
        md.display().to_string(),
        svg.display().to_string(),
    ];
    extra.extend([
        "--out",
        &paths[0],
        "--markdown",
        &paths[1],
        "--svg",
        &paths[2],
    ]);
    let args = args(&extra);
    let report = run(&args, "test".into()).await.expect("run");
    assert_eq!(report.scenarios.len(), 7);
    for scenario in &report.scenarios {
        let paces: Vec<Pace> = scenario.phases.iter().map(|p| p.pace).collect();
        assert_eq!(paces.len(), 2, "{}", scenario.name);
        assert_eq!(paces[0], Pace::Closed);
        assert!(matches!(paces[1], Pace::Open { .. }));
    }
    assert_no_unexpected_status(&report);
    assert_contention_was_audited(&report);
    assert!(report.ratios.check_over_baseline.is_some());
    assert!(report.ratios.check_over_direct_db.is_some());
    // The service counted the checks it answered.
    let check = &report.scenarios[1].phases[0];
    let served: f64 = check
        .counters
        .iter()
        .filter(|c| c.name == "http_requests_total" && c.labels.contains("/availability"))
        .map(|c| c.delta)
        .sum();
    assert!(
        served >= check.requests as f64,
        "{served} < {}",
        check.requests
    );

    let markdown = write_outputs(&report, &args).expect("outputs");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(written["scenarios"].as_array().map(Vec::len), Some(7));
    assert_eq!(std::fs::read_to_string(&md).expect("markdown"), markdown);
    assert!(markdown.contains("| contend | closed |") && markdown.contains("check / baseline"));
    let plot = std::fs::read_to_string(&svg).expect("svg");
    assert_eq!(plot.matches("<polyline").count(), 14);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_and_contention_on_postgres() {
    let report = run(
        &args(&["--backend", "postgres", "--scenario", "book,contend"]),
        "test".into(),
    )
    .await
    .expect("run");
    assert_eq!(report.target.backend, Some("postgres"));
    assert_no_unexpected_status(&report);
    assert_contention_was_audited(&report);
}

/// Against a service the harness did not start: data goes through the HTTP API, and the audit
/// reaches the database only because it is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_service_by_url() {
    let service = InProcessService::start(&ServiceOptions {
        db_max_connections: 4,
        ..ServiceOptions::new(Backend::Sqlite, 1)
    })
    .await
    .expect("service");
    let url = format!("http://{}", service.addr());
    let token = service.admin_token().expect("token");
    let args = args(&[
        "--url",
        &url,
        "--token",
        &token,
        "--audit-database-url",
        service.database_url(),
        "--scenario",
        "check,contend",
    ]);
    let report = run(&args, "test".into()).await.expect("run");
    assert_eq!(report.target.kind, "external");
    assert_eq!(report.dataset.via, "http");
    assert_no_unexpected_status(&report);
    assert_contention_was_audited(&report);
    service.stop_and_drop_database().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_over_a_small_bulkhead_is_shed_not_failed() {
    // One read at a time and no queueing: a 10x spike over 16 connections must be shed.
    let args = args(&[
        "--scenario",
        "check",
        "--spike",
        "--rate",
        "100",
        "--spike-factor",
        "10",
        "--spike-duration",
        "1s",
        "--duration",
        "1s",
        "--connections",
        "16",
        "--max-concurrent-reads",
        "1",
        "--shed-queue-wait",
        "0ms",
    ]);
    let report = run(&args, "test".into()).await.expect("run");
    let spike = report.scenarios[0].spike.as_ref().expect("a spike report");
    let during = spike
        .parts
        .iter()
        .find(|p| p.name == "during")
        .expect("the spike part");
    assert!(during.requests > 0);
    assert!(
        during.by_status.get(&503).copied().unwrap_or(0) > 0,
        "the spike was shed: {:?}",
        during.by_status
    );
    for part in &spike.parts {
        assert_eq!(
            part.errors, 0,
            "only designed answers: {:?}",
            part.by_status
        );
        assert!(part.shed_fraction >= 0.0 && part.shed_fraction <= 1.0);
    }
}
