//! The load engine: drives one [`Workload`] from a number of keep-alive connections for a
//! warm-up and a measured window, and tallies what came back.
//!
//! Two paces:
//! - **closed loop** ([`Pace::Closed`]): every connection sends its next request as soon as the
//!   previous answer arrived: the server's maximum throughput at that concurrency. Latency is
//!   measured from the moment a request is sent.
//! - **open loop** ([`Pace::Open`]): requests are due at a fixed rate, request `i` at
//!   `start + i / rate`, whatever the server does; any free connection takes the next due
//!   request. Latency is measured from the request's *intended* send time, so when the server
//!   falls behind, the waiting counts too (no coordinated omission).
//!
//! Every phase is bounded in time (warm-up + duration, plus the per-request timeout, plus in
//! open loop a drain allowance for late requests) and in count (`max_requests`). Every slot
//! yields exactly one outcome: a status or a transport error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;

use crate::http::{Planned, Reconnecting, Target};

/// Produces the requests of a scenario.
pub trait Workload: Send + Sync {
    /// The next request. `rng` belongs to the calling connection, so runs are repeatable for a
    /// given seed and connection count (up to the interleaving of connections).
    fn next_request(&self, rng: &mut SmallRng) -> Planned;
}

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Pace {
    /// As fast as the connections go.
    Closed,
    /// A fixed arrival rate, in requests per second.
    Open { per_second: f64 },
}

/// One phase of load.
#[derive(Debug, Clone)]
pub struct PhaseSpec {
    pub pace: Pace,
    pub connections: usize,
    /// Load before the measured window; its results are thrown away.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Longest wait for one response; past it the request is a `timeout` error.
    pub timeout: Duration,
    /// Most requests (warm-up included) the phase may send.
    pub max_requests: u64,
    /// Open loop only: how long after the window requests still due may be sent late; those
    /// never sent are reported as missed.
    pub drain: Duration,
    /// Seeds the connections' random generators.
    pub seed: u64,
}

impl PhaseSpec {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.connections >= 1, "at least one connection is needed");
        anyhow::ensure!(!self.duration.is_zero(), "the duration must be positive");
        anyhow::ensure!(!self.timeout.is_zero(), "the timeout must be positive");
        if let Pace::Open { per_second } = self.pace {
            anyhow::ensure!(
                per_second.is_finite() && per_second > 0.0,
                "the open-loop rate must be a positive number, got {per_second}"
            );
        }
        Ok(())
    }
}

/// Latencies are recorded in microseconds, from 1 µs to 60 s, to 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What came back during the measured window.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Response latencies (µs), one histogram per HTTP status.
    pub latency_by_status: BTreeMap<u16, Histogram<u64>>,
    /// Exchanges that produced no status, by [`crate::http::TransportError::kind`].
    pub transport_errors: BTreeMap<String, u64>,
    /// Open loop: how late requests left relative to their intended time (µs).
    pub send_lag: Option<Histogram<u64>>,
    /// Requests sent during the warm-up (not measured).
    pub warmup_requests: u64,
    /// When the last measured exchange ended.
    pub last_done: Option<Instant>,
}

impl Tally {
    fn record_status(&mut self, status: u16, latency: Duration) {
        self.latency_by_status
            .entry(status)
            .or_insert_with(new_histogram)
            .saturating_record(micros(latency));
    }

    fn record_transport_error(&mut self, kind: &str) {
        *self.transport_errors.entry(kind.to_owned()).or_default() += 1;
    }

    fn record_lag(&mut self, lag: Duration) {
        self.send_lag
            .get_or_insert_with(new_histogram)
            .saturating_record(micros(lag));
    }

    fn merge(&mut self, other: Tally) {
        for (status, histogram) in other.latency_by_status {
            match self.latency_by_status.get_mut(&status) {
                Some(mine) => mine.add(&histogram).unwrap_or_default(),
                None => {
                    self.latency_by_status.insert(status, histogram);
                }
            }
        }
        for (kind, n) in other.transport_errors {
            *self.transport_errors.entry(kind).or_default() += n;
        }
        if let Some(lag) = other.send_lag {
            match self.send_lag.as_mut() {
                Some(mine) => mine.add(&lag).unwrap_or_default(),
                None => self.send_lag = Some(lag),
            }
        }
        self.warmup_requests += other.warmup_requests;
        self.last_done = self.last_done.max(other.last_done);
    }

