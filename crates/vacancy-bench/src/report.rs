//! Results: the JSON document a run writes, and its markdown rendering.
//!
//! Numbers are reported as measured; nothing here judges them. Ratios are computed from
//! closed-loop phases of the same run only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::CpuUsage;
use crate::dataset::LoadReport;
use crate::engine::{Pace, PhaseOutcome};
use crate::prometheus::{CounterDelta, totals_by_name};
use crate::scenarios::Scenario;

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub tool: &'static str,
    pub version: &'static str,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// The command as invoked, ready to paste.
    pub command: String,
    pub machine: Machine,
    pub target: TargetInfo,
    pub settings: Settings,
    pub dataset: LoadReport,
    pub scenarios: Vec<ScenarioReport>,
    pub ratios: Ratios,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores this process may use (`available_parallelism`).
    pub cores: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    pub os: String,
    /// `release` or `debug`: how this harness (and the in-process service) was compiled.
    pub build_profile: &'static str,
    /// `git describe --always --dirty` of the working tree, when available.
    pub git_revision: Option<String>,
    /// 1, 5 and 15 minute load averages when the run started (Linux).
    pub load_average: Option<String>,
}

impl Machine {
    /// The `- machine: …` line every markdown report starts with.
    pub fn markdown_line(&self) -> String {
        format!(
            "- machine: {} cores{}{}, {}; {} build{}{}",
            self.cores,
            self.cpu_model
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            self.memory_gib
                .map(|g| format!(", {g:.0} GiB"))
                .unwrap_or_default(),
            self.os,
            self.build_profile,
            self.git_revision
                .as_deref()
                .map(|r| format!(", revision {r}"))
                .unwrap_or_default(),
            self.load_average
                .as_deref()
                .map(|l| format!("; load average at start {l}"))
                .unwrap_or_default(),
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// `in-process` (started by the harness on a fresh database) or `external`.
    pub kind: &'static str,
    /// `sqlite` or `postgres` for an in-process service.
    pub backend: Option<&'static str>,
    pub url: String,
    /// Worker threads of the in-process service's runtime.
    pub server_threads: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub connections: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub open_loop_rate: Option<f64>,
    pub open_loop_at: Option<f64>,
    pub timeout_s: f64,
    pub zipf_exponent: f64,
    pub batch_size: usize,
    pub calendar_days: i64,
    pub client_threads: usize,
    pub seed: u64,
    pub counters: Vec<String>,
}

/// One scenario: its phases, and for `contend` the contention outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub description: &'static str,
    pub expected_statuses: Vec<u16>,
    pub phases: Vec<PhaseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contention: Option<ContentionReport>,
    /// With `--spike`: the spike profile's outcome (then `phases` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spike: Option<crate::spike::SpikeReport>,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One phase of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub pace: Pace,
    pub connections: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// From the start of the measured window to the end of its last exchange.
    pub elapsed_s: f64,
    /// Measured requests: responses plus transport errors.
    pub requests: u64,
    /// Responses with an expected status.
    pub ok: u64,
    /// Unexpected statuses, transport errors and (open loop) requests never sent.
    pub errors: u64,
    /// Responses of any status per second.
    pub throughput_rps: f64,
    /// Every response, whatever its status.
    pub latency: Percentiles,
    pub latency_by_status: BTreeMap<u16, Percentiles>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: BTreeMap<String, u64>,
    /// Open loop: requests due in the measured window, and those never sent.
    pub scheduled: Option<u64>,
    pub missed: u64,
    /// Open loop: how late requests left relative to their schedule.
    pub send_lag: Option<Percentiles>,
    pub warmup_requests: u64,
    /// The service's counters that moved during the phase (warm-up included).
    pub counters: Vec<CounterDelta>,
    /// CPU used during the phase (warm-up included), when the platform tells.
    pub cpu: Option<CpuUsage>,
    /// `[percentile, latency ms]` points of the latency curve.
    pub curve: Vec<[f64; 2]>,
}

impl PhaseReport {
    pub fn new(scenario: Scenario, outcome: &PhaseOutcome, counters: Vec<CounterDelta>) -> Self {
        let tally = &outcome.tally;
        let all = tally.latency_all();
        let expected = scenario.expected_statuses();
        let statuses: BTreeMap<u16, u64> = tally
            .latency_by_status
            .iter()
            .map(|(s, h)| (*s, h.len()))
            .collect();
        let ok: u64 = statuses
            .iter()
            .filter(|(s, _)| expected.contains(s))
            .map(|(_, n)| n)
            .sum();
        Self {
            pace: outcome.pace,
            connections: outcome.connections,
            warmup_s: outcome.warmup.as_secs_f64(),
            duration_s: outcome.duration.as_secs_f64(),
            elapsed_s: outcome.elapsed.as_secs_f64(),
            requests: tally.requests(),
            ok,
            errors: tally.requests() - ok + outcome.missed,
            throughput_rps: outcome.throughput(),
            latency: Percentiles::of(&all),
            latency_by_status: tally
                .latency_by_status
                .iter()
                .map(|(s, h)| (*s, Percentiles::of(h)))
                .collect(),
            statuses,
            transport_errors: tally.transport_errors.clone(),
            scheduled: outcome.scheduled,
            missed: outcome.missed,
            send_lag: tally.send_lag.as_ref().map(Percentiles::of),
            warmup_requests: tally.warmup_requests,
            counters,
            cpu: None,
            curve: crate::svg::percentile_curve(&all),
        }
    }

