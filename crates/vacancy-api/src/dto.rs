//! The JSON shapes of API v1: what clients send and what they get back. Requests reject
//! unknown fields; dates are `YYYY-MM-DD` civil dates, instants RFC 3339 in UTC.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vacancy_core::{Calendar, DATE_MAX, DATE_MIN, NightRange, RangeError, Reason};
use vacancy_store::{Claim, ClaimState, Listing};

use crate::error::ApiError;

/// Deserializes a civil date written exactly `YYYY-MM-DD`: no time, offset, zone or other
/// spelling, so a client can never mean one day and get another.
fn civil_date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
    let text = String::deserialize(deserializer)?;
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(serde::de::Error::custom(format!(
            "expected a date as YYYY-MM-DD, got {text:?}"
        )));
    }
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("invalid date {text:?}: {e}")))
}

/// Most listing ids one batch check may name.
pub const MAX_BATCH: usize = 1_000;
/// Longest opaque id (listing, host, guest) the API accepts.
pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateListing {
    /// Your own id for the listing (letters, digits, `-`, `_`; at most 64); generated if absent.
    pub id: Option<String>,
    /// The host who owns the listing (an opaque id). Defaults to the caller's subject; a host
    /// may only name themselves, an admin anyone.
    pub host_id: Option<String>,
    /// IANA time zone of the listing, e.g. `Europe/Lisbon`.
    pub time_zone: String,
    /// Identical bookable units (1 for a house, 40 for a hotel room type). 1–10000.
    pub units: u32,
    /// Shortest stay in nights (default 1).
    #[serde(default = "one")]
    pub min_nights: u32,
    /// Longest stay in nights (default 365).
    #[serde(default = "max_stay")]
    pub max_nights: u32,
    /// Hours between now and the earliest check-in date's start, judged in the listing's zone
    /// (default 0: same-day check-in allowed).
    #[serde(default)]
    pub advance_notice_hours: u32,
    /// How many days ahead, counting today in the listing's zone, nights can be booked
    /// (default 365).
    #[serde(default = "max_stay")]
    pub booking_window_days: u32,
}

fn one() -> u32 {
    1
}

fn max_stay() -> u32 {
    365
}

