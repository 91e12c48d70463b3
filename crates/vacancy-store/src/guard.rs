//! Every database call the service makes on a request's behalf goes through here: bounded by a
//! deadline, refused at once while the database's circuit breaker is open, and — for reads
//! only, which are idempotent — retried after a transient connection error with exponential
//! backoff and full jitter, within a retry budget shared by the whole store.
//!
//! Writes are never retried here: a write whose outcome is unknown (a timeout during commit)
//! is for the client to retry with its Idempotency-Key, which the store answers exactly once.
//! A timed-out write is dropped, and dropping a sqlx transaction rolls it back.
//!
//! Only failures that say the database is unhealthy count against the breaker: connection
//! errors, pool exhaustion and timeouts. A conflict, a missing row or a rule refusal is a
//! healthy answer.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use vacancy_resilience::{Breaker, BreakerConfig, BreakerState, RetryBudget, RetryPolicy};

use crate::{Store, StoreError};

/// Deadlines, breaker and retries for database calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbPolicy {
    /// Longest a read (with its retries) may take before it fails as timed out.
    pub read_timeout: Duration,
    /// Longest a write transaction may take, from asking for a connection to its commit.
    pub write_timeout: Duration,
    /// When consecutive failures stop all calls, and for how long.
    pub breaker: BreakerConfig,
    /// How reads are retried after a transient error.
    pub retry: RetryPolicy,
}

impl Default for DbPolicy {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            breaker: BreakerConfig {
                failure_threshold: 5,
                cool_down: Duration::from_secs(1),
            },
            retry: RetryPolicy::default(),
        }
    }
}

pub(crate) struct Guard {
    policy: DbPolicy,
    breaker: Breaker,
    budget: RetryBudget,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy)
            .field("breaker", &self.breaker.state())
            .finish()
    }
}

impl Guard {
    pub(crate) fn new(policy: DbPolicy, instance: String) -> Self {
        Self {
            breaker: Breaker::new("database", instance, policy.breaker),
            budget: RetryBudget::new(&policy.retry),
            policy,
        }
    }
}

impl StoreError {
    /// Whether the error says the database could not answer (unreachable, too slow, or its
    /// breaker open) rather than what it answered: the caller may serve a cached copy.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::TimedOut { .. }
                | StoreError::CircuitOpen { .. }
        )
    }
}