    /// `closed` or `open @ R/s`.
    pub fn mode_label(&self) -> String {
        match self.pace {
            Pace::Closed => "closed".into(),
            Pace::Open { per_second } => format!("open @ {per_second:.0}/s"),
        }
    }
}

/// What the contention scenario decided, and whether it overbooked.
#[derive(Debug, Clone, Serialize)]
pub struct ContentionReport {
    /// Bookings made (201), over all phases.
    pub winners: u64,
    /// Bookings refused because the nights were taken (409), over all phases.
    pub conflicts: u64,
    /// p99 of the 409 answers of the first phase.
    pub conflict_p99_ms: Option<f64>,
    /// Nights where active claims exceed units, per `Store::audit` after the scenario; `None`
    /// when the harness cannot reach the database.
    pub overbookings: Option<u64>,
    /// How overbookings were (or were not) verified.
    pub audit: String,
    /// A few of the nights the audit found, if any.
    pub findings: Vec<String>,
}

/// Throughput ratios within the run (closed-loop phases).
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub check_over_baseline: Option<f64>,
    pub check_over_direct_db: Option<f64>,
}

impl Ratios {
    pub fn of(scenarios: &[ScenarioReport]) -> Self {
        let closed = |name: &str| {
            scenarios
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.phases.iter().find(|p| p.pace == Pace::Closed))
                .map(|p| p.throughput_rps)
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        Self {
            check_over_baseline: ratio(closed("check"), closed("baseline")),
            check_over_direct_db: ratio(closed("check"), closed("direct-db")),
        }
    }
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

fn statuses_cell(phase: &PhaseReport) -> String {
    let mut parts: Vec<String> = phase
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    parts.extend(
        phase
            .transport_errors
            .iter()
            .map(|(k, n)| format!("{k}: {n}")),
    );
    if phase.missed > 0 {
        parts.push(format!("missed: {}", phase.missed));
    }
    parts.join(", ")
}

/// Most series of one counter shown one by one; beyond, only their sum.
const SERIES_SHOWN: usize = 4;

/// Each counter's total delta, and for a counter with a few labelled series (cache hits and
/// misses, say) each series', e.g. `c +10 (layer=l1,result=hit +9; layer=l1,result=miss +1)`.
fn counters_cell(deltas: &[CounterDelta]) -> String {
    let totals = totals_by_name(deltas);
    if totals.is_empty() {
        return "-".to_owned();
    }
    totals
        .iter()
        .map(|(name, total)| {
            let series: Vec<&CounterDelta> = deltas.iter().filter(|d| &d.name == name).collect();
            if (2..=SERIES_SHOWN).contains(&series.len()) {
                let parts: Vec<String> = series
                    .iter()
                    .map(|d| format!("{} +{}", d.labels.replace('"', ""), d.delta))
                    .collect();
                format!("{name} +{total} ({})", parts.join("; "))
            } else {
                format!("{name} +{total}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(
        || "n/a (needs closed-loop runs of both)".into(),
        |r| format!("{r:.2}"),
    )
}

impl BenchReport {
    /// The results as markdown: setup, one table row per phase, ratios, contention, counters.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "### vacancy-bench, {}\n", self.started_at);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(md, "{}", m.markdown_line());
        let t = &self.target;
        let _ = writeln!(
            md,
            "- target: {} service{} at {}{}; the load generator ({} runtime thread{}) shares the machine",
            t.kind,
            t.backend.map(|b| format!(" on {b}")).unwrap_or_default(),
            t.url,
            t.server_threads
                .map(|n| format!(" ({n} runtime threads)"))
                .unwrap_or_default(),
            self.settings.client_threads,
            if self.settings.client_threads == 1 {
                ""
            } else {
                "s"
            },
        );
        let d = &self.dataset;
        let _ = writeln!(
            md,
            "- data: {} listings (+{} for contention), {} bookings, {} blocks, loaded through the {} in {:.1} s",
            d.listings, d.contend_listings, d.bookings, d.blocks, d.via, d.seconds
        );
        let s = &self.settings;
        let _ = writeln!(
            md,
            "- each phase: {} s warm-up, then {} s measured; {} connections; latencies in ms\n",
            s.warmup_s, s.duration_s, s.connections
        );
        md.push_str(
            "| scenario | mode | requests | req/s | p50 | p95 | p99 | p99.9 | max | errors | statuses |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
        );
        for scenario in &self.scenarios {
            for p in &scenario.phases {
                let l = &p.latency;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                    scenario.name,
                    p.mode_label(),
                    p.requests,
                    p.throughput_rps,
                    ms(l.p50_ms),
                    ms(l.p95_ms),
                    ms(l.p99_ms),
                    ms(l.p999_ms),
                    ms(l.max_ms),
                    p.errors,
                    statuses_cell(p)
                );
            }
        }
        let _ = writeln!(md, "\nRatios of closed-loop throughput in this run:\n");
        let _ = writeln!(
            md,
            "- check / baseline: {}",
            ratio_text(self.ratios.check_over_baseline)
        );
        let _ = writeln!(
            md,
            "- check / direct-db: {} (cached reads against the same reads sent to the database)",
            ratio_text(self.ratios.check_over_direct_db)
        );
        for scenario in &self.scenarios {
            if let Some(c) = &scenario.contention {
                let _ = writeln!(
                    md,
                    "\nContention: {} winners (201), {} conflicts (409), 409 p99 {} ms, overbookings: {} ({})",
                    c.winners,
                    c.conflicts,
                    c.conflict_p99_ms.map_or("n/a".into(), ms),
                    c.overbookings
                        .map_or_else(|| "not verified".to_owned(), |n| n.to_string()),
                    c.audit
                );
                for finding in &c.findings {
                    let _ = writeln!(md, "  - {finding}");
                }
            }
            if let Some(spike) = &scenario.spike {
                md.push_str(&spike.to_markdown(scenario.name));
            }
        }
        let lag: Vec<String> = self
            .scenarios
            .iter()
            .flat_map(|s| s.phases.iter().map(move |p| (s.name, p)))
            .filter_map(|(name, p)| {
                p.send_lag.map(|lag| {
                    format!(
                        "{name} {}: p99 {} ms, max {} ms",
                        p.mode_label(),
                        ms(lag.p99_ms),
                        ms(lag.max_ms)
                    )
                })
            })
            .collect();
        if !lag.is_empty() {
            let _ = writeln!(
                md,
                "\nOpen-loop send lag (how late requests left their schedule; counted in latency): {}",
                lag.join("; ")
            );
        }
        let _ = writeln!(
            md,
            "\nCPU (in cores) and service counters (deltas), over each phase with its warm-up:\n"
        );
        md.push_str(
            "| scenario | mode | CPU: this process | CPU: PostgreSQL | CPU: other processes | counters |\n\
             |---|---|--:|--:|--:|---|\n",
        );
        for scenario in &self.scenarios {
            for p in &scenario.phases {
                let cell = counters_cell(&p.counters);
                let cpu = p.cpu.map_or_else(
                    || "- | - | -".to_owned(),
                    |c| {
                        format!(
                            "{:.2} | {:.2} | {:.2}",
                            c.this_process_cores, c.postgres_cores, c.other_cores
                        )
                    },
                );
                let _ = writeln!(
                    md,
                    "| {} | {} | {cpu} | {cell} |",
                    scenario.name,
                    p.mode_label()
                );
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(name: &str, labels: &str, delta: f64) -> CounterDelta {
        CounterDelta {
            name: name.into(),
            labels: labels.into(),
            delta,
        }
    }

    #[test]
    fn counters_cell_breaks_down_a_few_series() {
        let cell = counters_cell(&[
            delta("c_total", r#"layer="l1",result="hit""#, 9.0),
            delta("c_total", r#"layer="l1",result="miss""#, 1.0),
            delta("d_total", "", 5.0),
        ]);
        assert_eq!(
            cell,
            "c_total +10 (layer=l1,result=hit +9; layer=l1,result=miss +1), d_total +5"
        );
        assert_eq!(counters_cell(&[]), "-");
    }
}
