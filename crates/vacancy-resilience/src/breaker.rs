//! A circuit breaker for one dependency (the database, one Redis node, ...).
//!
//! Closed: calls go through; after `failure_threshold` consecutive failures it opens. Open:
//! calls are refused at once, without touching the network, until `cool_down` has passed;
//! then it is half-open and lets exactly one probe through: success closes it, failure opens
//! it again for another cool-down. Every change of state is logged and exported as the gauge
//! `vacancy_breaker_state{dependency, instance}` (0 closed, 1 open, 2 half-open) and counted in
//! `vacancy_breaker_transitions_total{dependency, instance, to}`.
//!
//! It knows nothing about what it guards: callers report each outcome through a [`Permit`]
//! (and decide which errors count as failures). It must never block or sleep — it is a few
//! comparisons under a mutex held for nanoseconds.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// When to stop calling a failing dependency and when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (errors or timeouts) that open the breaker. Default 5.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through. Default 1 s.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
        }
    }
}

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused without touching the network.
    Open,
    /// One probe call is allowed through to decide between closed and open.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `vacancy_breaker_state` gauge.
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }

    /// `closed`, `open` or `half-open`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }

    /// How unhealthy: closed < half-open < open.
    pub fn severity(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// One circuit breaker. Share it (`Arc`) between the callers of one dependency instance.
pub struct Breaker {
    /// What it guards, e.g. `database` or `redis`: a metric label and a log field.
    dependency: &'static str,
    /// Which one, e.g. a node address without credentials: a metric label and a log field.
    instance: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Instant,
    probe_in_flight: bool,
}

impl Breaker {
    /// A closed breaker for `instance` of `dependency`.
    pub fn new(dependency: &'static str, instance: String, config: BreakerConfig) -> Self {
        metrics::gauge!("vacancy_breaker_state", "dependency" => dependency, "instance" => instance.clone())
            .set(BreakerState::Closed.gauge_value());
        Self {
            dependency,
            instance,
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: Instant::now(),
                probe_in_flight: false,
            }),
        }
    }

    /// The guarded instance's name.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// The configuration it was built with.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// How long until an open breaker lets a probe through (zero when it is not open): what a
    /// refused caller can tell its own caller in `Retry-After`.
    pub fn retry_after(&self) -> Duration {
        let inner = self.lock();
        match inner.state {
            BreakerState::Open => self
                .config
                .cool_down
                .saturating_sub(inner.opened_at.elapsed()),
            BreakerState::Closed | BreakerState::HalfOpen => Duration::ZERO,
        }
    }

    /// Asks to make one call. `None` means "refused: do not touch the dependency".
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => Some(Permit::new(self, false)),
            BreakerState::Open => {
                if now.saturating_duration_since(inner.opened_at) < self.config.cool_down {
                    return None;
                }
                self.transition(&mut inner, BreakerState::HalfOpen);
                inner.probe_in_flight = true;
                Some(Permit::new(self, true))
            }
            BreakerState::HalfOpen if inner.probe_in_flight => None,
            BreakerState::HalfOpen => {
                inner.probe_in_flight = true;
                Some(Permit::new(self, true))
            }
        }
    }

    fn record(&self, success: bool, probe: bool, now: Instant) {
        let mut inner = self.lock();
        if probe {
            inner.probe_in_flight = false;
        }
        match (inner.state, probe) {
            (BreakerState::Closed, _) if success => inner.consecutive_failures = 0,
            (BreakerState::Closed, _) => {
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                if inner.consecutive_failures >= self.config.failure_threshold {
                    inner.opened_at = now;
                    self.transition(&mut inner, BreakerState::Open);
                }
            }
            (BreakerState::HalfOpen, true) if success => {
                inner.consecutive_failures = 0;
                self.transition(&mut inner, BreakerState::Closed);
            }
            (BreakerState::HalfOpen, true) => {
                inner.opened_at = now;
                self.transition(&mut inner, BreakerState::Open);
            }
            // Late outcomes of calls admitted before the breaker opened: only the probe
            // decides when to close again.
            (BreakerState::Open | BreakerState::HalfOpen, _) => {}
        }
    }

    /// A permit dropped without an outcome (its call was cancelled) frees the probe slot so
    /// the next call can probe; it says nothing about Redis's health.
    fn release_probe(&self) {
        self.lock().probe_in_flight = false;
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        let from = inner.state;
        inner.state = to;
        let (dependency, instance) = (self.dependency, self.instance.as_str());
        metrics::gauge!("vacancy_breaker_state", "dependency" => dependency, "instance" => instance.to_owned())
            .set(to.gauge_value());
        metrics::counter!("vacancy_breaker_transitions_total", "dependency" => dependency, "instance" => instance.to_owned(), "to" => to.name())
            .increment(1);
        let (from, to_name) = (from.name(), to.name());
        match to {
            BreakerState::Open => tracing::warn!(
                dependency,
                instance,
                from,
                to = to_name,
                consecutive_failures = inner.consecutive_failures,
                cool_down_ms = self.config.cool_down.as_millis() as u64,
                "circuit breaker opened: calls refused until the cool-down ends"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(
                    dependency,
                    instance,
                    from,
                    to = to_name,
                    "circuit breaker probing"
                )
            }
            BreakerState::Closed => {
                tracing::info!(
                    dependency,
                    instance,
                    from,
                    to = to_name,
                    "circuit breaker closed: the dependency answers again"
                )
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent whatever panicked while holding the lock: each update is
        // a handful of field writes.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Leave to make one call; report how it went with [`Permit::success`] or [`Permit::failure`].
/// A permit dropped without a report (its call was cancelled) says nothing about health.
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a Breaker, probe: bool) -> Self {
        Self {
            breaker,
            probe,
            reported: false,
        }
    }

    /// The call succeeded (or failed for a reason that says nothing about health).
    pub fn success(self) {
        self.finish(true, Instant::now());
    }

    /// The call failed in a way that says the dependency is unhealthy (error, timeout).
    pub fn failure(self) {
        self.finish(false, Instant::now());
    }

    fn finish(mut self, success: bool, now: Instant) {
        self.reported = true;
        self.breaker.record(success, self.probe, now);
    }

    /// Reports a result: `Ok` is a success, `Err` a failure.
    pub fn report<T, E>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.success(),
            Err(_) => self.failure(),
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(1);

    fn breaker() -> Breaker {
        Breaker::new(
            "test",
            "one".to_owned(),
            BreakerConfig {
                failure_threshold: 3,
                cool_down: COOL_DOWN,
            },
        )
    }

    fn call(b: &Breaker, now: Instant, success: bool) {
        let permit = b.try_acquire_at(now);
        assert!(permit.is_some(), "expected a permit while {:?}", b.state());
        if let Some(permit) = permit {
            permit.finish(success, now);
        }
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = breaker();
        let t0 = Instant::now();
        call(&b, t0, false);
        call(&b, t0, false);
        assert_eq!(b.state(), BreakerState::Closed);
        call(&b, t0, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire_at(t0 + COOL_DOWN / 2).is_none());
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker();
        let t0 = Instant::now();
        call(&b, t0, false);
        call(&b, t0, false);
        call(&b, t0, true);
        call(&b, t0, false);
        call(&b, t0, false);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_closes_on_success() {
        let b = breaker();
        let t0 = Instant::now();
        (0..3).for_each(|_| call(&b, t0, false));
        let later = t0 + COOL_DOWN;
        let probe = b.try_acquire_at(later);
        assert!(probe.as_ref().is_some_and(|p| p.probe));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(
            b.try_acquire_at(later).is_none(),
            "only one probe at a time"
        );
        if let Some(probe) = probe {
            probe.finish(true, later);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire_at(later).is_some());
    }

    #[test]
    fn a_failed_probe_reopens_for_a_full_cool_down() {
        let b = breaker();
        let t0 = Instant::now();
        (0..3).for_each(|_| call(&b, t0, false));
        let later = t0 + COOL_DOWN;
        call(&b, later, false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire_at(later + COOL_DOWN / 2).is_none());
        assert!(b.try_acquire_at(later + COOL_DOWN).is_some());
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot() {
        let b = breaker();
        let t0 = Instant::now();
        (0..3).for_each(|_| call(&b, t0, false));
        let later = t0 + COOL_DOWN;
        drop(b.try_acquire_at(later));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire_at(later).is_some(), "the next call may probe");
    }

    #[test]
    fn late_outcomes_while_open_change_nothing() {
        let b = breaker();
        let t0 = Instant::now();
        let slow_ok = b.try_acquire_at(t0);
        (0..3).for_each(|_| call(&b, t0, false));
        if let Some(slow_ok) = slow_ok {
            slow_ok.finish(true, t0);
        }
        assert_eq!(b.state(), BreakerState::Open, "only the probe may close it");
    }

    #[test]
    fn a_late_failure_while_open_does_not_extend_the_cool_down() {
        let b = breaker();
        let t0 = Instant::now();
        let slow = b.try_acquire_at(t0);
        (0..3).for_each(|_| call(&b, t0, false));
        if let Some(slow) = slow {
            slow.finish(false, t0 + COOL_DOWN / 2);
        }
        assert!(b.try_acquire_at(t0 + COOL_DOWN).is_some());
    }

    #[test]
    fn retry_after_tells_the_rest_of_the_cool_down() {
        let b = breaker();
        assert_eq!(b.retry_after(), Duration::ZERO);
        (0..3).for_each(|_| call(&b, Instant::now(), false));
        let left = b.retry_after();
        assert!(left > Duration::ZERO && left <= COOL_DOWN, "{left:?}");
    }
}
