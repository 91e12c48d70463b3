//! A whole benchmark run: start (or find) the service, load data, run each scenario's phases
//! with counter scrapes around them, audit after contention, stop, and report.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use vacancy_store::{Store, StoreOptions};

use crate::audit::audit_overbookings;
use crate::cli::{BenchArgs, Mode};
use crate::cpu::{CpuSample, CpuUsage};
use crate::dataset::{self, Dataset, DatasetSpec, LoadReport, Sink};
use crate::engine::{Pace, PhaseSpec, Workload, run_phase};
use crate::http::{Planned, Reconnecting, Target};
use crate::prometheus::{CounterFilter, Counters};
use crate::report::{
    BenchReport, ContentionReport, Machine, PhaseReport, Ratios, ScenarioReport, Settings,
    TargetInfo,
};
use crate::scenarios::{Scenario, WorkloadOptions};
use crate::service::{InProcessService, ServiceOptions};
use crate::svg::{Curve, percentile_plot};

/// Runs the benchmark `args` describe. `command` is the invocation, recorded in the report.
pub async fn run(args: &BenchArgs, command: String) -> anyhow::Result<BenchReport> {
    args.validate()?;
    anyhow::ensure!(
        matches!(args.mode()?, Mode::Load(_)),
        "freshness and memory have runners of their own (crate::freshness, crate::memory)"
    );
    let started_at = Timestamp::now().round(jiff::Unit::Second)?.to_string();
    let machine = machine();
    eprintln!(
        "vacancy-bench: {} cores, {} build; reproduce with: {command}",
        machine.cores, machine.build_profile
    );
    let server_threads = args.server_threads();
    let mut service = None;
    let (target, store, target_info) = match &args.url {
        Some(url) => {
            let mut target = Target::from_url(url).await?;
            if let Some(token) = &args.token {
                target = target.with_bearer(token)?;
            }
            let store = match &args.audit_database_url {
                Some(db) => Some(Store::connect(&StoreOptions::new(db.clone())).await?),
                None => None,
            };
            let info = TargetInfo {
                kind: "external",
                backend: None,
                url: target.base_url(),
                server_threads: None,
            };
            (target, store, info)
        }
        None => {
            let started = InProcessService::start(&ServiceOptions {
                db_max_connections: args.db_max_connections,
                max_concurrent_reads: args.max_concurrent_reads,
                shed_queue_wait: args.shed_queue_wait,
                shed_lag: args.service_shed_lag(),
                ..ServiceOptions::new(args.backend.backend(), server_threads)
            })
            .await?;
            let connected = match Target::new(started.addr())
                .and_then(|t| t.with_bearer(&started.admin_token()?))
            {
                Ok(target) => Store::connect(&StoreOptions::new(started.database_url()))
                    .await
                    .map(|store| (target, store))
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            let (target, store) = match connected {
                Ok(both) => both,
                Err(e) => {
                    started.stop_and_drop_database().await.ok();
                    return Err(e);
                }
            };
            service = Some(started);
            let info = TargetInfo {
                kind: "in-process",
                backend: Some(args.backend.name()),
                url: target.base_url(),
                server_threads: Some(server_threads),
            };
            (target, Some(store), info)
        }
    };
    eprintln!(
        "target: {} service at {}",
        target_info.kind, target_info.url
    );
    let result = run_scenarios(args, &target, store.as_ref()).await;
    if let Some(store) = &store {
        store.close().await;
    }
    if let Some(mut service) = service {
        if args.keep_database {
            service.stop().await?;
            eprintln!("kept the database: {}", service.database_url());
        } else {
            service.stop_and_drop_database().await?;
        }
    }
    let (dataset, scenarios) = result?;
    let ratios = Ratios::of(&scenarios);
    Ok(BenchReport {
        tool: "vacancy-bench",
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        command,
        machine,
        target: target_info,
        settings: settings(args),
        dataset,
        scenarios,
        ratios,
    })
}

/// Writes the JSON, markdown and SVG files asked for, and returns the markdown.
pub fn write_outputs(report: &BenchReport, args: &BenchArgs) -> anyhow::Result<String> {
    let markdown = report.to_markdown();
    if let Some(path) = &args.out {
        write(path, &serde_json::to_string_pretty(report)?)?;
    }
    if let Some(path) = &args.markdown {
        write(path, &markdown)?;
    }
    if let Some(path) = &args.svg {
        write(path, &plot(report))?;
    }
    Ok(markdown)
}

/// Overbooked nights found by the contend scenario's audit, if it ran.
pub fn overbookings(report: &BenchReport) -> u64 {
    report
        .scenarios
        .iter()
        .filter_map(|s| s.contention.as_ref())
        .filter_map(|c| c.overbookings)
        .sum()
}

/// Writes `contents` to `path`, creating its folder.
pub fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The latency plot of every phase of the run.
pub fn plot(report: &BenchReport) -> String {
    let curves: Vec<Curve> = report
        .scenarios
        .iter()
        .enumerate()
        .flat_map(|(group, s)| {
            s.phases.iter().map(move |p| Curve {
                label: format!("{} ({})", s.name, p.mode_label()),
                points: p.curve.clone(),
                dashed: p.pace != Pace::Closed,
                group,
            })
        })
        .filter(|c| !c.points.is_empty())
        .collect();
    let title = format!(
        "vacancy latency by percentile, {} cores, {}{}",
        report.machine.cores,
        report.target.kind,
        report
            .target
            .backend
            .map(|b| format!(" on {b}"))
            .unwrap_or_default()
    );
    percentile_plot(&title, &curves)
}

async fn run_scenarios(
    args: &BenchArgs,
    target: &Target,
    store: Option<&Store>,
) -> anyhow::Result<(LoadReport, Vec<ScenarioReport>)> {
    let sink = match (&args.url, store) {
        (None, Some(store)) => Sink::Store(store.clone()),
        _ => Sink::Http(target.clone()),
    };
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let spec = DatasetSpec {
        listings: args.listings(),
        booked_fraction: args.booked_fraction,
        contend_listings: args.contend_listings,
        seed: args.seed,
        concurrency: args.load_concurrency,
        // The random tail of a v7 uuid: runs against one service never collide.
        id_prefix: format!("b{}-", &tag[tag.len() - 6..]),
    };
    eprintln!(
        "loading {} listings (+{} for contention)…",
        spec.listings, spec.contend_listings
    );
    let (data, loaded) = dataset::load(&sink, &spec).await?;
    eprintln!(
        "loaded {} listings, {} bookings, {} blocks through the {} in {:.1} s",
        loaded.listings + loaded.contend_listings,
        loaded.bookings,
        loaded.blocks,
        loaded.via,
        loaded.seconds
    );
    let cached_reads = [Scenario::Check, Scenario::Batch, Scenario::Calendar];
    if !args.no_prewarm && args.scenarios().iter().any(|s| cached_reads.contains(s)) {
        let started = std::time::Instant::now();
        prewarm(target, &data).await?;
        eprintln!(
            "read every listing once to warm the cache in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let mut reports = Vec::new();
    for (i, scenario) in args.scenarios().into_iter().enumerate() {
        reports.push(run_scenario(args, target, store, &data, scenario, i as u64).await?);
    }
    Ok((loaded, reports))
}

/// Reads every listing once through the API (batch checks of 1,000 ids), so the read
/// scenarios measure the cache rather than its cold start.
async fn prewarm(target: &Target, data: &Dataset) -> anyhow::Result<()> {
    let mut conn = Reconnecting::new(target.clone());
    let (check_in, check_out) = (dataset::day(data.today, 3), dataset::day(data.today, 4));
    for chunk in data.listing_ids.chunks(1000) {
        let body = serde_json::json!({
            "listing_ids": chunk,
            "check_in": check_in.to_string(),
            "check_out": check_out.to_string(),
        });
        let request = Planned::post_json("/v1/availability/batch", serde_json::to_vec(&body)?);
        let (status, _) = conn.exchange(&request, Duration::from_secs(30)).await?;
        anyhow::ensure!(
            status.is_success(),
            "warming the cache: batch answered {status}"
        );
    }
    Ok(())
}

async fn run_scenario(
    args: &BenchArgs,
    target: &Target,
    store: Option<&Store>,
    data: &Dataset,
    scenario: Scenario,
    index: u64,
) -> anyhow::Result<ScenarioReport> {
    let workload = scenario.workload(
        data,
        &WorkloadOptions {
            zipf_exponent: args.zipf_exponent,
            batch_size: args.batch_size,
            calendar_days: args.calendar_days,
        },
    )?;
    let filter = CounterFilter::new(&args.counters);
    if args.spike {
        return spike_scenario(args, target, &workload, scenario, index).await;
    }
    let first_pace = match args.rate {
        Some(per_second) => Pace::Open { per_second },
        None => Pace::Closed,
    };
    let seed = args.seed.wrapping_add(index.wrapping_mul(1_000_003));
    let first =
        measured_phase(args, target, &workload, scenario, first_pace, seed, &filter).await?;
    let peak = first.throughput_rps;
    let mut phases = vec![first];
    if let (Pace::Closed, Some(fraction)) = (first_pace, args.open_loop_at) {
        let per_second = peak * fraction;
        if per_second >= 1.0 {
            let open = Pace::Open { per_second };
            phases.push(
                measured_phase(args, target, &workload, scenario, open, seed + 1, &filter).await?,
            );
        } else {
            eprintln!(
                "  {}: no open-loop phase, peak was {peak:.1} req/s",
                scenario.name()
            );
        }
    }
    let contention = match scenario {
        Scenario::Contend => Some(contention(&phases, store).await?),
        _ => None,
    };
    Ok(ScenarioReport {
        name: scenario.name(),
        description: scenario.description(),
        expected_statuses: scenario.expected_statuses().to_vec(),
        phases,
        contention,
        spike: None,
    })
}

async fn spike_scenario(
    args: &BenchArgs,
    target: &Target,
    workload: &Arc<dyn Workload>,
    scenario: Scenario,
    index: u64,
) -> anyhow::Result<ScenarioReport> {
    let per_second = args
        .rate
        .ok_or_else(|| anyhow::anyhow!("--spike needs --rate"))?;
    let seed = args.seed.wrapping_add(index.wrapping_mul(1_000_003));
    if !args.warmup.is_zero() {
        // Warm the caches at the steady rate; nothing of it is reported.
        let warmup = PhaseSpec {
            pace: Pace::Open { per_second },
            connections: args.connections,
            warmup: Duration::ZERO,
            duration: args.warmup,
            timeout: args.timeout,
            max_requests: args.max_requests,
            drain: args.drain,
            seed,
        };
        run_phase(target, workload.clone(), &warmup).await?;
    }
    let spec = crate::spike::SpikeSpec {
        per_second,
        factor: args.spike_factor,
        before: args.duration,
        during: args.spike_duration,
        after: args.duration,
        connections: args.connections,
        timeout: args.timeout,
        seed: seed + 1,
    };
    eprintln!(
        "{}: spike, {per_second:.0}/s for {:?}, {:.0}/s for {:?}, {per_second:.0}/s for {:?}, {} connections…",
        scenario.name(),
        spec.before,
        per_second * spec.factor,
        spec.during,
        spec.after,
        spec.connections
    );
    let report = crate::spike::run_spike(
        target,
        workload.clone(),
        &spec,
        scenario.expected_statuses(),
    )
    .await?;
    for part in &report.parts {
        eprintln!(
            "  {}: {} requests, admitted p99 {:.2} ms, shed {:.1} %, {} errors",
            part.name,
            part.requests,
            part.admitted_latency.p99_ms,
            part.shed_fraction * 100.0,
            part.errors
        );
    }
    Ok(ScenarioReport {
        name: scenario.name(),
        description: scenario.description(),
        expected_statuses: scenario.expected_statuses().to_vec(),
        phases: Vec::new(),
        contention: None,
        spike: Some(report),
    })
}

async fn measured_phase(
    args: &BenchArgs,
    target: &Target,
    workload: &Arc<dyn Workload>,
    scenario: Scenario,
    pace: Pace,
    seed: u64,
    filter: &CounterFilter,
) -> anyhow::Result<PhaseReport> {
    let spec = PhaseSpec {
        pace,
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
        max_requests: args.max_requests,
        drain: args.drain,
        seed,
    };
    let mode = match pace {
        Pace::Closed => "closed loop".to_owned(),
        Pace::Open { per_second } => format!("open loop at {per_second:.0}/s"),
    };
    eprintln!(
        "{}: {mode}, {} connections, {:?} warm-up + {:?}…",
        scenario.name(),
        spec.connections,
        spec.warmup,
        spec.duration
    );
    let before = scrape(target, filter).await;
    let cpu_before = CpuSample::now();
    let outcome = run_phase(target, workload.clone(), &spec).await?;
    let cpu_after = CpuSample::now();
    let after = scrape(target, filter).await;
    let counters = match (before, after) {
        (Some(before), Some(after)) => after.deltas_since(&before),
        _ => Vec::new(),
    };
    let mut report = PhaseReport::new(scenario, &outcome, counters);
    report.cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => CpuUsage::between(&a, &b, crate::cli::cores()),
        _ => None,
    };
    eprintln!(
        "  {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors{}",
        report.throughput_rps,
        report.latency.p50_ms,
        report.latency.p99_ms,
        report.latency.max_ms,
        report.errors,
        report.cpu.map_or(String::new(), |c| format!(
            "; CPU in cores: {:.2} here, {:.2} PostgreSQL, {:.2} other processes",
            c.this_process_cores, c.postgres_cores, c.other_cores
        ))
    );
    Ok(report)
}

/// How long a `/metrics` scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The service's counters now; `None` (with a warning) when `/metrics` does not answer.
async fn scrape(target: &Target, filter: &CounterFilter) -> Option<Counters> {
    let mut client = Reconnecting::new(target.clone());
    match client
        .exchange(&Planned::get("/metrics"), SCRAPE_TIMEOUT)
        .await
    {
        Ok((status, body)) if status.is_success() => {
            Some(Counters::parse(&String::from_utf8_lossy(&body), filter))
        }
        Ok((status, _)) => {
            eprintln!("  warning: /metrics answered {status}; no service counters for this phase");
            None
        }
        Err(e) => {
            eprintln!(
                "  warning: cannot scrape /metrics ({e}); no service counters for this phase"
            );
            None
        }
    }
}

async fn contention(
    phases: &[PhaseReport],
    store: Option<&Store>,
) -> anyhow::Result<ContentionReport> {
    let winners = phases
        .iter()
        .map(|p| p.statuses.get(&201).copied().unwrap_or(0))
        .sum();
    let conflicts = phases
        .iter()
        .map(|p| p.statuses.get(&409).copied().unwrap_or(0))
        .sum();
    let conflict_p99_ms = phases
        .first()
        .and_then(|p| p.latency_by_status.get(&409))
        .map(|l| l.p99_ms);
    let (overbookings, audit, findings) = match store {
        Some(store) => {
            let outcome = audit_overbookings(store, Timestamp::now()).await?;
            eprintln!("  audit: {} overbooked nights", outcome.overbooked_nights);
            (
                Some(outcome.overbooked_nights),
                "Store::audit over every listing and night after the scenario".to_owned(),
                outcome.examples,
            )
        }
        None => (
            None,
            "not verified: the harness cannot reach the database (pass --audit-database-url)"
                .to_owned(),
            Vec::new(),
        ),
    };
    Ok(ContentionReport {
        winners,
        conflicts,
        conflict_p99_ms,
        overbookings,
        audit,
        findings,
    })
}

fn settings(args: &BenchArgs) -> Settings {
    Settings {
        connections: args.connections,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        open_loop_rate: args.rate,
        open_loop_at: args.open_loop_at,
        timeout_s: args.timeout.as_secs_f64(),
        zipf_exponent: args.zipf_exponent,
        batch_size: args.batch_size,
        calendar_days: args.calendar_days,
        client_threads: args.client_threads(),
        seed: args.seed,
        counters: args.counters.clone(),
    }
}

/// What this machine is, as far as it can be told cheaply.
pub fn machine() -> Machine {
    let cores = crate::cli::cores();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / (1024.0 * 1024.0))
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| format!(" {}", r.trim()))
        .unwrap_or_default();
    let git_revision = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|r| !r.is_empty());
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    Machine {
        cores,
        load_average,
        cpu_model,
        memory_gib,
        os: format!(
            "{} {}{kernel}",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        build_profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        git_revision,
    }
}