/// Fields to change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateListing {
    pub time_zone: Option<String>,
    pub units: Option<u32>,
    pub min_nights: Option<u32>,
    pub max_nights: Option<u32>,
    pub advance_notice_hours: Option<u32>,
    pub booking_window_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListingBody {
    pub id: String,
    pub host_id: String,
    pub time_zone: String,
    pub units: u16,
    pub min_nights: u16,
    pub max_nights: u16,
    pub advance_notice_hours: u32,
    pub booking_window_days: u16,
    /// Raised by every change to the listing or its calendar.
    pub version: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&Listing> for ListingBody {
    fn from(l: &Listing) -> Self {
        Self {
            id: l.id.clone(),
            host_id: l.host_id.clone(),
            time_zone: l.zone.name().to_owned(),
            units: l.rules.units(),
            min_nights: l.rules.min_nights(),
            max_nights: l.rules.max_nights(),
            advance_notice_hours: l.rules.advance_notice_hours(),
            booking_window_days: l.rules.booking_window_days(),
            version: l.version,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// A range of nights `[start, end)` in the query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First night.
    #[serde(deserialize_with = "civil_date")]
    #[param(value_type = String, format = Date, required = true)]
    pub start: Date,
    /// The day after the last night.
    #[serde(deserialize_with = "civil_date")]
    #[param(value_type = String, format = Date, required = true)]
    pub end: Date,
    /// Calendar reads only: answer from a listing version at least this new (read-your-writes:
    /// pass the `listing_version` a write returned).
    pub min_version: Option<i64>,
}

impl RangeQuery {
    pub fn range(&self) -> Result<NightRange, ApiError> {
        night_range(self.start, self.end, ("start", "end"))
    }
}

/// A stay in the query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StayQuery {
    #[serde(deserialize_with = "civil_date")]
    #[param(value_type = String, format = Date, required = true)]
    pub check_in: Date,
    #[serde(deserialize_with = "civil_date")]
    #[param(value_type = String, format = Date, required = true)]
    pub check_out: Date,
    /// Units wanted (default 1).
    #[param(nullable = false)]
    pub units: Option<u32>,
    /// Answer from a listing version at least this new (read-your-writes).
    pub min_version: Option<i64>,
}

/// Validates a pair of dates as a range of nights; `fields` names the start and end fields, so
/// the error blames the one at fault.
pub fn night_range(start: Date, end: Date, fields: (&str, &str)) -> Result<NightRange, ApiError> {
    NightRange::new(start, end).map_err(|e| {
        let start_at_fault =
            matches!(e, RangeError::OutOfBounds) && !(DATE_MIN..=DATE_MAX).contains(&start);
        ApiError::invalid(
            if start_at_fault { fields.0 } else { fields.1 },
            e.to_string(),
        )
    })
}

/// Whether `id` could name something: ids are created as [`opaque_id`]s or UUIDs, so anything
/// else is certainly unknown and need not reach the database.
pub fn could_exist(id: &str) -> bool {
    opaque_id("id", id).is_ok()
}

/// Validates a requested unit count.
pub fn units(units: Option<u32>) -> Result<u16, ApiError> {
    match units.unwrap_or(1) {
        n @ 1..=10_000 => Ok(n as u16),
        n => Err(ApiError::invalid(
            "units",
            format!("must be between 1 and 10000, got {n}"),
        )),
    }
}

/// Validates an opaque id.
pub fn opaque_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b':');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters of letters, digits, '-', '_', '.', ':'"),
        ))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NightBody {
    #[schema(value_type = String, format = Date)]
    pub date: Date,
    /// `available` when at least one unit is free, else `unavailable`.
    pub status: &'static str,
    pub remaining: u16,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarBody {
    pub listing_id: String,
    /// The listing version this calendar reflects.
    pub version: i64,
    pub units: u16,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub start: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub end: Date,
    pub nights: Vec<NightBody>,
}

impl CalendarBody {
    pub fn new(listing: &Listing, calendar: &Calendar) -> Self {
        Self {
            listing_id: listing.id.clone(),
            version: listing.version,
            units: listing.rules.units(),
            start: calendar.range().start(),
            end: calendar.range().end(),
            nights: calendar
                .nights()
                .map(|n| NightBody {
                    date: n.night,
                    status: if n.remaining > 0 {
                        "available"
                    } else {
                        "unavailable"
                    },
                    remaining: n.remaining,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityBody {
    pub listing_id: String,
    pub version: i64,
    pub available: bool,
    /// Why not, when not available: `nights_unavailable`, `below_min_nights`, `above_max_nights`,
    /// `advance_notice`, `beyond_booking_window`, `too_many_units` (tagged by `reason`).
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCheck {
    /// Up to 1000 listing ids.
    pub listing_ids: Vec<String>,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_in: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_out: Date,
    /// Units wanted in each listing (default 1).
    pub units: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unavailable {
    pub listing_id: String,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchBody {
    /// Listings where the stay can be booked, in request order.
    pub available: Vec<String>,
    /// Listings where it cannot, with why.
    pub unavailable: Vec<Unavailable>,
    /// Ids that name no listing.
    pub not_found: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceHold {
    pub listing_id: String,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_in: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_out: Date,
    /// Units wanted (default 1).
    pub units: Option<u32>,
    /// The guest (an opaque id; no personal data). Defaults to the caller's subject; a guest may
    /// only name themselves, an admin anyone.
    pub guest_id: Option<String>,
    /// How long the hold lasts, 60–86400 seconds (default 900).
    pub ttl_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBooking {
    pub listing_id: String,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_in: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_out: Date,
    pub units: Option<u32>,
    /// The guest, as for holds: defaults to the caller's subject.
    pub guest_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBlock {
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub start: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub end: Date,
    /// Units to close (default: all of the listing's units).
    pub units: Option<u32>,
    /// The host's note (at most 500 characters).
    pub note: Option<String>,
}

/// A hold or a booking.
#[derive(Debug, Serialize, ToSchema)]
pub struct StayBody {
    pub id: String,
    pub listing_id: String,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_in: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub check_out: Date,
    pub nights: u32,
    pub units: u16,
    pub guest_id: Option<String>,
    /// `active`, `released`, `expired`, `confirmed` (holds); `active`, `cancelled` (bookings).
    #[schema(value_type = String)]
    pub state: ClaimState,
    /// Holds only: when the hold stops holding.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Bookings made from a hold: the hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// In answers to writes: the listing version the write produced (use it as `min_version`
    /// to read your own write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_version: Option<i64>,
}

impl StayBody {
    /// The claim as seen at `now` (a hold past its expiry reads as expired).
    pub fn new(c: &Claim, now: Timestamp) -> Self {
        Self {
            id: c.id.clone(),
            listing_id: c.listing_id.clone(),
            check_in: c.nights.start(),
            check_out: c.nights.end(),
            nights: c.nights.len(),
            units: c.units,
            guest_id: c.guest_id.clone(),
            state: c.state_at(now),
            expires_at: c.expires_at,
            hold_id: c.hold_id.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            listing_version: c.listing_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockBody {
    pub id: String,
    pub listing_id: String,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub start: Date,
    #[serde(deserialize_with = "civil_date")]
    #[schema(value_type = String, format = Date)]
    pub end: Date,
    pub units: u16,
    pub note: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// In answers to writes: the listing version the write produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_version: Option<i64>,
}

impl From<&Claim> for BlockBody {
    fn from(c: &Claim) -> Self {
        Self {
            id: c.id.clone(),
            listing_id: c.listing_id.clone(),
            start: c.nights.start(),
            end: c.nights.end(),
            units: c.units,
            note: c.note.clone(),
            created_at: c.created_at,
            listing_version: c.listing_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlocksBody {
    pub blocks: Vec<BlockBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedBody {
    /// How many blocks were trimmed, split or removed.
    pub blocks_changed: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    pub status: &'static str,
}
