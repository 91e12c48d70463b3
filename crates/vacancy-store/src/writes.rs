//! Writes: holds, bookings, blocks and hold expiry. Each is one transaction that locks the
//! listing row, releases the listing's expired holds, checks, claims or frees nights in the
//! `night_usage` ledger, and appends one outbox event.

use jiff::Timestamp;
use sqlx::{Any, Row, Transaction};
use vacancy_core::{Calendar, ClaimSpan, NightRange, StayRequest, check_stay};

use crate::idempotency::commit_in_tx;
use crate::listings::{
    CLAIM_COLUMNS, LISTING_COLUMNS, claim_from_row, days, listing_from_row, new_id,
};
use crate::{Claim, ClaimState, Event, IdemCommit, Kind, Listing, Store, StoreError};

/// An open write transaction on one listing, whose row it has locked.
pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    /// The listing as of this transaction, `version` already raised.
    pub(crate) listing: Listing,
    /// Holds this transaction released because they had expired.
    pub(crate) expired: Vec<String>,
    pub(crate) now: Timestamp,
    store: Store,
    /// Who makes this change, for the audit trail.
    actor: Option<std::sync::Arc<crate::Actor>>,
}

impl WriteTx {
    /// Begins a transaction, raises the listing's version (which locks its row on PostgreSQL;
    /// SQLite's write lock is already ours) and releases its expired holds.
    pub(crate) async fn open(
        store: &Store,
        listing_id: &str,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let mut tx = store.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE listings SET version = version + 1, updated_at = $2 WHERE id = $1 RETURNING {LISTING_COLUMNS}"
        ))
        .bind(listing_id)
        .bind(now.as_millisecond())
        .fetch_optional(&mut *tx)
        .await?;
        let listing = listing_from_row(&row.ok_or(StoreError::NotFound("listing"))?)?;
        let mut w = Self {
            tx,
            listing,
            expired: Vec::new(),
            now,
            store: store.clone(),
            actor: store.actor.clone(),
        };
        w.release_expired_holds().await?;
        Ok(w)
    }

    async fn release_expired_holds(&mut self) -> Result<(), StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM claims \
             WHERE listing_id = $1 AND state = 'active' AND kind = 'hold' AND expires_at <= $2"
        ))
        .bind(&self.listing.id)
        .bind(self.now.as_millisecond())
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            let hold = claim_from_row(&row)?;
            self.set_state(&hold.id, ClaimState::Expired).await?;
            self.vacate(&hold.nights, hold.units).await?;
            self.expired.push(hold.id);
        }
        Ok(())
    }

    /// Active claims on this listing overlapping `range`, as the transaction sees them.
    async fn claims_overlapping(
        &mut self,
        range: &NightRange,
    ) -> Result<Vec<ClaimSpan>, StoreError> {
        let (start, end) = days(range);
        let rows = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM claims \
             WHERE listing_id = $1 AND state = 'active' AND check_in < $2 AND check_out > $3"
        ))
        .bind(&self.listing.id)
        .bind(end)
        .bind(start)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| claim_from_row(r).map(|c| c.span()))
            .collect()
    }

    /// The listing's calendar over `range` inside this transaction.
    async fn calendar(&mut self, range: &NightRange) -> Result<Calendar, StoreError> {
        let claims = self.claims_overlapping(range).await?;
        Ok(Calendar::build(
            *range,
            self.listing.rules.units(),
            &claims,
            self.now,
        ))
    }

    /// Takes `units` units on every night of `nights` in the ledger. The database refuses to
    /// go past the listing's units; that refusal becomes a conflict on those nights.
    async fn occupy(&mut self, nights: &NightRange, units: u16) -> Result<(), StoreError> {
        let (start, end) = days(nights);
        sqlx::query(
            "WITH RECURSIVE n(night) AS (SELECT CAST($3 AS INTEGER) UNION ALL SELECT night + 1 FROM n WHERE night + 1 < $4) \
             INSERT INTO night_usage (listing_id, night, used, capacity) \
             SELECT $1, night, $2, $5 FROM n WHERE true \
             ON CONFLICT (listing_id, night) DO UPDATE SET used = night_usage.used + excluded.used",
        )
        .bind(&self.listing.id)
        .bind(i32::from(units))
        .bind(start)
        .bind(end)
        .bind(i32::from(self.listing.rules.units()))
        .execute(&mut *self.tx)
        .await
        .map_err(|e| self.capacity_error(e, Some(nights)))?;
        Ok(())
    }

    /// Gives back `units` units on every night of `nights` in the ledger.
    async fn vacate(&mut self, nights: &NightRange, units: u16) -> Result<(), StoreError> {
        let (start, end) = days(nights);
        sqlx::query("UPDATE night_usage SET used = used - $2 WHERE listing_id = $1 AND night >= $3 AND night < $4")
            .bind(&self.listing.id)
            .bind(i32::from(units))
            .bind(start)
            .bind(end)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Maps the ledger's CHECK violation to a conflict; anything else stays a database error.
    pub(crate) fn capacity_error(
        &self,
        err: sqlx::Error,
        nights: Option<&NightRange>,
    ) -> StoreError {
        if crate::error::is_capacity_violation(&err) {
            tracing::warn!(listing_id = %self.listing.id, "night_usage constraint refused a claim the checks allowed");
            StoreError::Conflict {
                nights: nights.map(|n| n.nights().collect()).unwrap_or_default(),
            }
        } else {
            err.into()
        }
    }

    async fn set_state(&mut self, claim_id: &str, state: ClaimState) -> Result<(), StoreError> {
        sqlx::query("UPDATE claims SET state = $2, updated_at = $3 WHERE id = $1")
            .bind(claim_id)
            .bind(state.as_str())
            .bind(self.now.as_millisecond())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn insert_claim(&mut self, claim: &Claim) -> Result<(), StoreError> {
        let (start, end) = days(&claim.nights);
        sqlx::query(&format!(
            "INSERT INTO claims ({CLAIM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
        ))
        .bind(&claim.id)
        .bind(&claim.listing_id)
        .bind(claim.kind.as_str())
        .bind(claim.state.as_str())
        .bind(start)
        .bind(end)
        .bind(i32::from(claim.units))
        .bind(&claim.guest_id)
        .bind(claim.expires_at.map(|t| t.as_millisecond()))
        .bind(&claim.hold_id)
        .bind(&claim.note)
        .bind(claim.created_at.as_millisecond())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Reads a claim of this listing; `what` names it in errors.
    async fn claim(
        &mut self,
        id: &str,
        kind: Kind,
        what: &'static str,
    ) -> Result<Claim, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM claims WHERE id = $1 AND kind = $2"
        ))
        .bind(id)
        .bind(kind.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        claim_from_row(&row.ok_or(StoreError::NotFound(what))?)
    }

    fn new_claim(&self, kind: Kind, nights: NightRange, units: u16) -> Claim {
        Claim {
            id: new_id(),
            listing_id: self.listing.id.clone(),
            kind,
            state: ClaimState::Active,
            nights,
            units,
            guest_id: None,
            expires_at: None,
            hold_id: None,
            note: None,
            created_at: self.now,
            updated_at: self.now,
            listing_version: Some(self.listing.version),
        }
    }

    /// Appends the event, records the idempotent response and commits.
    pub(crate) async fn commit<T>(
        mut self,
        kind: &str,
        claim_id: Option<&str>,
        nights: Option<NightRange>,
        idem: Option<&IdemCommit<'_, T>>,
        value: &T,
    ) -> Result<(), StoreError> {
        let event = Event {
            kind: kind.to_owned(),
            listing_id: self.listing.id.clone(),
            version: self.listing.version,
            claim_id: claim_id.map(str::to_owned),
            nights,
            expired_holds: std::mem::take(&mut self.expired),
            at_ms: self.now.as_millisecond(),
        };
        append_event(&mut self.tx, &event).await?;
        // Expiring holds on the way is the system's work, not the caller's.
        if let Some(actor) = self.actor.as_deref().filter(|_| kind != "holds.expired") {
            let resource = claim_id.unwrap_or(&self.listing.id);
            crate::audit::record(
                &mut self.tx,
                actor,
                kind,
                resource,
                &self.listing.id,
                self.now,
            )
            .await?;
        }
        commit_in_tx(&mut self.tx, idem, value).await?;
        self.tx.commit().await?;
        self.store.committed(&event);
        Ok(())
    }
}

