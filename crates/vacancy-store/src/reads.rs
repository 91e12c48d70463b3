//! Reads: listings with their calendars, claims, the outbox, and an independent audit of the
//! invariant.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use vacancy_core::{Calendar, ClaimKind, ClaimSpan, Night, NightRange};

use crate::listings::{
    CLAIM_COLUMNS, LISTING_COLUMNS, claim_from_row, days, instant, listing_from_row,
    range_from_days,
};
use crate::{Claim, Event, Listing, ListingSnapshot, Store, StoreError};

/// A night where claims exceed units, or where the ledger disagrees with the claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFinding {
    pub listing_id: String,
    pub night: Night,
    /// Units the active claims (live holds, bookings, blocks) take.
    pub claimed: u32,
    /// The listing's units.
    pub units: u32,
}

impl Store {
    /// One listing, without its calendar.
    pub async fn listing(&self, id: &str) -> Result<Option<Listing>, StoreError> {
        self.guarded_read("listing", move || self.listing_once(id))
            .await
    }

    async fn listing_once(&self, id: &str) -> Result<Option<Listing>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LISTING_COLUMNS} FROM listings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(listing_from_row).transpose()
    }

    /// One listing with its calendar over `range` at `now`, read in a single statement so the
    /// calendar is exactly that of the listing's version.
    pub async fn snapshot(
        &self,
        id: &str,
        range: NightRange,
        now: Timestamp,
    ) -> Result<Option<ListingSnapshot>, StoreError> {
        Ok(self
            .snapshots(&[id.to_owned()], range, now)
            .await?
            .into_iter()
            .next())
    }

    /// Listings with their calendars over `range` at `now`, in the order of `ids`; unknown ids
    /// are left out.
    pub async fn snapshots(
        &self,
        ids: &[String],
        range: NightRange,
        now: Timestamp,
    ) -> Result<Vec<ListingSnapshot>, StoreError> {
        self.guarded_read("snapshots", move || self.snapshots_once(ids, range, now))
            .await
    }

    async fn snapshots_once(
        &self,
        ids: &[String],
        range: NightRange,
        now: Timestamp,
    ) -> Result<Vec<ListingSnapshot>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Pad the id list to a power of two so a handful of statement shapes serve every size.
        let slots = ids.len().next_power_of_two();
        let placeholders: Vec<String> = (0..slots).map(|i| format!("${}", i + 3)).collect();
        let listing_cols: Vec<String> = LISTING_COLUMNS
            .split(", ")
            .map(|c| format!("l.{c}"))
            .collect();
        let sql = format!(
            "SELECT {}, c.kind AS c_kind, c.check_in AS c_in, c.check_out AS c_out, c.units AS c_units, \
             c.expires_at AS c_expires FROM listings l LEFT JOIN claims c ON c.listing_id = l.id \
             AND c.state = 'active' AND c.check_in < $1 AND c.check_out > $2 WHERE l.id IN ({})",
            listing_cols.join(", "),
            placeholders.join(", ")
        );
        let (start, end) = days(&range);
        let mut query = sqlx::query(&sql).bind(end).bind(start);
        for i in 0..slots {
            query = query.bind(&ids[i.min(ids.len() - 1)]);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut found: HashMap<String, (Listing, Vec<ClaimSpan>)> = HashMap::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let entry = match found.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((listing_from_row(row)?, Vec::new()))
                }
            };
            if let Some(span) = joined_span(row)? {
                entry.1.push(span);
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for id in ids {
            if let Some((listing, claims)) = found.remove(id) {
                let calendar = Calendar::build(range, listing.rules.units(), &claims, now);
                let holds = claims
                    .into_iter()
                    .filter(|c| matches!(c.kind, ClaimKind::Hold { .. }) && c.is_live(now))
                    .collect();
                out.push(ListingSnapshot {
                    listing,
                    calendar,
                    holds,
                });
            }
        }
        Ok(out)
    }

    /// A hold, booking or block by id.
    pub async fn claim(&self, id: &str) -> Result<Option<Claim>, StoreError> {
        self.guarded_read("claim", move || self.claim_once(id))
            .await
    }

    async fn claim_once(&self, id: &str) -> Result<Option<Claim>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(claim_from_row).transpose()
    }

    /// The active blocks of a listing that overlap `range`, in night order.
    pub async fn blocks(
        &self,
        listing_id: &str,
        range: NightRange,
    ) -> Result<Vec<Claim>, StoreError> {
        self.guarded_read("blocks", move || self.blocks_once(listing_id, range))
            .await
    }

    async fn blocks_once(
        &self,
        listing_id: &str,
        range: NightRange,
    ) -> Result<Vec<Claim>, StoreError> {
        let (start, end) = days(&range);
        let rows = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE listing_id = $1 AND kind = 'block' AND state = 'active' \
             AND check_in < $2 AND check_out > $3 ORDER BY check_in, id"
        ))
        .bind(listing_id)
        .bind(end)
        .bind(start)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(claim_from_row).collect()
    }

    /// Outbox events with an id above `after`, oldest first, at most `limit` of them.
    pub async fn outbox_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        self.guarded_read("outbox_after", move || self.outbox_after_once(after, limit))
            .await
    }

    async fn outbox_after_once(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, payload FROM outbox WHERE id > $1 ORDER BY id LIMIT {limit}"
        ))
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("payload")?;
                let event = serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((row.try_get::<i64, _>("id")?, event))
            })
            .collect()
    }

    /// Checks the invariant from scratch, independently of the ledger: for every listing and
    /// night, the units of active claims (holds only while live at `now`) must not exceed the
    /// listing's units, and the ledger must count at least what the claims take. Returns every
    /// night that fails. Reads every active claim: for tests, benchmarks and operators.
    pub async fn audit(&self, now: Timestamp) -> Result<Vec<AuditFinding>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.listing_id, c.kind, c.check_in, c.check_out, c.units, c.expires_at, l.units AS listing_units \
             FROM claims c JOIN listings l ON l.id = c.listing_id WHERE c.state = 'active'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: BTreeMap<(String, i32), (u32, u32)> = BTreeMap::new();
        for row in &rows {
            let expires: Option<i64> = row.try_get("expires_at")?;
            if expires.is_some_and(|ms| ms <= now.as_millisecond()) {
                continue;
            }
            let listing_id: String = row.try_get("listing_id")?;
            let units: i64 = row.try_get("units")?;
            let listing_units: i64 = row.try_get("listing_units")?;
            let (start, end): (i64, i64) = (row.try_get("check_in")?, row.try_get("check_out")?);
            for night in start..end {
                let entry = claimed
                    .entry((listing_id.clone(), night as i32))
                    .or_insert((0, listing_units as u32));
                entry.0 += units as u32;
            }
        }
        let ledger_rows = sqlx::query("SELECT listing_id, night, used FROM night_usage")
            .fetch_all(&self.pool)
            .await?;
        let mut ledger: HashMap<(String, i32), i64> = HashMap::new();
        for row in &ledger_rows {
            ledger.insert(
                (
                    row.try_get("listing_id")?,
                    row.try_get::<i64, _>("night")? as i32,
                ),
                row.try_get("used")?,
            );
        }
        Ok(claimed
            .into_iter()
            .filter(|(key, (units_claimed, units))| {
                units_claimed > units
                    || ledger.get(key).copied().unwrap_or(0) < i64::from(*units_claimed)
            })
            .map(|((listing_id, night), (claimed, units))| AuditFinding {
                listing_id,
                night: vacancy_core::from_day_number(night),
                claimed,
                units,
            })
            .collect())
    }
}

/// The claim half of a listing ⟕ claims row, if the row has one.
fn joined_span(row: &AnyRow) -> Result<Option<ClaimSpan>, StoreError> {
    let Some(kind) = row.try_get::<Option<String>, _>("c_kind")? else {
        return Ok(None);
    };
    let start: i64 = row.try_get("c_in")?;
    let end: i64 = row.try_get("c_out")?;
    let units: i64 = row.try_get("c_units")?;
    let kind = match kind.as_str() {
        "hold" => {
            let expires: Option<i64> = row.try_get("c_expires")?;
            ClaimKind::Hold {
                expires_at: instant(expires.unwrap_or(i64::MIN / 4))?,
            }
        }
        "booking" => ClaimKind::Booking,
        "block" => ClaimKind::Block,
        other => return Err(StoreError::Corrupt(format!("claim kind {other}"))),
    };
    let units = u16::try_from(units).map_err(|_| StoreError::Corrupt(format!("units {units}")))?;
    Ok(Some(ClaimSpan {
        nights: range_from_days(start, end)?,
        units,
        kind,
    }))
}
