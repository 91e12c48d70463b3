//! The spike profile: open-loop load at a steady rate, then `factor` times that rate for a
//! while, then the steady rate again; answers whether admitted requests keep their latency,
//! how much of the excess is shed (503 + 429), whether anything else fails, and how long
//! latency takes to recover after the spike.
//!
//! Requests are due on a piecewise-constant schedule and latency counts from each request's
//! intended send time (no coordinated omission), as in the engine's open loop. Results are
//! kept per one-second bucket of intended send time, so the recovery can be seen second by
//! second. "Admitted" means answered with anything but 503 or 429.
//!
//! The load generator shares the machine, so its own scheduling delay is part of every latency
//! it measures: a probe on its runtime (asking to wake every millisecond) reports that delay per
//! part as `generator lag p99`, so the service's share can be told from the generator's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

use crate::engine::{Workload, new_histogram};
use crate::http::{Reconnecting, Target};
use crate::report::Percentiles;

/// The shape of a spike.
#[derive(Debug, Clone)]
pub struct SpikeSpec {
    /// Steady rate, requests per second.
    pub per_second: f64,
    /// How many times the steady rate the spike sends.
    pub factor: f64,
    /// Steady load before the spike (measured; the recovery target is its p99).
    pub before: Duration,
    /// The spike.
    pub during: Duration,
    /// Steady load after the spike.
    pub after: Duration,
    pub connections: usize,
    pub timeout: Duration,
    pub seed: u64,
}

impl SpikeSpec {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.per_second.is_finite() && self.per_second > 0.0,
            "the spike's steady rate must be positive"
        );
        anyhow::ensure!(
            self.factor.is_finite() && self.factor >= 1.0,
            "the spike factor must be at least 1"
        );
        anyhow::ensure!(self.connections >= 1, "at least one connection is needed");
        anyhow::ensure!(
            !self.before.is_zero() && !self.during.is_zero() && !self.after.is_zero(),
            "every part of the spike needs a positive duration"
        );
        Ok(())
    }

    /// Requests due in `[0, before)`, `[before, before + during)` and the rest.
    fn counts(&self) -> (u64, u64, u64) {
        let n = |d: Duration, rate: f64| (d.as_secs_f64() * rate).ceil() as u64;
        (
            n(self.before, self.per_second),
            n(self.during, self.per_second * self.factor),
            n(self.after, self.per_second),
        )
    }

    /// When request `n` is due after the start; `None` past the end.
    fn due_offset(&self, n: u64) -> Option<Duration> {
        let (before, during, after) = self.counts();
        let secs = |k: u64, rate: f64| Duration::try_from_secs_f64(k as f64 / rate).ok();
        if n < before {
            secs(n, self.per_second)
        } else if n < before + during {
            Some(self.before + secs(n - before, self.per_second * self.factor)?)
        } else if n < before + during + after {
            Some(self.before + self.during + secs(n - before - during, self.per_second)?)
        } else {
            None
        }
    }
}

/// What came back for the requests due in one second.
#[derive(Debug, Clone)]
struct Bucket {
    admitted: Histogram<u64>,
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            admitted: new_histogram(),
            by_status: BTreeMap::new(),
            transport_errors: 0,
        }
    }
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.admitted.add(&other.admitted).unwrap_or_default();
        for (status, n) in &other.by_status {
            *self.by_status.entry(*status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
    }
}

fn is_shed(status: u16) -> bool {
    status == 503 || status == 429
}

/// One part of the profile (before, during or after the spike).
#[derive(Debug, Clone, Serialize)]
pub struct SpikePart {
    pub name: &'static str,
    pub rate_per_second: f64,
    pub seconds: f64,
    /// Requests sent (answered or failed in transport).
    pub requests: u64,
    /// Requests due in the part that were never sent: every connection was still busy when the
    /// run gave up on them (a backlog in the load generator).
    pub unsent: u64,
    /// Latency of admitted requests (not 503 or 429), from their intended send time.
    pub admitted_latency: Percentiles,
    /// Share of requests answered 503 or 429.
    pub shed_fraction: f64,
    /// Responses by status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests whose outcome is neither expected nor shed (other statuses, transport errors).
    pub errors: u64,
    pub transport_errors: u64,
    /// p99 of the load generator's own scheduling delay over the part, in ms.
    pub generator_lag_p99_ms: f64,
}

