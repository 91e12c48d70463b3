//! The Redis L2 cache client of vacancy.
//!
//! It stores opaque byte values under string keys, each with a version, in Redis — one
//! standalone server, several standalone servers sharded client-side by a consistent-hash
//! [`ring`], or a Redis Cluster. A write only lands if no newer or equal version is stored, so
//! a late writer can never replace fresher data with older data.
//!
//! The cache is an optimisation, never a dependency: every call is bounded by
//! [`L2Config::op_timeout`], sits behind a circuit breaker, and answers "not there"
//! ([`None`], [`PutOutcome::Unavailable`]) instead of an error when Redis is slow or down.
//! Connections are made lazily and re-made automatically, so the service starts and keeps
//! serving without Redis and uses it again when it returns.
//!
//! This crate must never know what it stores: callers serialize their values (calendars,
//! listings) and choose keys and TTLs. It must never decide anything about availability, and
//! it must never let a Redis failure become a caller's failure.
//!
//! Metrics (via the `metrics` facade):
//! - `vacancy_l2_hits_total`, `vacancy_l2_misses_total` — reads answered from Redis, per key;
//! - `vacancy_l2_errors_total{op, kind}` — `kind` is `timeout`, `redis` (an error from Redis or
//!   the connection), `open` (refused by an open breaker, no network) or `decode` (a stored
//!   value that is not ours);
//! - `vacancy_l2_writes_total{outcome}` — `written`, `stale`, `unavailable`;
//! - `vacancy_breaker_state{dependency="redis", instance}` — 0 closed, 1 open, 2 half-open
//!   (one breaker per node; `instance` is the node's address without credentials).

mod client;
mod config;
mod entry;
mod node;
pub mod ring;

pub use client::{L2, PutOutcome};
pub use config::{L2Config, L2Mode};
pub use entry::Versioned;
pub use vacancy_resilience::{BreakerConfig, BreakerState};

/// Why an [`L2`] could not be built. Only configuration problems are errors: an unreachable
/// Redis is not (the client connects lazily and logs a warning).
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// The configuration is unusable (no nodes, duplicate nodes, ...).
    #[error("invalid L2 configuration: {0}")]
    InvalidConfig(String),
    /// A node address could not be understood by the Redis client.
    #[error("invalid Redis address for L2 node {node}: {source}")]
    InvalidAddress {
        /// The position of the node in the configuration (addresses may hold passwords).
        node: usize,
        /// The Redis client's reason.
        #[source]
        source: redis::RedisError,
    },
}
