//! Row mapping shared by reads and writes, and listing creation and updates.

use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use vacancy_core::{ListingRules, NightRange, RulesInput, Zone, day_number, from_day_number};

use crate::writes::WriteTx;
use crate::{
    Claim, ClaimState, Event, IdemCommit, Kind, Listing, NewListing, RulesPatch, Store, StoreError,
};

pub(crate) const LISTING_COLUMNS: &str = "id, host_id, time_zone, units, min_nights, max_nights, \
     advance_notice_hours, booking_window_days, version, created_at, updated_at";

pub(crate) const CLAIM_COLUMNS: &str = "id, listing_id, kind, state, check_in, check_out, units, \
     guest_id, expires_at, hold_id, note, created_at, updated_at";

/// Most nights a conflict error lists.
const MAX_NIGHTS_NAMED: i64 = 100;

fn int(row: &AnyRow, column: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(column)?)
}

fn small(row: &AnyRow, column: &str) -> Result<u32, StoreError> {
    let value = int(row, column)?;
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
}

pub(crate) fn instant(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|_| StoreError::Corrupt(format!("timestamp {ms}")))
}

pub(crate) fn listing_from_row(row: &AnyRow) -> Result<Listing, StoreError> {
    let zone_name: String = row.try_get("time_zone")?;
    let zone = Zone::new(&zone_name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let rules = ListingRules::new(RulesInput {
        units: small(row, "units")?,
        min_nights: small(row, "min_nights")?,
        max_nights: small(row, "max_nights")?,
        advance_notice_hours: small(row, "advance_notice_hours")?,
        booking_window_days: small(row, "booking_window_days")?,
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Listing {
        id: row.try_get("id")?,
        host_id: row.try_get("host_id")?,
        zone,
        rules,
        version: int(row, "version")?,
        created_at: instant(int(row, "created_at")?)?,
        updated_at: instant(int(row, "updated_at")?)?,
    })
}

pub(crate) fn claim_from_row(row: &AnyRow) -> Result<Claim, StoreError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let units = small(row, "units")?;
    Ok(Claim {
        id: row.try_get("id")?,
        listing_id: row.try_get("listing_id")?,
        kind: Kind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("claim kind {kind}")))?,
        state: ClaimState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("claim state {state}")))?,
        nights: range_from_days(int(row, "check_in")?, int(row, "check_out")?)?,
        units: u16::try_from(units).map_err(|_| StoreError::Corrupt(format!("units {units}")))?,
        guest_id: row.try_get("guest_id")?,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(instant)
            .transpose()?,
        hold_id: row.try_get("hold_id")?,
        note: row.try_get("note")?,
        created_at: instant(int(row, "created_at")?)?,
        updated_at: instant(int(row, "updated_at")?)?,
        listing_version: None,
    })
}

