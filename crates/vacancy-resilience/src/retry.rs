//! Retries that cannot turn an outage into a storm: exponential backoff with full jitter, and
//! a retry budget shared by every caller of one dependency.
//!
//! Only idempotent operations may be retried; deciding which are is the caller's job. The
//! budget is a token bucket: every first attempt deposits `ratio` of a token, every retry
//! spends a whole one, and the bucket holds at most `reserve` tokens. In steady health the
//! bucket is full, so a brief blip is retried freely; in a long outage retries add at most
//! `ratio` of the first attempts (plus the reserve, once) to the load.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rand::Rng;

/// How retries of one dependency's idempotent calls are spaced and limited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt, at most. 0 disables retries.
    pub max_retries: u32,
    /// The first retry waits a random time in `[0, base)`; each later one doubles the range.
    pub base: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
    /// Tokens each first attempt deposits in the budget (a retry costs one token).
    pub budget_ratio: f64,
    /// Most tokens the budget holds (and starts with).
    pub budget_reserve: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            budget_ratio: 0.1,
            budget_reserve: 20,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry): uniformly random in
    /// `[0, min(max_delay, base × 2^retry)]` ("full jitter"), so clients that failed together
    /// do not retry together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        ceiling.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

/// Milli-tokens per token: the bucket counts in integers.
const MILLI: i64 = 1000;

/// A token bucket of retries shared by every caller of one dependency. Lock-free.
#[derive(Debug)]
pub struct RetryBudget {
    balance: AtomicI64,
    deposit: i64,
    cap: i64,
}

impl RetryBudget {
    /// A full budget for `policy`.
    pub fn new(policy: &RetryPolicy) -> Self {
        let cap = i64::from(policy.budget_reserve) * MILLI;
        Self {
            balance: AtomicI64::new(cap),
            deposit: (policy.budget_ratio.clamp(0.0, 1.0) * MILLI as f64).round() as i64,
            cap,
        }
    }

    /// Records a first attempt: earns a fraction of a retry.
    pub fn deposit(&self) {
        let (deposit, cap) = (self.deposit, self.cap);
        let _ = self
            .balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b < cap).then(|| (b + deposit).min(cap))
            });
    }

    /// Takes one retry from the budget; `false` (and nothing taken) when it is spent.
    pub fn try_withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b >= MILLI).then_some(b - MILLI)
            })
            .is_ok()
    }

    /// Whole retries left.
    pub fn available(&self) -> i64 {
        self.balance.load(Ordering::Relaxed) / MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            budget_ratio: 0.1,
            budget_reserve: 5,
        }
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_full_jitter() {
        let p = policy();
        let max_of = |retry| {
            (0..2000)
                .map(|_| p.backoff(retry))
                .max()
                .unwrap_or_default()
        };
        let min_of = |retry| {
            (0..2000)
                .map(|_| p.backoff(retry))
                .min()
                .unwrap_or_default()
        };
        assert!(max_of(0) <= Duration::from_millis(10));
        assert!(max_of(1) <= Duration::from_millis(20));
        assert!(max_of(1) > Duration::from_millis(10), "the range doubles");
        assert!(max_of(30) <= Duration::from_millis(50), "capped");
        assert!(max_of(u32::MAX) <= Duration::from_millis(50), "no overflow");
        assert!(
            min_of(3) < Duration::from_millis(5),
            "full jitter reaches near zero"
        );
    }

    #[test]
    fn a_full_budget_allows_the_reserve_then_only_the_ratio() {
        let budget = RetryBudget::new(&policy());
        assert_eq!(budget.available(), 5);
        let spent = (0..100).filter(|_| budget.try_withdraw()).count();
        assert_eq!(spent, 5, "the reserve, then nothing");
        // 100 first attempts at 10 % earn 10 retries.
        (0..100).for_each(|_| budget.deposit());
        let spent = (0..100).filter(|_| budget.try_withdraw()).count();
        assert_eq!(spent, 5, "capped at the reserve");
        (0..30).for_each(|_| budget.deposit());
        assert_eq!((0..100).filter(|_| budget.try_withdraw()).count(), 3);
    }

    #[test]
    fn retries_in_an_outage_stay_within_the_ratio() {
        // Every call fails; each caller retries while the budget lets it.
        let p = policy();
        let budget = RetryBudget::new(&p);
        let (mut first, mut retries) = (0u32, 0u32);
        for _ in 0..10_000 {
            first += 1;
            budget.deposit();
            for _ in 0..p.max_retries {
                if !budget.try_withdraw() {
                    break;
                }
                retries += 1;
            }
        }
        assert!(
            f64::from(retries) <= f64::from(first) * p.budget_ratio + f64::from(p.budget_reserve),
            "{retries} retries for {first} calls"
        );
        assert!(retries >= 900, "the budget is used, not hoarded: {retries}");
    }

    #[test]
    fn a_zero_ratio_budget_never_refills() {
        let budget = RetryBudget::new(&RetryPolicy {
            budget_ratio: 0.0,
            budget_reserve: 1,
            ..policy()
        });
        assert!(budget.try_withdraw());
        (0..1000).for_each(|_| budget.deposit());
        assert!(!budget.try_withdraw());
    }
}
