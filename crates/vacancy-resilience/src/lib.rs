//! Fault-tolerance parts shared by vacancy's dependency clients (database, Redis): a
//! [`Breaker`] per dependency instance, and [`RetryPolicy`] with a shared [`RetryBudget`] for
//! idempotent calls. Pure logic and atomics: no I/O, no sleeping, no runtime.
//!
//! Metrics (via the `metrics` facade):
//! - `vacancy_breaker_state{dependency, instance}` — 0 closed, 1 open, 2 half-open;
//! - `vacancy_breaker_transitions_total{dependency, instance, to}`.

mod breaker;
mod retry;

pub use breaker::{Breaker, BreakerConfig, BreakerState, Permit};
pub use retry::{RetryBudget, RetryPolicy};