pub(crate) fn range_from_days(start: i64, end: i64) -> Result<NightRange, StoreError> {
    let day = |n: i64| {
        i32::try_from(n)
            .map(from_day_number)
            .map_err(|_| StoreError::Corrupt(format!("night {n}")))
    };
    // Stored ranges were valid when written; only the length limit may differ from a request's.
    NightRange::with_limit(day(start)?, day(end)?, u32::MAX)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn days(range: &NightRange) -> (i32, i32) {
    (day_number(range.start()), day_number(range.end()))
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Store {
    /// Creates a listing at version 1.
    pub async fn create_listing(
        &self,
        new: NewListing,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Listing>>,
    ) -> Result<Listing, StoreError> {
        self.guarded_write("create_listing", self.create_listing_once(new, now, idem))
            .await
    }

    async fn create_listing_once(
        &self,
        new: NewListing,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Listing>>,
    ) -> Result<Listing, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = new.id.unwrap_or_else(new_id);
        let rules = new.rules;
        let now_ms = now.as_millisecond();
        let row = sqlx::query(&format!(
            "INSERT INTO listings ({LISTING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9) \
             ON CONFLICT (id) DO NOTHING RETURNING {LISTING_COLUMNS}"
        ))
        .bind(&id)
        .bind(&new.host_id)
        .bind(new.zone.name())
        .bind(i32::from(rules.units()))
        .bind(i32::from(rules.min_nights()))
        .bind(i32::from(rules.max_nights()))
        .bind(rules.advance_notice_hours() as i32)
        .bind(i32::from(rules.booking_window_days()))
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let listing = listing_from_row(&row.ok_or(StoreError::AlreadyExists("listing"))?)?;
        let event = Event {
            kind: "listing.created".into(),
            listing_id: listing.id.clone(),
            version: listing.version,
            claim_id: None,
            nights: None,
            expired_holds: Vec::new(),
            at_ms: now_ms,
        };
        crate::writes::append_event(&mut tx, &event).await?;
        if let Some(actor) = self.actor.as_deref() {
            crate::audit::record(&mut tx, actor, &event.kind, &listing.id, &listing.id, now)
                .await?;
        }
        crate::idempotency::commit_in_tx(&mut tx, idem, &listing).await?;
        tx.commit().await?;
        self.committed(&event);
        Ok(listing)
    }

    /// Changes a listing's zone and rules. Lowering `units` below what some night already uses
    /// is a conflict naming those nights.
    pub async fn update_listing(
        &self,
        id: &str,
        patch: RulesPatch,
        now: Timestamp,
    ) -> Result<Listing, StoreError> {
        self.guarded_write("update_listing", self.update_listing_once(id, patch, now))
            .await
    }

    async fn update_listing_once(
        &self,
        id: &str,
        patch: RulesPatch,
        now: Timestamp,
    ) -> Result<Listing, StoreError> {
        let mut w = WriteTx::open(self, id, now).await?;
        let current = w.listing.rules.to_input();
        let rules = ListingRules::new(RulesInput {
            units: patch.units.unwrap_or(current.units),
            min_nights: patch.min_nights.unwrap_or(current.min_nights),
            max_nights: patch.max_nights.unwrap_or(current.max_nights),
            advance_notice_hours: patch
                .advance_notice_hours
                .unwrap_or(current.advance_notice_hours),
            booking_window_days: patch
                .booking_window_days
                .unwrap_or(current.booking_window_days),
        })
        .map_err(StoreError::RulesInvalid)?;
        let zone = patch.zone.unwrap_or_else(|| w.listing.zone.clone());
        if rules.units() != w.listing.rules.units() {
            let over = sqlx::query(&format!(
                "SELECT night FROM night_usage WHERE listing_id = $1 AND used > $2 ORDER BY night LIMIT {MAX_NIGHTS_NAMED}"
            ))
            .bind(id)
            .bind(i32::from(rules.units()))
            .fetch_all(&mut *w.tx)
            .await?;
            if !over.is_empty() {
                let nights = over
                    .iter()
                    .map(|r| int(r, "night").map(|n| from_day_number(n as i32)))
                    .collect::<Result<Vec<_>, _>>()?;
                return Err(StoreError::Conflict { nights });
            }
            sqlx::query("UPDATE night_usage SET capacity = $2 WHERE listing_id = $1")
                .bind(id)
                .bind(i32::from(rules.units()))
                .execute(&mut *w.tx)
                .await
                .map_err(|e| w.capacity_error(e, None))?;
        }
        let row = sqlx::query(&format!(
            "UPDATE listings SET time_zone = $2, units = $3, min_nights = $4, max_nights = $5, \
             advance_notice_hours = $6, booking_window_days = $7 WHERE id = $1 RETURNING {LISTING_COLUMNS}"
        ))
        .bind(id)
        .bind(zone.name())
        .bind(i32::from(rules.units()))
        .bind(i32::from(rules.min_nights()))
        .bind(i32::from(rules.max_nights()))
        .bind(rules.advance_notice_hours() as i32)
        .bind(i32::from(rules.booking_window_days()))
        .fetch_one(&mut *w.tx)
        .await?;
        let listing = listing_from_row(&row)?;
        w.commit::<Listing>("listing.updated", None, None, None, &listing)
            .await?;
        Ok(listing)
    }
}