/// The admitted p99 of one second of the profile.
#[derive(Debug, Clone, Serialize)]
pub struct SpikeSecond {
    /// Seconds since the start of the profile.
    pub second: u64,
    pub admitted_p99_ms: f64,
    pub admitted: u64,
    pub shed: u64,
    pub requests: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpikeReport {
    pub factor: f64,
    pub parts: Vec<SpikePart>,
    /// Seconds after the end of the spike until every later second's admitted p99 is within
    /// twice the p99 before the spike; `None` if it never got there within the run.
    pub recovery_seconds: Option<u64>,
    pub timeline: Vec<SpikeSecond>,
}

struct Schedule {
    spec: SpikeSpec,
    t0: Instant,
    next: AtomicU64,
    give_up: Instant,
}

/// Runs the spike profile of `workload` against `target`; `expected` are the statuses that
/// count as success.
pub async fn run_spike(
    target: &Target,
    workload: Arc<dyn Workload>,
    spec: &SpikeSpec,
    expected: &[u16],
) -> anyhow::Result<SpikeReport> {
    spec.validate()?;
    let mut clients: Vec<Reconnecting> = (0..spec.connections)
        .map(|_| Reconnecting::new(target.clone()))
        .collect();
    futures::future::join_all(clients.iter_mut().map(Reconnecting::connect)).await;
    let total = spec.before + spec.during + spec.after;
    let t0 = Instant::now();
    let schedule = Arc::new(Schedule {
        spec: spec.clone(),
        t0,
        next: AtomicU64::new(0),
        // Requests that could not even be sent by then are dropped (reported as missing).
        give_up: t0 + total + spec.timeout,
    });
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let seed = spec.seed.wrapping_add(i as u64 + 1);
            tokio::spawn(drive(
                schedule.clone(),
                workload.clone(),
                client,
                seed,
                spec.timeout,
            ))
        })
        .collect();
    let lag = tokio::spawn(generator_lag(t0, total));
    let seconds = total.as_secs_f64().ceil() as usize;
    let mut buckets = vec![Bucket::default(); seconds.max(1)];
    for handle in handles {
        for (i, bucket) in handle.await?.iter().enumerate() {
            if let Some(mine) = buckets.get_mut(i) {
                mine.merge(bucket);
            }
        }
    }
    let lag = lag.await?;
    Ok(summarize(spec, &buckets, &lag, expected))
}

/// How late this runtime wakes a task that asks to sleep 1 ms, per second from `t0`, for
/// `total`: the generator's own share of every latency it measures.
async fn generator_lag(t0: Instant, total: Duration) -> Vec<Histogram<u64>> {
    const TICK: Duration = Duration::from_millis(1);
    let seconds = total.as_secs_f64().ceil() as usize;
    let mut lag = vec![new_histogram(); seconds.max(1)];
    while t0.elapsed() < total {
        let asked = Instant::now();
        tokio::time::sleep(TICK).await;
        // The timer rounds up to whole milliseconds: up to 1 ms late is on time.
        let late = asked.elapsed().saturating_sub(TICK * 2);
        let second = asked.saturating_duration_since(t0).as_secs() as usize;
        if let Some(h) = lag.get_mut(second) {
            let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
            h.saturating_record(micros.max(1));
        }
    }
    lag
}

