//! A cached listing: the listing, its calendar over the horizon and the live holds counted in
//! it, all of one version; and its serialized form for the shared cache.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use vacancy_core::{Calendar, ClaimKind, ClaimSpan, ListingRules, NightRange, RulesInput, Zone};
use vacancy_store::{Listing, ListingSnapshot};

use crate::Source;

/// One listing as the cache keeps it.
#[derive(Debug)]
pub struct Entry {
    pub listing: Arc<Listing>,
    /// Usage over the whole horizon, counting the holds in `holds`.
    pub calendar: Calendar,
    /// Holds counted in `calendar`, uncounted on read once expired.
    pub holds: Vec<ClaimSpan>,
    /// When this copy was loaded (for stale-while-revalidate).
    pub loaded_at: Instant,
    /// Where this copy was loaded from.
    pub origin: Source,
}

impl Entry {
    pub fn new(snapshot: ListingSnapshot) -> Self {
        Self {
            listing: Arc::new(snapshot.listing),
            calendar: snapshot.calendar,
            holds: snapshot.holds,
            loaded_at: Instant::now(),
            origin: Source::Database,
        }
    }

    pub fn version(&self) -> i64 {
        self.listing.version
    }

    /// Whether the entry's calendar covers `range`.
    pub fn covers(&self, range: &NightRange) -> bool {
        self.calendar.range().covers(range)
    }

    /// The calendar over `range` as it is at `now`, or `None` when the entry does not cover it.
    pub fn calendar_at(&self, range: &NightRange, now: Timestamp) -> Option<Calendar> {
        let stale_holds = self
            .calendar
            .valid_until()
            .is_some_and(|until| until <= now);
        if !stale_holds {
            return self.calendar.slice(range);
        }
        let mut calendar = self.calendar.slice(range)?;
        for hold in &self.holds {
            if let ClaimKind::Hold { expires_at } = hold.kind
                && expires_at <= now
            {
                calendar.remove(&hold.nights, hold.units);
            }
        }
        Some(calendar)
    }

    /// Bytes the entry keeps, for weighing it in the cache.
    pub fn weight(&self) -> u32 {
        let listing =
            self.listing.id.len() + self.listing.host_id.len() + self.listing.zone.name().len();
        let fixed = size_of::<Entry>() + size_of::<Listing>() + 64;
        (fixed + listing + self.calendar.heap_bytes() + self.holds.len() * size_of::<ClaimSpan>())
            as u32
    }

    /// The form stored in the shared cache.
    pub fn encode(&self) -> Vec<u8> {
        let l = &self.listing;
        let record = Record {
            id: l.id.clone(),
            host_id: l.host_id.clone(),
            zone: l.zone.name().to_owned(),
            rules: l.rules.to_input().into(),
            version: l.version,
            created_at: l.created_at,
            updated_at: l.updated_at,
            calendar: self.calendar.clone(),
            holds: self.holds.clone(),
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Reads an entry back from the shared cache; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let r: Record = serde_json::from_slice(bytes).ok()?;
        let listing = Listing {
            id: r.id,
            host_id: r.host_id,
            zone: Zone::new(&r.zone).ok()?,
            rules: ListingRules::new(r.rules.into()).ok()?,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        };
        (r.calendar.units() == listing.rules.units()).then(|| Self {
            listing: Arc::new(listing),
            calendar: r.calendar,
            holds: r.holds,
            loaded_at: Instant::now(),
            origin: Source::L2,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    host_id: String,
    zone: String,
    rules: RulesRecord,
    version: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
    calendar: Calendar,
    holds: Vec<ClaimSpan>,
}

#[derive(Serialize, Deserialize)]
struct RulesRecord {
    units: u32,
    min_nights: u32,
    max_nights: u32,
    advance_notice_hours: u32,
    booking_window_days: u32,
}

impl From<RulesInput> for RulesRecord {
    fn from(r: RulesInput) -> Self {
        Self {
            units: r.units,
            min_nights: r.min_nights,
            max_nights: r.max_nights,
            advance_notice_hours: r.advance_notice_hours,
            booking_window_days: r.booking_window_days,
        }
    }
}

impl From<RulesRecord> for RulesInput {
    fn from(r: RulesRecord) -> Self {
        Self {
            units: r.units,
            min_nights: r.min_nights,
            max_nights: r.max_nights,
            advance_notice_hours: r.advance_notice_hours,
            booking_window_days: r.booking_window_days,
        }
    }
}
