//! The audit trail: one row per committed mutation saying who (subject and role), what (action,
//! resource, listing), when, and under which request id.
//!
//! A [`Store`] handle made by [`Store::acting_as`] carries its [`Actor`]; every write through
//! it appends its audit row inside the write's own transaction, so a change is never committed
//! without its record (nor recorded without committing). Writes through a handle without an
//! actor (the hold sweeper, `vacancy seed`) are system work and are not audited. Rows are only
//! appended, never changed.

use std::sync::Arc;

use jiff::Timestamp;
use sqlx::Row;

use crate::{Store, StoreError};

/// Who is making a change, as the edge authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The authenticated subject (a token's `sub`).
    pub subject: String,
    /// The subject's role (`guest`, `host`, `service`, `admin`).
    pub role: String,
    /// The request id the change was made under, if any.
    pub request_id: Option<String>,
}

/// One recorded mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: Timestamp,
    pub subject: String,
    pub role: String,
    /// What happened, e.g. `booking.created` (the outbox event kind).
    pub action: String,
    /// The claim changed, or the listing when the change is to the listing itself.
    pub resource_id: String,
    pub listing_id: Option<String>,
    pub request_id: Option<String>,
}

/// Most rows one [`Store::audit_log`] call returns.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

impl Store {
    /// A handle on the same pool whose writes are recorded as made by `actor`.
    pub fn acting_as(&self, actor: Actor) -> Store {
        Store {
            actor: Some(Arc::new(actor)),
            ..self.clone()
        }
    }

    /// The newest audit records first, of one listing or of all, at most `limit`
    /// (capped at [`MAX_AUDIT_PAGE`]).
    pub async fn audit_log(
        &self,
        listing_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.guarded_read("audit_log", move || self.audit_log_once(listing_id, limit))
            .await
    }

    async fn audit_log_once(
        &self,
        listing_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = limit.min(MAX_AUDIT_PAGE);
        let columns = "id, at, subject, role, action, resource_id, listing_id, request_id";
        let rows = match listing_id {
            Some(listing) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM audit_log WHERE listing_id = $1 ORDER BY id DESC LIMIT {limit}"
                ))
                .bind(listing)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM audit_log ORDER BY id DESC LIMIT {limit}"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let at: i64 = row.try_get("at")?;
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    at: Timestamp::from_millisecond(at)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    subject: row.try_get("subject")?,
                    role: row.try_get("role")?,
                    action: row.try_get("action")?,
                    resource_id: row.try_get("resource_id")?,
                    listing_id: row.try_get("listing_id")?,
                    request_id: row.try_get("request_id")?,
                })
            })
            .collect()
    }
}

/// Appends the audit row for one mutation inside the mutation's transaction.
pub(crate) async fn record(
    tx: &mut sqlx::AnyConnection,
    actor: &Actor,
    action: &str,
    resource_id: &str,
    listing_id: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, subject, role, action, resource_id, listing_id, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(at.as_millisecond())
    .bind(&actor.subject)
    .bind(&actor.role)
    .bind(action)
    .bind(resource_id)
    .bind(listing_id)
    .bind(&actor.request_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