    /// Responses with a given status.
    pub fn status_count(&self, status: u16) -> u64 {
        self.latency_by_status.get(&status).map_or(0, |h| h.len())
    }

    /// Responses of any status.
    pub fn responses(&self) -> u64 {
        self.latency_by_status.values().map(|h| h.len()).sum()
    }

    pub fn transport_error_count(&self) -> u64 {
        self.transport_errors.values().sum()
    }

    /// Measured requests: responses plus transport errors.
    pub fn requests(&self) -> u64 {
        self.responses() + self.transport_error_count()
    }

    /// Latencies of every response, whatever its status.
    pub fn latency_all(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for histogram in self.latency_by_status.values() {
            all.add(histogram).unwrap_or_default();
        }
        all
    }
}

/// The result of one phase.
#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub pace: Pace,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// From the start of the measured window to the end of its last exchange.
    pub elapsed: Duration,
    /// Open loop: requests due in the measured window.
    pub scheduled: Option<u64>,
    /// Open loop: requests due in the window that were never sent (the drain ran out).
    pub missed: u64,
    pub tally: Tally,
}

impl PhaseOutcome {
    /// Responses per second over the measured window.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tally.responses() as f64 / secs
        } else {
            0.0
        }
    }
}

/// Open loop: the scheduled requests wake up this much early, because tokio timers fire on
/// millisecond ticks and only ever late; latency then counts from the earlier of the intended
/// and the actual send time.
const PACING_LEAD: Duration = Duration::from_millis(1);

/// After a transport error a connection pauses this long, so a dead server is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(5);

