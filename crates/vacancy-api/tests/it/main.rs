//! HTTP-level integration tests. Every test runs twice, on SQLite and on PostgreSQL, each time
//! against its own fresh database and a real server on a free port.

mod helpers;

mod audit;
mod auth;
mod batch;
mod blocks;
mod chaos;
mod edge;
mod freshness;
mod idempotency;
mod listings;
mod nats;
mod ops;
mod overload;
mod proxy;
mod races;
mod rate_limits;
mod redis;
mod rules;
mod stays;
mod validation;
