//! The store's error type. The HTTP edge maps each variant to one problem type; nothing here
//! knows about HTTP.

use vacancy_core::{Night, Reason, RuleError};

use crate::ClaimState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Some nights lack free units: taken by bookings, live holds or blocks.
    #[error("nights unavailable: {nights:?}")]
    Conflict { nights: Vec<Night> },
    /// The request breaks the listing's stay rules.
    #[error("stay rules broken: {0:?}")]
    RulesBroken(Vec<Reason>),
    /// A listing rule value is out of range or inconsistent.
    #[error(transparent)]
    RulesInvalid(RuleError),
    /// The claim is not in a state that allows the operation (e.g. confirming an expired hold).
    #[error("{what} is {state}")]
    WrongState {
        what: &'static str,
        state: ClaimState,
    },
    /// A listing with this id already exists.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database did not answer within the call's deadline (the call was abandoned; a
    /// write was rolled back unless its commit had already reached the database).
    #[error("database call {op} timed out after {after:?}")]
    TimedOut {
        op: &'static str,
        after: std::time::Duration,
    },
    /// The database's circuit breaker is open after repeated failures: the call was refused
    /// without touching the database.
    #[error("database circuit breaker open; retry in {retry_after:?}")]
    CircuitOpen { retry_after: std::time::Duration },
    /// Anything else the database said; a bug or a broken database, never bad input.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored row holds a value the domain refuses (a corrupted or hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            sqlx::Error::Database(ref db) if is_busy(db.as_ref()) => StoreError::Unavailable(err),
            other => StoreError::Database(other),
        }
    }
}

/// Whether the database refused the write because of the night-usage CHECK constraint.
pub(crate) fn is_capacity_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_check_violation()
                && (db.constraint() == Some("night_usage_within_units")
                    || db.message().contains("night_usage_within_units"))
        }
        _ => false,
    }
}

/// SQLite's "database is locked" after its busy timeout, PostgreSQL's admin shutdown or
/// too-many-connections: the database is there but cannot serve us now.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(
        db.code().as_deref(),
        Some("5" | "6" | "57P01" | "57P03" | "53300")
    )
}