/// Runs one phase against `target`.
pub async fn run_phase(
    target: &Target,
    workload: Arc<dyn Workload>,
    spec: &PhaseSpec,
) -> anyhow::Result<PhaseOutcome> {
    spec.validate()?;
    let mut clients: Vec<Reconnecting> = (0..spec.connections)
        .map(|_| Reconnecting::new(target.clone()))
        .collect();
    // Connect before the clock starts; a connection that fails here retries on first use.
    futures::future::join_all(clients.iter_mut().map(Reconnecting::connect)).await;

    let t0 = Instant::now();
    let schedule = Arc::new(Schedule {
        pace: spec.pace,
        t0,
        measure_from: t0 + spec.warmup,
        end: t0 + spec.warmup + spec.duration,
        give_up: t0 + spec.warmup + spec.duration + spec.drain,
        max_requests: spec.max_requests,
        next: AtomicU64::new(0),
    });
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let seed = spec
                .seed
                .wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            tokio::spawn(drive(
                schedule.clone(),
                workload.clone(),
                client,
                seed,
                spec.timeout,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for handle in handles {
        tally.merge(handle.await?);
    }
    let elapsed = tally
        .last_done
        .map(|done| done.saturating_duration_since(schedule.measure_from))
        .filter(|d| !d.is_zero())
        .unwrap_or(spec.duration);
    let scheduled = match spec.pace {
        Pace::Closed => None,
        Pace::Open { per_second } => Some(
            first_due_at(spec.warmup + spec.duration, per_second).min(spec.max_requests)
                - first_due_at(spec.warmup, per_second).min(spec.max_requests),
        ),
    };
    let missed = scheduled.map_or(0, |s| s.saturating_sub(tally.requests()));
    Ok(PhaseOutcome {
        pace: spec.pace,
        connections: spec.connections,
        warmup: spec.warmup,
        duration: spec.duration,
        elapsed,
        scheduled,
        missed,
        tally,
    })
}

/// When request `n` of an open-loop phase is due, after the phase start.
fn due_offset(n: u64, per_second: f64) -> Duration {
    Duration::try_from_secs_f64(n as f64 / per_second).unwrap_or(Duration::MAX)
}

/// The first request index due at or after `t`.
fn first_due_at(t: Duration, per_second: f64) -> u64 {
    let mut n = (t.as_secs_f64() * per_second).ceil() as u64;
    // Float rounding may put the estimate one off; settle it with the exact comparison.
    while n > 0 && due_offset(n - 1, per_second) >= t {
        n -= 1;
    }
    while due_offset(n, per_second) < t {
        n += 1;
    }
    n
}

struct Schedule {
    pace: Pace,
    t0: Instant,
    measure_from: Instant,
    end: Instant,
    give_up: Instant,
    max_requests: u64,
    next: AtomicU64,
}

struct Slot {
    /// Open loop: when the request is due.
    due: Option<Instant>,
    measured: bool,
}

impl Schedule {
    fn next_slot(&self) -> Option<Slot> {
        match self.pace {
            Pace::Closed => {
                let now = Instant::now();
                if now >= self.end || self.next.fetch_add(1, Ordering::Relaxed) >= self.max_requests
                {
                    return None;
                }
                Some(Slot {
                    due: None,
                    measured: now >= self.measure_from,
                })
            }
            Pace::Open { per_second } => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                if n >= self.max_requests {
                    return None;
                }
                let due = self.t0.checked_add(due_offset(n, per_second))?;
                if due >= self.end || Instant::now() >= self.give_up {
                    return None;
                }
                Some(Slot {
                    due: Some(due),
                    measured: due >= self.measure_from,
                })
            }
        }
    }
}

async fn drive(
    schedule: Arc<Schedule>,
    workload: Arc<dyn Workload>,
    mut client: Reconnecting,
    seed: u64,
    timeout: Duration,
) -> Tally {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    while let Some(slot) = schedule.next_slot() {
        if let Some(wake) = slot.due.and_then(|due| due.checked_sub(PACING_LEAD))
            && wake > Instant::now()
        {
            tokio::time::sleep_until(wake.into()).await;
        }
        let request = workload.next_request(&mut rng);
        let sent = Instant::now();
        let result = client.exchange(&request, timeout).await;
        let done = Instant::now();
        let failed = result.is_err();
        if slot.measured {
            let started = slot.due.map_or(sent, |due| due.min(sent));
            match result {
                Ok((status, _body)) => tally.record_status(status.as_u16(), done - started),
                Err(error) => tally.record_transport_error(error.kind()),
            }
            if let Some(due) = slot.due {
                tally.record_lag(sent.saturating_duration_since(due));
            }
            tally.last_done = Some(done);
        } else {
            tally.warmup_requests += 1;
        }
        if failed {
            tokio::time::sleep(ERROR_PAUSE).await;
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_due_at_counts_requests_due_before_a_time() {
        // 10/s: requests 0..=9 are due in the first second, so request 10 is the first at 1 s.
        assert_eq!(first_due_at(Duration::ZERO, 10.0), 0);
        assert_eq!(first_due_at(Duration::from_secs(1), 10.0), 10);
        assert_eq!(first_due_at(Duration::from_millis(1050), 10.0), 11);
        // 3/s over 1 s: due at 0, 1/3, 2/3 -> 3 requests.
        assert_eq!(first_due_at(Duration::from_secs(1), 3.0), 3);
        for n in 0..1000 {
            let t = due_offset(n, 7.3);
            assert_eq!(first_due_at(t, 7.3), n);
        }
    }

    #[test]
    fn tallies_merge_by_status() {
        let mut a = Tally::default();
        a.record_status(200, Duration::from_micros(100));
        a.record_transport_error("send");
        let mut b = Tally::default();
        b.record_status(200, Duration::from_micros(300));
        b.record_status(409, Duration::from_micros(500));
        b.record_transport_error("send");
        b.record_transport_error("timeout");
        a.merge(b);
        assert_eq!(a.status_count(200), 2);
        assert_eq!(a.status_count(409), 1);
        assert_eq!(a.responses(), 3);
        assert_eq!(a.transport_error_count(), 3);
        assert_eq!(a.requests(), 6);
        assert_eq!(a.latency_all().len(), 3);
    }
}