impl Store {
    /// The database breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.guard.breaker.state()
    }

    /// The deadlines, breaker and retry settings this store was opened with.
    pub fn policy(&self) -> DbPolicy {
        self.guard.policy
    }

    /// Runs an idempotent read: `attempt` makes one try; transient failures are retried while
    /// the deadline and the budget allow.
    pub(crate) async fn guarded_read<T, F, Fut>(
        &self,
        op: &'static str,
        mut attempt: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let guard = &self.guard;
        let deadline = Instant::now() + guard.policy.read_timeout;
        guard.budget.deposit();
        let mut retry = 0;
        loop {
            let result = self.once(op, deadline, attempt()).await;
            let transient = matches!(result, Err(StoreError::Unavailable(_)));
            if !transient || retry >= guard.policy.retry.max_retries {
                return result;
            }
            let wait = guard.policy.retry.backoff(retry);
            if Instant::now() + wait >= deadline || !guard.budget.try_withdraw() {
                return result;
            }
            metrics::counter!("vacancy_db_retries_total", "op" => op).increment(1);
            tracing::debug!(
                op,
                retry,
                wait_ms = wait.as_millis() as u64,
                "retrying a database read"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// Runs one write transaction (never retried).
    pub(crate) async fn guarded_write<T>(
        &self,
        op: &'static str,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.guard.policy.write_timeout;
        self.once(op, deadline, write).await
    }

    async fn once<T>(
        &self,
        op: &'static str,
        deadline: Instant,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let breaker = &self.guard.breaker;
        let Some(permit) = breaker.try_acquire() else {
            metrics::counter!("vacancy_db_errors_total", "op" => op, "kind" => "open").increment(1);
            return Err(StoreError::CircuitOpen {
                retry_after: breaker.retry_after(),
            });
        };
        let started = Instant::now();
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => {
                match &result {
                    Err(err) if err.is_unavailable() => {
                        metrics::counter!("vacancy_db_errors_total", "op" => op, "kind" => "unavailable")
                            .increment(1);
                        permit.failure();
                    }
                    _ => permit.success(),
                }
                result
            }
            Err(_) => {
                metrics::counter!("vacancy_db_errors_total", "op" => op, "kind" => "timeout")
                    .increment(1);
                permit.failure();
                Err(StoreError::TimedOut {
                    op,
                    after: started.elapsed(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::StoreOptions;

    async fn store(policy: DbPolicy) -> Store {
        let mut options = StoreOptions::new("sqlite::memory:");
        options.policy = policy;
        Store::connect(&options).await.expect("in-memory SQLite")
    }

    fn policy(max_retries: u32, budget_reserve: u32) -> DbPolicy {
        DbPolicy {
            retry: RetryPolicy {
                max_retries,
                base: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
                budget_ratio: 0.0,
                budget_reserve,
            },
            breaker: BreakerConfig {
                failure_threshold: 100,
                cool_down: Duration::from_secs(60),
            },
            ..DbPolicy::default()
        }
    }

    fn transient() -> StoreError {
        StoreError::Unavailable(sqlx::Error::PoolTimedOut)
    }

    /// A read that fails transiently `failures` times, then answers; counts its attempts.
    async fn flaky_read(
        store: &Store,
        failures: u32,
        attempts: &AtomicU32,
    ) -> Result<u32, StoreError> {
        store
            .guarded_read("test", move || async move {
                let n = attempts.fetch_add(1, Ordering::Relaxed);
                if n < failures {
                    Err(transient())
                } else {
                    Ok(n)
                }
            })
            .await
    }

    #[tokio::test]
    async fn a_transient_read_failure_is_retried_up_to_the_limit() {
        let store = store(policy(2, 100)).await;
        let attempts = &AtomicU32::new(0);
        assert_eq!(flaky_read(&store, 2, attempts).await.expect("third try"), 2);
        let attempts = &AtomicU32::new(0);
        assert!(flaky_read(&store, 3, attempts).await.is_err());
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            3,
            "one try and two retries"
        );
    }

    #[tokio::test]
    async fn retries_stop_when_the_budget_is_spent() {
        let store = store(policy(2, 3)).await;
        let attempts = &AtomicU32::new(0);
        for _ in 0..5 {
            let _ = flaky_read(&store, u32::MAX, attempts).await;
        }
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            5 + 3,
            "five first tries, three retries"
        );
    }

    #[tokio::test]
    async fn answers_and_refusals_are_not_retried_and_writes_never_are() {
        let store = store(policy(2, 100)).await;
        let attempts = &AtomicU32::new(0);
        let conflict: Result<(), _> = store
            .guarded_read("test", move || async move {
                attempts.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::NotFound("listing"))
            })
            .await;
        assert!(matches!(conflict, Err(StoreError::NotFound(_))));
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
        let attempts = &AtomicU32::new(0);
        let write: Result<(), _> = store
            .guarded_write("test", async move {
                attempts.fetch_add(1, Ordering::Relaxed);
                Err(transient())
            })
            .await;
        assert!(write.is_err());
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_slow_call_times_out_at_its_deadline() {
        let store = store(DbPolicy {
            read_timeout: Duration::from_millis(50),
            write_timeout: Duration::from_millis(80),
            ..policy(2, 100)
        })
        .await;
        let started = std::time::Instant::now();
        let read: Result<(), _> = store
            .guarded_read("slow", || async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(read, Err(StoreError::TimedOut { op: "slow", .. })),
            "{read:?}"
        );
        let write: Result<(), _> = store
            .guarded_write("slow", async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(write, Err(StoreError::TimedOut { .. })),
            "{write:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_breaker_opens_on_failures_and_then_refuses_without_calling() {
        let store = store(DbPolicy {
            breaker: BreakerConfig {
                failure_threshold: 2,
                cool_down: Duration::from_secs(60),
            },
            ..policy(0, 0)
        })
        .await;
        let attempts = &AtomicU32::new(0);
        for _ in 0..2 {
            assert!(matches!(
                flaky_read(&store, u32::MAX, attempts).await,
                Err(StoreError::Unavailable(_))
            ));
        }
        assert_eq!(store.breaker_state(), BreakerState::Open);
        let refused = flaky_read(&store, 0, attempts).await;
        assert!(
            matches!(refused, Err(StoreError::CircuitOpen { retry_after }) if retry_after > Duration::from_secs(50)),
            "{refused:?}"
        );
        assert_eq!(
            attempts.load(Ordering::Relaxed),
            2,
            "refused without a call"
        );
        assert!(store.ready().await.is_err(), "not ready while open");
        // A conflict or a missing row is a healthy answer: it never opens the breaker.
        let healthy = store_with_threshold(1).await;
        for _ in 0..3 {
            let _: Result<(), _> = healthy
                .guarded_write("w", async {
                    Err(StoreError::Conflict { nights: Vec::new() })
                })
                .await;
        }
        assert_eq!(healthy.breaker_state(), BreakerState::Closed);
    }

    async fn store_with_threshold(failure_threshold: u32) -> Store {
        store(DbPolicy {
            breaker: BreakerConfig {
                failure_threshold,
                cool_down: Duration::from_secs(60),
            },
            ..policy(0, 0)
        })
        .await
    }
}
