//! Shedding by queueing delay: the runtime's scheduling lag as the signal of a queue no bulkhead
//! sees.
//!
//! The bulkheads in [`crate::shed`] count requests once hyper has parsed them. When the CPU
//! itself is saturated, the queue forms before that — connections whose bytes have arrived wait
//! in the runtime's run queue for a worker — and no bulkhead ever fills while latency grows
//! without bound. That queue is invisible per request, but every task in it waits about as long
//! as any other, so a probe task that asks to wake every [`TICK`] and notes how late it runs
//! measures it.
//!
//! A burst is not a queue: what counts is the lag over a window of [`WINDOW`], each wake's
//! lateness weighted by how long it lasted — the delay a request arriving at a random moment of
//! the window would have seen. A burst that drains within a few milliseconds barely moves it.
//! Each class has a threshold on that lag — batch checks (the most work per request) the target,
//! single reads twice it, writes (bookings: the marketplace's revenue, and mostly waiting on the
//! database) four times it — and a fraction of its new requests that is shed, which the probe
//! adjusts after every window as PIE does for packets: up while the lag is over the
//! threshold (more the further over, and the faster it grows), down while it is under. Past
//! capacity the fraction settles where the admitted work keeps the lag near the threshold; when
//! the spike is over it falls to zero within a few windows. Shed requests get the same fast
//! `503 overloaded` with `Retry-After` as a full bulkhead, spread evenly over the class's
//! requests (every n-th, not at random).
//!
//! A shed costs the service the request's head and nothing else: no token check, no body, no
//! handler. So past capacity the service spends its CPU on what it admits.
//!
//! Invariants: the probe starts with the first request (inside the server's runtime) and stops
//! once the router that owns the [`Pressure`] is dropped; before the first full window nothing
//! is shed; a lag at or under a class's threshold never raises its fraction. Metrics: the gauges
//! `vacancy_runtime_lag_seconds` (the last window's lag) and
//! `vacancy_shed_fraction{class}`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::shed::Class;

/// How often the probe asks to wake.
pub const TICK: Duration = Duration::from_millis(1);
/// The span the lag is averaged over; the fractions change once per window.
pub const WINDOW: Duration = Duration::from_millis(20);

/// Fractions are kept in millionths.
const WHOLE: u64 = 1_000_000;
const CLASSES: [Class; 3] = [Class::Batch, Class::Read, Class::Write];

/// The scheduling lag of the runtime that serves requests, and the shedding it implies.
#[derive(Debug)]
pub struct Pressure {
    target: Duration,
    /// The last window's lag, in microseconds.
    lag_micros: AtomicU64,
    /// Per class (in [`CLASSES`] order): the fraction of new requests shed, in millionths.
    fractions: [AtomicU64; 3],
    /// Per class: the sum of the fractions of every request seen; each time it passes a whole
    /// number, one request is shed.
    tallies: [AtomicU64; 3],
    started: AtomicBool,
}

impl Pressure {
    /// Shedding from a lag of `target` (batch), `2 × target` (reads), `4 × target`
    /// (writes).
    pub fn new(target: Duration) -> Arc<Self> {
        Arc::new(Self {
            target,
            lag_micros: AtomicU64::new(0),
            fractions: Default::default(),
            tallies: Default::default(),
            started: AtomicBool::new(false),
        })
    }

    /// Starts the probe on the current runtime, once.
    pub fn ensure_started(self: &Arc<Self>) {
        if !self.started.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(probe(Arc::downgrade(self)));
        }
    }

    /// The last window's lag.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_micros.load(Ordering::Relaxed))
    }

    /// The fraction of `class`'s new requests shed now, in `0.0..=1.0`.
    pub fn fraction(&self, class: Class) -> f64 {
        self.fractions[index(class)].load(Ordering::Relaxed) as f64 / WHOLE as f64
    }

    /// Whether this new request of `class` is shed.
    pub fn sheds(&self, class: Class) -> bool {
        let i = index(class);
        let fraction = self.fractions[i].load(Ordering::Relaxed);
        if fraction == 0 {
            return false;
        }
        let before = self.tallies[i].fetch_add(fraction, Ordering::Relaxed);
        (before + fraction) / WHOLE > before / WHOLE
    }

    fn threshold(&self, class: Class) -> Duration {
        let factor = match class {
            Class::Batch => 1,
            Class::Read => 2,
            Class::Write => 4,
        };
        self.target.saturating_mul(factor)
    }

    /// One window's outcome: its lag, after `previous`.
    fn update(&self, lag: Duration, previous: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.lag_micros.store(micros, Ordering::Relaxed);
        metrics::gauge!("vacancy_runtime_lag_seconds").set(lag.as_secs_f64());
        for class in CLASSES {
            let slot = &self.fractions[index(class)];
            let now = slot.load(Ordering::Relaxed) as f64 / WHOLE as f64;
            let next = adjust(now, lag, previous, self.threshold(class));
            slot.store((next * WHOLE as f64).round() as u64, Ordering::Relaxed);
            metrics::gauge!("vacancy_shed_fraction", "class" => class.as_str()).set(next);
        }
    }
}