pub(crate) async fn append_event(
    tx: &mut sqlx::AnyConnection,
    event: &Event,
) -> Result<(), StoreError> {
    let payload = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO outbox (listing_id, version, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&event.listing_id)
        .bind(event.version)
        .bind(&event.kind)
        .bind(payload)
        .bind(event.at_ms)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A hold or booking to place: the stay, the units and the guest.
#[derive(Debug, Clone)]
pub struct StayClaim {
    pub request: StayRequest,
    pub guest_id: String,
}

impl Store {
    /// Places a hold on a stay until `expires_at`.
    pub async fn place_hold(
        &self,
        listing_id: &str,
        stay: &StayClaim,
        expires_at: Timestamp,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        self.guarded_write(
            "place_hold",
            self.place_hold_once(listing_id, stay, expires_at, now, idem),
        )
        .await
    }

    async fn place_hold_once(
        &self,
        listing_id: &str,
        stay: &StayClaim,
        expires_at: Timestamp,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        self.claim_stay(listing_id, stay, Kind::Hold, Some(expires_at), now, idem)
            .await
    }

    /// Books a stay directly, without a hold.
    pub async fn book(
        &self,
        listing_id: &str,
        stay: &StayClaim,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        self.guarded_write("book", self.book_once(listing_id, stay, now, idem))
            .await
    }

    async fn book_once(
        &self,
        listing_id: &str,
        stay: &StayClaim,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        self.claim_stay(listing_id, stay, Kind::Booking, None, now, idem)
            .await
    }

    async fn claim_stay(
        &self,
        listing_id: &str,
        stay: &StayClaim,
        kind: Kind,
        expires_at: Option<Timestamp>,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        let mut w = WriteTx::open(self, listing_id, now).await?;
        let request = stay.request;
        let calendar = w.calendar(&request.stay).await?;
        let decision = check_stay(&w.listing.rules, &w.listing.zone, &calendar, &request, now);
        if !decision.is_available() {
            return Err(if decision.reasons.iter().all(|r| r.is_conflict()) {
                StoreError::Conflict {
                    nights: decision.unavailable_nights().to_vec(),
                }
            } else {
                StoreError::RulesBroken(decision.reasons)
            });
        }
        w.occupy(&request.stay, request.units).await?;
        let mut claim = w.new_claim(kind, request.stay, request.units);
        claim.guest_id = Some(stay.guest_id.clone());
        claim.expires_at = expires_at;
        w.insert_claim(&claim).await?;
        let event = if kind == Kind::Hold {
            "hold.placed"
        } else {
            "booking.created"
        };
        w.commit(event, Some(&claim.id), Some(claim.nights), idem, &claim)
            .await?;
        Ok(claim)
    }

    /// Turns a live hold into a booking. An expired, released or already confirmed hold is a
    /// [`StoreError::WrongState`].
    pub async fn confirm_hold(
        &self,
        hold_id: &str,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        self.guarded_write("confirm_hold", self.confirm_hold_once(hold_id, now, idem))
            .await
    }

    async fn confirm_hold_once(
        &self,
        hold_id: &str,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        let listing_id = self.listing_of(hold_id, Kind::Hold, "hold").await?;
        let mut w = WriteTx::open(self, &listing_id, now).await?;
        let hold = w.claim(hold_id, Kind::Hold, "hold").await?;
        match hold.state_at(now) {
            ClaimState::Active => {}
            state => {
                return Err(StoreError::WrongState {
                    what: "hold",
                    state,
                });
            }
        }
        w.set_state(&hold.id, ClaimState::Confirmed).await?;
        // The nights pass from the hold to the booking: the ledger does not change.
        let mut booking = w.new_claim(Kind::Booking, hold.nights, hold.units);
        booking.guest_id = hold.guest_id.clone();
        booking.hold_id = Some(hold.id.clone());
        w.insert_claim(&booking).await?;
        w.commit(
            "booking.created",
            Some(&booking.id),
            Some(booking.nights),
            idem,
            &booking,
        )
        .await?;
        Ok(booking)
    }

    /// Gives up a hold, freeing its nights. Releasing a hold that is already released or
    /// expired changes nothing and returns it; a confirmed hold cannot be released.
    pub async fn release_hold(&self, hold_id: &str, now: Timestamp) -> Result<Claim, StoreError> {
        self.guarded_write("release_hold", self.release_hold_once(hold_id, now))
            .await
    }

    async fn release_hold_once(&self, hold_id: &str, now: Timestamp) -> Result<Claim, StoreError> {
        self.end_claim(hold_id, Kind::Hold, "hold", ClaimState::Released, now)
            .await
    }

    /// Cancels a booking, freeing its nights. Cancelling twice returns the cancelled booking.
    pub async fn cancel_booking(
        &self,
        booking_id: &str,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        self.guarded_write("cancel_booking", self.cancel_booking_once(booking_id, now))
            .await
    }

    async fn cancel_booking_once(
        &self,
        booking_id: &str,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        self.end_claim(
            booking_id,
            Kind::Booking,
            "booking",
            ClaimState::Cancelled,
            now,
        )
        .await
    }

    async fn end_claim(
        &self,
        id: &str,
        kind: Kind,
        what: &'static str,
        end: ClaimState,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        let listing_id = self.listing_of(id, kind, what).await?;
        let mut w = WriteTx::open(self, &listing_id, now).await?;
        let mut claim = w.claim(id, kind, what).await?;
        let state = claim.state;
        if state == end || (kind == Kind::Hold && state == ClaimState::Expired) {
            // Nothing to do; if expiring it was this transaction's work, keep that.
            if w.expired.is_empty() {
                w.tx.rollback().await?;
            } else {
                w.commit::<Claim>("holds.expired", None, None, None, &claim)
                    .await?;
            }
            return Ok(claim);
        }
        if state != ClaimState::Active {
            return Err(StoreError::WrongState { what, state });
        }
        w.set_state(&claim.id, end).await?;
        w.vacate(&claim.nights, claim.units).await?;
        claim.state = end;
        claim.updated_at = now;
        claim.listing_version = Some(w.listing.version);
        let event = if kind == Kind::Hold {
            "hold.released"
        } else {
            "booking.cancelled"
        };
        w.commit::<Claim>(event, Some(&claim.id), Some(claim.nights), None, &claim)
            .await?;
        Ok(claim)
    }

    /// Closes `units` units (all of them when `None`) on the nights of `nights`.
    pub async fn add_block(
        &self,
        listing_id: &str,
        nights: NightRange,
        units: Option<u16>,
        note: Option<String>,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        self.guarded_write(
            "add_block",
            self.add_block_once(listing_id, nights, units, note, now, idem),
        )
        .await
    }

    async fn add_block_once(
        &self,
        listing_id: &str,
        nights: NightRange,
        units: Option<u16>,
        note: Option<String>,
        now: Timestamp,
        idem: Option<&IdemCommit<'_, Claim>>,
    ) -> Result<Claim, StoreError> {
        let mut w = WriteTx::open(self, listing_id, now).await?;
        let all = w.listing.rules.units();
        let units = units.unwrap_or(all);
        if units > all {
            return Err(StoreError::RulesBroken(vec![
                vacancy_core::Reason::TooManyUnits {
                    requested: units,
                    units: all,
                },
            ]));
        }
        let short = w.calendar(&nights).await?.short_nights(&nights, units);
        if !short.is_empty() {
            return Err(StoreError::Conflict { nights: short });
        }
        w.occupy(&nights, units).await?;
        let mut block = w.new_claim(Kind::Block, nights, units);
        block.note = note;
        w.insert_claim(&block).await?;
        w.commit("block.added", Some(&block.id), Some(nights), idem, &block)
            .await?;
        Ok(block)
    }

    /// Reopens the nights of `nights` by trimming or splitting every block that covers any of
    /// them. Returns how many blocks changed (0 changes nothing, not even the version).
    pub async fn remove_blocks(
        &self,
        listing_id: &str,
        nights: NightRange,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        self.guarded_write(
            "remove_blocks",
            self.remove_blocks_once(listing_id, nights, now),
        )
        .await
    }

    async fn remove_blocks_once(
        &self,
        listing_id: &str,
        nights: NightRange,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let mut w = WriteTx::open(self, listing_id, now).await?;
        let (start, end) = days(&nights);
        let rows = sqlx::query(&format!(
            "SELECT {CLAIM_COLUMNS} FROM claims \
             WHERE listing_id = $1 AND kind = 'block' AND state = 'active' AND check_in < $2 AND check_out > $3"
        ))
        .bind(listing_id)
        .bind(end)
        .bind(start)
        .fetch_all(&mut *w.tx)
        .await?;
        let blocks = rows
            .iter()
            .map(claim_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if blocks.is_empty() && w.expired.is_empty() {
            w.tx.rollback().await?;
            return Ok(0);
        }
        for block in &blocks {
            w.set_state(&block.id, ClaimState::Removed).await?;
            if let Some(cut) = block.nights.intersect(&nights) {
                w.vacate(&cut, block.units).await?;
            }
            for piece in block.nights.subtract(&nights) {
                // The remaining nights stay closed under a new block; the ledger already counts them.
                let mut rest = w.new_claim(Kind::Block, piece, block.units);
                rest.note = block.note.clone();
                w.insert_claim(&rest).await?;
            }
        }
        let kind = if blocks.is_empty() {
            "holds.expired"
        } else {
            "block.removed"
        };
        let touched = blocks.len();
        w.commit::<usize>(kind, None, Some(nights), None, &touched)
            .await?;
        Ok(touched)
    }

    /// Releases holds that expired at or before `now`, one transaction per listing, for at most
    /// `max_listings` listings. Returns how many holds it released.
    pub async fn expire_holds(
        &self,
        now: Timestamp,
        max_listings: u32,
    ) -> Result<usize, StoreError> {
        self.guarded_write("expire_holds", self.expire_holds_once(now, max_listings))
            .await
    }

    async fn expire_holds_once(
        &self,
        now: Timestamp,
        max_listings: u32,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT listing_id FROM claims \
             WHERE state = 'active' AND kind = 'hold' AND expires_at <= $1 LIMIT {max_listings}"
        ))
        .bind(now.as_millisecond())
        .fetch_all(&self.pool)
        .await?;
        let mut released = 0;
        for row in rows {
            let listing_id: String = row.try_get("listing_id")?;
            let w = WriteTx::open(self, &listing_id, now).await?;
            if w.expired.is_empty() {
                w.tx.rollback().await?;
                continue;
            }
            released += w.expired.len();
            w.commit::<()>("holds.expired", None, None, None, &())
                .await?;
        }
        Ok(released)
    }

    /// The listing a claim belongs to (claims never move, so this needs no lock).
    async fn listing_of(
        &self,
        id: &str,
        kind: Kind,
        what: &'static str,
    ) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT listing_id FROM claims WHERE id = $1 AND kind = $2")
            .bind(id)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .ok_or(StoreError::NotFound(what))?
            .try_get("listing_id")?)
    }
}