async fn drive(
    schedule: Arc<Schedule>,
    workload: Arc<dyn Workload>,
    mut client: Reconnecting,
    seed: u64,
    timeout: Duration,
) -> Vec<Bucket> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut buckets: Vec<Bucket> = Vec::new();
    loop {
        let n = schedule.next.fetch_add(1, Ordering::Relaxed);
        let Some(offset) = schedule.spec.due_offset(n) else {
            break;
        };
        let due = schedule.t0 + offset;
        if Instant::now() >= schedule.give_up {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let request = workload.next_request(&mut rng);
        let result = client.exchange(&request, timeout).await;
        let latency = Instant::now().saturating_duration_since(due);
        let second = offset.as_secs() as usize;
        if buckets.len() <= second {
            buckets.resize_with(second + 1, Bucket::default);
        }
        let bucket = &mut buckets[second];
        match result {
            Ok((status, _)) => {
                let status = status.as_u16();
                *bucket.by_status.entry(status).or_default() += 1;
                if !is_shed(status) {
                    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    bucket.admitted.saturating_record(micros.max(1));
                }
            }
            Err(_) => {
                bucket.transport_errors += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    buckets
}

fn summarize(
    spec: &SpikeSpec,
    buckets: &[Bucket],
    lag: &[Histogram<u64>],
    expected: &[u16],
) -> SpikeReport {
    let secs = |d: Duration| d.as_secs_f64().ceil() as usize;
    let (before_end, during_end) = (
        secs(spec.before),
        secs(spec.before) + secs(spec.during).max(1),
    );
    let due = spec.counts();
    let part = |name, rate, range: std::ops::Range<usize>, seconds: Duration, due: u64| {
        let mut all = Bucket::default();
        for bucket in buckets.get(range.clone()).unwrap_or_default() {
            all.merge(bucket);
        }
        let mut generator_lag = new_histogram();
        for h in lag.get(range).unwrap_or_default() {
            generator_lag.add(h).unwrap_or_default();
        }
        let responses: u64 = all.by_status.values().sum();
        let requests = responses + all.transport_errors;
        let shed: u64 = all
            .by_status
            .iter()
            .filter(|(s, _)| is_shed(**s))
            .map(|(_, n)| n)
            .sum();
        let errors = all
            .by_status
            .iter()
            .filter(|(s, _)| !is_shed(**s) && !expected.contains(s))
            .map(|(_, n)| n)
            .sum::<u64>()
            + all.transport_errors;
        SpikePart {
            name,
            rate_per_second: rate,
            seconds: seconds.as_secs_f64(),
            requests,
            unsent: due.saturating_sub(requests),
            admitted_latency: Percentiles::of(&all.admitted),
            shed_fraction: if requests > 0 {
                shed as f64 / requests as f64
            } else {
                0.0
            },
            by_status: all.by_status,
            errors,
            transport_errors: all.transport_errors,
            generator_lag_p99_ms: generator_lag.value_at_quantile(0.99) as f64 / 1000.0,
        }
    };
    let parts = vec![
        part("before", spec.per_second, 0..before_end, spec.before, due.0),
        part(
            "during",
            spec.per_second * spec.factor,
            before_end..during_end,
            spec.during,
            due.1,
        ),
        part(
            "after",
            spec.per_second,
            during_end..buckets.len(),
            spec.after,
            due.2,
        ),
    ];
    let p99_ms = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let timeline: Vec<SpikeSecond> = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| SpikeSecond {
            second: i as u64,
            admitted_p99_ms: p99_ms(&b.admitted),
            admitted: b.admitted.len(),
            shed: b
                .by_status
                .iter()
                .filter(|(s, _)| is_shed(**s))
                .map(|(_, n)| n)
                .sum(),
            requests: b.by_status.values().sum::<u64>() + b.transport_errors,
        })
        .collect();
    let target = 2.0 * parts[0].admitted_latency.p99_ms;
    let after = timeline.get(during_end..).unwrap_or_default();
    // The first second after the spike from which every later second is within target; a
    // second that admitted nothing (all shed, or nothing sent) is not.
    let recovered = |s: &SpikeSecond| s.admitted > 0 && s.admitted_p99_ms <= target;
    let recovery_seconds = (0..after.len())
        .find(|&i| after[i..].iter().all(recovered))
        .map(|i| i as u64);
    SpikeReport {
        factor: spec.factor,
        parts,
        recovery_seconds,
        timeline,
    }
}

impl SpikeReport {
    /// A markdown table: one row per part, then the recovery.
    pub fn to_markdown(&self, scenario: &str) -> String {
        use std::fmt::Write;
        let mut md = String::new();
        let _ = writeln!(md, "\n#### spike ({scenario}, {}×)\n", self.factor);
        let _ = writeln!(
            md,
            "| part | rate/s | requests | unsent | admitted p50 ms | admitted p99 ms | shed (503+429) | errors | statuses | generator lag p99 ms |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for p in &self.parts {
            let statuses = p
                .by_status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.1} % | {} | {} | {:.2} |",
                p.name,
                p.rate_per_second,
                p.requests,
                p.unsent,
                p.admitted_latency.p50_ms,
                p.admitted_latency.p99_ms,
                p.shed_fraction * 100.0,
                p.errors,
                statuses,
                p.generator_lag_p99_ms
            );
        }
        let _ = writeln!(
            md,
            "\nrecovery (admitted p99 back within 2× of before): {}",
            self.recovery_seconds
                .map_or("not within the run".to_owned(), |s| format!(
                    "{s} s after the spike"
                ))
        );
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SpikeSpec {
        SpikeSpec {
            per_second: 10.0,
            factor: 10.0,
            before: Duration::from_secs(2),
            during: Duration::from_secs(1),
            after: Duration::from_secs(2),
            connections: 1,
            timeout: Duration::from_secs(1),
            seed: 1,
        }
    }

    #[test]
    fn the_schedule_is_steady_then_ten_times_then_steady() {
        let spec = spec();
        assert_eq!(spec.counts(), (20, 100, 20));
        assert_eq!(spec.due_offset(0), Some(Duration::ZERO));
        assert_eq!(spec.due_offset(19), Some(Duration::from_millis(1900)));
        assert_eq!(spec.due_offset(20), Some(Duration::from_secs(2)));
        assert_eq!(spec.due_offset(30), Some(Duration::from_millis(2100)));
        assert_eq!(spec.due_offset(120), Some(Duration::from_secs(3)));
        assert_eq!(spec.due_offset(139), Some(Duration::from_millis(4900)));
        assert_eq!(spec.due_offset(140), None);
    }

    fn bucket(p99_ms: u64, statuses: &[(u16, u64)]) -> Bucket {
        let mut b = Bucket::default();
        for _ in 0..100 {
            b.admitted.saturating_record(p99_ms * 1000);
        }
        b.by_status = statuses.iter().copied().collect();
        b
    }

    #[test]
    fn summary_counts_shed_errors_and_recovery() {
        let spec = spec();
        let buckets = vec![
            bucket(2, &[(200, 10)]),
            bucket(2, &[(200, 10)]),
            bucket(50, &[(200, 40), (503, 50), (429, 5), (500, 5)]),
            bucket(9, &[(200, 10)]),
            bucket(3, &[(200, 10)]),
        ];
        let mut lag = vec![new_histogram(); 5];
        lag[2].saturating_record(7_000);
        let report = summarize(&spec, &buckets, &lag, &[200]);
        // Within the histogram's three significant digits.
        assert!((report.parts[1].generator_lag_p99_ms - 7.0).abs() < 0.01);
        assert_eq!(report.parts[0].generator_lag_p99_ms, 0.0);
        assert_eq!(report.parts[1].requests, 100);
        assert!((report.parts[1].shed_fraction - 0.55).abs() < 1e-9);
        assert_eq!(report.parts[1].errors, 5);
        assert_eq!(report.parts[0].errors, 0);
        assert_eq!(report.recovery_seconds, Some(1));
        assert!(
            report
                .to_markdown("check")
                .contains("| during | 100 | 100 | 0 |")
        );
        assert_eq!(report.parts[2].unsent, 0);
    }

    /// After the spike nothing more was sent (every connection still busy with the backlog):
    /// that is not a recovery, and the requests due then count as unsent.
    #[test]
    fn seconds_that_admitted_nothing_are_not_a_recovery() {
        let spec = spec();
        let buckets = vec![
            bucket(2, &[(200, 10)]),
            bucket(2, &[(200, 10)]),
            bucket(900, &[(200, 60)]),
            Bucket::default(),
            Bucket::default(),
        ];
        let lag = vec![new_histogram(); 5];
        let report = summarize(&spec, &buckets, &lag, &[200]);
        assert_eq!(report.recovery_seconds, None);
        assert_eq!(report.parts[1].unsent, 40);
        assert_eq!(report.parts[2].unsent, 20);
        let all_shed = vec![
            bucket(2, &[(200, 10)]),
            bucket(2, &[(200, 10)]),
            bucket(50, &[(200, 100)]),
            Bucket {
                by_status: [(503, 10)].into_iter().collect(),
                ..Bucket::default()
            },
            bucket(3, &[(200, 10)]),
        ];
        let report = summarize(&spec, &all_shed, &lag, &[200]);
        assert_eq!(
            report.recovery_seconds,
            Some(1),
            "the all-shed second is not normal"
        );
    }
}