fn index(class: Class) -> usize {
    match class {
        Class::Batch => 0,
        Class::Read => 1,
        Class::Write => 2,
    }
}

/// The next shed fraction of a class with `threshold`, from `fraction`, after a window whose
/// lag was `lag` (the one before: `previous`).
///
/// Over the threshold it rises by 5 % plus a tenth of how far over (relative to the threshold)
/// plus more if the lag grew, at most by half in one window; at or under, it falls by 5–15 %
/// (more the lower the lag).
fn adjust(fraction: f64, lag: Duration, previous: Duration, threshold: Duration) -> f64 {
    let threshold = threshold.as_secs_f64().max(1e-6);
    let lag = lag.as_secs_f64();
    let step = if lag > threshold {
        let over = (lag - threshold) / threshold;
        let growth = ((lag - previous.as_secs_f64()) / threshold).max(0.0);
        (0.05 + 0.1 * over + 0.15 * growth).min(0.5)
    } else {
        -(0.05 + 0.1 * (threshold - lag) / threshold)
    };
    (fraction + step).clamp(0.0, 1.0)
}

/// Wakes every [`TICK`], and at the end of each [`WINDOW`] hands the window's lag to its
/// `Pressure`; ends when that is gone.
async fn probe(pressure: Weak<Pressure>) {
    let mut previous = Duration::ZERO;
    loop {
        let window = Instant::now();
        let mut lag = WindowLag::default();
        while window.elapsed() < WINDOW {
            let asked = Instant::now();
            tokio::time::sleep(TICK).await;
            lag.add(asked.elapsed());
        }
        let Some(pressure) = pressure.upgrade() else {
            return;
        };
        let lag = lag.mean();
        pressure.update(lag, previous);
        previous = lag;
    }
}

/// The lag of one window: each wake's lateness, weighted by how long its sleep took, so that a
/// long stall counts for as long as it lasted (as it does for the requests that arrive in it).
#[derive(Debug, Default)]
struct WindowLag {
    weighted_nanos: u128,
    total_nanos: u128,
}

impl WindowLag {
    /// One sleep of [`TICK`] that took `took`.
    fn add(&mut self, took: Duration) {
        // The timer rounds up to whole milliseconds: up to 1 ms late is on time.
        let late = took.saturating_sub(TICK + Duration::from_millis(1));
        self.weighted_nanos += late.as_nanos() * took.as_nanos();
        self.total_nanos += took.as_nanos();
    }

