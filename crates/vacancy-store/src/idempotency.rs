//! Idempotency records: the first response to a creating write, kept so that a retry with the
//! same key replays it instead of writing twice.
//!
//! A record starts `in_flight` with a lease. A successful write turns it `done` with its
//! response inside the write's own transaction, so "committed" and "response recorded" can
//! never disagree; a failed write records its 4xx response or deletes the record. A record
//! whose lease ran out while still `in_flight` belongs to an attempt that died before
//! committing, and the next retry takes it over.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::Row;

use crate::{Store, StoreError};

/// Who sent which key with which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemKey {
    /// The client's identity (the key space: two clients may use the same key).
    pub client: String,
    /// The `Idempotency-Key` header.
    pub key: String,
    /// A digest of the request (method, path and canonical body).
    pub fingerprint: String,
}

/// A response as it was first sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemBegin {
    /// First time (or a takeover of a dead attempt): run the write.
    Fresh,
    /// Done before: send this response again.
    Replay(StoredResponse),
    /// The same key came with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// Asks a write to record its response under `key` in the write's own transaction.
pub struct IdemCommit<'a, T> {
    pub key: &'a IdemKey,
    pub render: &'a (dyn Fn(&T) -> StoredResponse + Send + Sync),
}

impl Store {
    /// Claims `key` for a new attempt, or says why not.
    pub async fn idem_begin(
        &self,
        key: &IdemKey,
        now: Timestamp,
        lease: Duration,
    ) -> Result<IdemBegin, StoreError> {
        self.guarded_write("idem_begin", self.idem_begin_once(key, now, lease))
            .await
    }

    async fn idem_begin_once(
        &self,
        key: &IdemKey,
        now: Timestamp,
        lease: Duration,
    ) -> Result<IdemBegin, StoreError> {
        let now_ms = now.as_millisecond();
        let until = now_ms + lease.as_millis() as i64;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (client, key, fingerprint, state, created_at, locked_until) \
             VALUES ($1, $2, $3, 'in_flight', $4, $5) ON CONFLICT (client, key) DO NOTHING",
        )
        .bind(&key.client)
        .bind(&key.key)
        .bind(&key.fingerprint)
        .bind(now_ms)
        .bind(until)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(IdemBegin::Fresh);
        }
        let row = sqlx::query(
            "SELECT fingerprint, state, status, body, locked_until FROM idempotency_keys WHERE client = $1 AND key = $2",
        )
        .bind(&key.client)
        .bind(&key.key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            // Purged between the two statements: treat as a fresh retry of the whole call.
            return Box::pin(self.idem_begin_once(key, now, lease)).await;
        };
        if row.try_get::<String, _>("fingerprint")? != key.fingerprint {
            return Ok(IdemBegin::Mismatch);
        }
        if row.try_get::<String, _>("state")? == "done" {
            let status: i64 = row.try_get("status")?;
            let body: String = row.try_get("body")?;
            let status = u16::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("status {status}")))?;
            return Ok(IdemBegin::Replay(StoredResponse { status, body }));
        }
        let locked_until: i64 = row.try_get("locked_until")?;
        if locked_until > now_ms {
            return Ok(IdemBegin::InFlight);
        }
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET locked_until = $3 \
             WHERE client = $1 AND key = $2 AND state = 'in_flight' AND locked_until <= $4",
        )
        .bind(&key.client)
        .bind(&key.key)
        .bind(until)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(if taken.rows_affected() == 1 {
            IdemBegin::Fresh
        } else {
            IdemBegin::InFlight
        })
    }

    /// Records the response of an attempt that wrote nothing (a 4xx), for replays.
    pub async fn idem_finish(
        &self,
        key: &IdemKey,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        self.guarded_write("idem_finish", self.idem_finish_once(key, response))
            .await
    }

    async fn idem_finish_once(
        &self,
        key: &IdemKey,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, body = $4 \
             WHERE client = $1 AND key = $2 AND state = 'in_flight'",
        )
        .bind(&key.client)
        .bind(&key.key)
        .bind(i32::from(response.status))
        .bind(&response.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets an attempt that failed for a reason a retry may not meet (a 5xx).
    pub async fn idem_abandon(&self, key: &IdemKey) -> Result<(), StoreError> {
        self.guarded_write("idem_abandon", self.idem_abandon_once(key))
            .await
    }

    async fn idem_abandon_once(&self, key: &IdemKey) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE client = $1 AND key = $2 AND state = 'in_flight'",
        )
        .bind(&key.client)
        .bind(&key.key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes records created before `before`. Returns how many.
    pub async fn purge_idempotency(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before.as_millisecond())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Inside a write transaction: marks the key done with the write's response.
pub(crate) async fn commit_in_tx<T>(
    tx: &mut sqlx::AnyConnection,
    commit: Option<&IdemCommit<'_, T>>,
    value: &T,
) -> Result<(), StoreError> {
    let Some(commit) = commit else { return Ok(()) };
    let response = (commit.render)(value);
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', status = $3, body = $4 \
         WHERE client = $1 AND key = $2 AND state = 'in_flight'",
    )
    .bind(&commit.key.client)
    .bind(&commit.key.key)
    .bind(i32::from(response.status))
    .bind(&response.body)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
