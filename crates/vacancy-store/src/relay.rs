//! What the outbox relay needs from the database: unpublished events in commit order, marking
//! them published, and a lease so that one relay at a time publishes.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::Row;

use crate::{Event, Store, StoreError};

/// An outbox row waiting to be published.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Position in commit order; also the message id consumers may deduplicate on.
    pub id: i64,
    pub event: Event,
}

impl Store {
    /// Up to `limit` unpublished events, oldest first.
    pub async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.guarded_read("unpublished", move || self.unpublished_once(limit))
            .await
    }

    async fn unpublished_once(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT {limit}"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                let event = serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(OutboxRow {
                    id: row.try_get("id")?,
                    event,
                })
            })
            .collect()
    }

    /// Marks exactly these events published. (Not a range: an event with a lower id may
    /// commit after a higher one, and must not be marked before it was sent.)
    pub async fn mark_published(&self, ids: &[i64], now: Timestamp) -> Result<(), StoreError> {
        self.guarded_write("mark_published", self.mark_published_once(ids, now))
            .await
    }

    async fn mark_published_once(&self, ids: &[i64], now: Timestamp) -> Result<(), StoreError> {
        for chunk in ids.chunks(256) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            sqlx::query(&format!(
                "UPDATE outbox SET published_at = $1 WHERE id IN ({})",
                list.join(", ")
            ))
            .bind(now.as_millisecond())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// How many events wait to be published (for readiness and metrics).
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        self.guarded_read("outbox_backlog", move || self.outbox_backlog_once())
            .await
    }

    async fn outbox_backlog_once(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Takes or renews the lease `name` for `holder` until `now + ttl`. True when `holder`
    /// holds it afterwards; false when another holder's lease is still running.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.guarded_write("try_lease", self.try_lease_once(name, holder, now, ttl))
            .await
    }

    async fn try_lease_once(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let until = now.as_millisecond() + ttl.as_millis() as i64;
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now.as_millisecond())
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives the lease up early (on shutdown), so another replica takes over at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.guarded_write("release_lease", self.release_lease_once(name, holder))
            .await
    }

    async fn release_lease_once(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Deletes published events older than `before`. Returns how many.
    pub async fn purge_published(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
                .bind(before.as_millisecond())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}