    fn mean(&self) -> Duration {
        let nanos = self
            .weighted_nanos
            .checked_div(self.total_nanos)
            .unwrap_or(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_fraction_rises_only_over_the_threshold_and_falls_back_to_zero() {
        let t = 5 * MS;
        assert_eq!(
            adjust(0.0, 5 * MS, Duration::ZERO, t),
            0.0,
            "at the threshold"
        );
        assert_eq!(
            adjust(0.0, 4 * MS, Duration::ZERO, t),
            0.0,
            "growing, but under"
        );
        let a_little = adjust(0.0, 6 * MS, 6 * MS, t);
        let a_lot = adjust(0.0, 15 * MS, 15 * MS, t);
        let growing = adjust(0.0, 6 * MS, Duration::ZERO, t);
        assert!(a_little > 0.0 && a_lot > a_little && growing > a_little);
        assert_eq!(adjust(0.9, 500 * MS, Duration::ZERO, t), 1.0, "clamped");
        assert_eq!(
            adjust(0.0, 500 * MS, Duration::ZERO, t),
            0.5,
            "at most half in one window"
        );
        let mut fraction = 1.0;
        let windows = (0..).position(|_| {
            fraction = adjust(fraction, Duration::ZERO, Duration::ZERO, t);
            fraction == 0.0
        });
        assert_eq!(
            windows,
            Some(6),
            "a drained queue sheds nothing 7 windows on"
        );
    }

    #[test]
    fn a_window_weighs_each_wake_by_how_long_it_took() {
        assert_eq!(WindowLag::default().mean(), Duration::ZERO);
        let mut on_time = WindowLag::default();
        for _ in 0..20 {
            on_time.add(2 * MS);
        }
        assert_eq!(
            on_time.mean(),
            Duration::ZERO,
            "within the timer's rounding"
        );
        // Nine wakes on time (2 ms each) and one stall of 22 ms (20 ms late): the stall is
        // 22 of the 40 ms, so the mean lag is 20 × 22 / 40 = 11 ms.
        let mut stalled = WindowLag::default();
        for _ in 0..9 {
            stalled.add(2 * MS);
        }
        stalled.add(22 * MS);
        assert_eq!(stalled.mean(), 11 * MS);
    }

    #[test]
    fn classes_shed_in_order_of_their_thresholds_and_evenly() {
        let pressure = Pressure::new(5 * MS);
        let fractions = |p: &Pressure| CLASSES.map(|c| p.fraction(c) > 0.0);
        pressure.update(7 * MS, 7 * MS);
        assert_eq!(fractions(&pressure), [true, false, false]);
        pressure.update(12 * MS, 12 * MS);
        assert_eq!(fractions(&pressure), [true, true, false]);
        pressure.update(25 * MS, 25 * MS);
        assert_eq!(fractions(&pressure), [true, true, true]);
        assert_eq!(pressure.lag(), 25 * MS);
        for _ in 0..20 {
            pressure.update(Duration::ZERO, Duration::ZERO);
        }
        assert_eq!(fractions(&pressure), [false, false, false], "recovered");
        assert!((0..1000).all(|_| !pressure.sheds(Class::Batch)));

        // A quarter: exactly every fourth request.
        pressure.fractions[index(Class::Read)].store(WHOLE / 4, Ordering::Relaxed);
        let shed = (0..1000).filter(|_| pressure.sheds(Class::Read)).count();
        assert_eq!(shed, 250);
        pressure.fractions[index(Class::Read)].store(WHOLE, Ordering::Relaxed);
        assert!((0..1000).all(|_| pressure.sheds(Class::Read)));
        assert!(!pressure.sheds(Class::Write));
    }

    /// A runtime whose only worker is kept busy lags; once it is free again the lag goes away.
    #[tokio::test(flavor = "current_thread", start_paused = false)]
    async fn the_probe_sees_a_blocked_runtime_and_its_recovery() {
        let pressure = Pressure::new(Duration::from_millis(5));
        pressure.ensure_started();
        // Each hog holds the only worker for 20 ms at a time, for about half a second.
        let until = Instant::now() + Duration::from_millis(500);
        let mut worst = Duration::ZERO;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            tokio::task::yield_now().await;
            worst = worst.max(pressure.lag());
        }
        assert!(
            worst > Duration::from_millis(10),
            "lag while blocked: {worst:?}"
        );
        assert!(pressure.fraction(Class::Batch) > 0.0);
        // Free: within a bounded number of windows nothing is shed any more.
        let mut recovered = false;
        for _ in 0..100 {
            tokio::time::sleep(WINDOW).await;
            if CLASSES.iter().all(|&c| pressure.fraction(c) == 0.0) {
                recovered = true;
                break;
            }
        }
        assert!(recovered, "still {:?}", pressure.lag());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_probe_stops_with_its_pressure() {
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let pressure = Pressure::new(Duration::from_millis(5));
        pressure.ensure_started();
        pressure.ensure_started();
        assert_eq!(tasks(), 1, "one probe, however often it is started");
        drop(pressure);
        for _ in 0..40 {
            if tasks() == 0 {
                return;
            }
            tokio::time::sleep(WINDOW).await;
        }
        panic!("the probe outlived its pressure");
    }
}
