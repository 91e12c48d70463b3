//! A circuit breaker for one Redis node (or one cluster).
//!
//! Closed: calls go through; after `failure_threshold` consecutive failures it opens. Open:
//! calls are refused at once, without touching the network, until `cool_down` has passed;
//! then it is half-open and lets exactly one probe through: success closes it, failure opens
//! it again for another cool-down. Every change of state is logged and exported as the gauge
//! `vacancy_l2_breaker_state{node}` (0 closed, 1 open, 2 half-open).
//!
//! It knows nothing about Redis: callers report each outcome through a [`Permit`]. It must
//! never block or sleep — it is a few comparisons under a mutex held for nanoseconds.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// When to stop calling a failing Redis and when to try again.
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
    /// The value of the `vacancy_l2_breaker_state` gauge.
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }

    /// How unhealthy: closed < half-open < open.
    pub(crate) fn severity(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

pub(crate) struct Breaker {
    /// The node's address without credentials, used in logs and as the gauge label.
    node: String,
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
    pub(crate) fn new(node: String, config: BreakerConfig) -> Self {
        metrics::gauge!("vacancy_l2_breaker_state", "node" => node.clone())
            .set(BreakerState::Closed.gauge_value());
        Self {
            node,
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: Instant::now(),
                probe_in_flight: false,
            }),
        }
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Asks to make one call. `None` means "refused: do not touch the network".
    pub(crate) fn try_acquire(&self) -> Option<Permit<'_>> {
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
        metrics::gauge!("vacancy_l2_breaker_state", "node" => self.node.clone())
            .set(to.gauge_value());
        let (node, from, to_name) = (self.node.as_str(), from.name(), to.name());
        match to {
            BreakerState::Open => tracing::warn!(
                node,
                from,
                to = to_name,
                consecutive_failures = inner.consecutive_failures,
                cool_down_ms = self.config.cool_down.as_millis() as u64,
                "L2 circuit breaker opened: Redis calls refused until the cool-down ends"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(node, from, to = to_name, "L2 circuit breaker probing Redis")
            }
            BreakerState::Closed => {
                tracing::info!(
                    node,
                    from,
                    to = to_name,
                    "L2 circuit breaker closed: Redis is back"
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
pub(crate) struct Permit<'a> {
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

    pub(crate) fn success(self) {
        self.finish(true, Instant::now());
    }

    pub(crate) fn failure(self) {
        self.finish(false, Instant::now());
    }

    fn finish(mut self, success: bool, now: Instant) {
        self.reported = true;
        self.breaker.record(success, self.probe, now);
    }

    /// Reports a result: `Ok` is a success, `Err` a failure.
    pub(crate) fn report<T, E>(self, result: &Result<T, E>) {
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
            "test".to_owned(),
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
}
