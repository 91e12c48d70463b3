//! Persistence for vacancy: listings, claims (holds, bookings, blocks), the night-usage ledger,
//! the outbox and idempotency records, on SQLite (embedded default) or PostgreSQL.
//!
//! This is the only crate that knows SQL. Both databases run the same statements through
//! `sqlx::Any`: nights are stored as day numbers and instants as epoch milliseconds, and the
//! dialects differ only in their migrations.
//!
//! Invariants this crate keeps:
//! - every write is one transaction that locks the listing row first (by bumping its
//!   `version`), checks rules against the calendar it then reads, claims nights in
//!   `night_usage` — where a CHECK constraint refuses `used > capacity`, so the database itself
//!   forbids overbooking whatever the application believes — and appends one outbox event;
//! - an expired hold never blocks anyone: it is released inside the next claiming transaction
//!   on its listing, by [`Store::expire_holds`], and reads ignore it regardless;
//! - a write through a handle made by [`Store::acting_as`] appends its audit row in its own
//!   transaction;
//! - "now" is always a parameter, so tests control time.

mod audit;
mod error;
mod guard;
mod idempotency;
mod listings;
mod model;
mod pool;
mod reads;
mod relay;
mod writes;

pub mod testing;

pub use audit::{Actor, AuditRecord, MAX_AUDIT_PAGE};
pub use error::StoreError;
pub use guard::DbPolicy;
pub use idempotency::{IdemBegin, IdemCommit, IdemKey, StoredResponse};
pub use model::{Claim, ClaimState, Event, Kind, Listing, ListingSnapshot, NewListing, RulesPatch};
pub use pool::{Backend, CommitHook, Store, StoreOptions};
pub use reads::AuditFinding;
pub use relay::OutboxRow;
pub use vacancy_resilience::{BreakerConfig, BreakerState, RetryPolicy};
pub use writes::StayClaim;
