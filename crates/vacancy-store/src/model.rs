//! Records the store reads and writes, in domain types.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use vacancy_core::{Calendar, ClaimKind, ClaimSpan, ListingRules, NightRange, Zone};

/// A bookable thing with its rules and calendar version.
#[derive(Debug, Clone)]
pub struct Listing {
    pub id: String,
    pub host_id: String,
    pub zone: Zone,
    pub rules: ListingRules,
    /// Raised by every committed change to the listing or its calendar.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A listing to create.
#[derive(Debug, Clone)]
pub struct NewListing {
    /// The client's own id for the listing, or `None` for a generated one.
    pub id: Option<String>,
    pub host_id: String,
    pub zone: Zone,
    pub rules: ListingRules,
}

/// A partial update of a listing's rules; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct RulesPatch {
    pub zone: Option<Zone>,
    pub units: Option<u32>,
    pub min_nights: Option<u32>,
    pub max_nights: Option<u32>,
    pub advance_notice_hours: Option<u32>,
    pub booking_window_days: Option<u32>,
}

/// A listing with its calendar over a range, read in one snapshot: the calendar is exactly the
/// one of `listing.version`.
#[derive(Debug, Clone)]
pub struct ListingSnapshot {
    pub listing: Listing,
    pub calendar: Calendar,
    /// The live holds counted in `calendar`, so a cached copy can stop counting each one when
    /// it expires.
    pub holds: Vec<ClaimSpan>,
}

/// What a claim is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Hold,
    Booking,
    Block,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Hold => "hold",
            Kind::Booking => "booking",
            Kind::Block => "block",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hold" => Kind::Hold,
            "booking" => Kind::Booking,
            "block" => Kind::Block,
            _ => return None,
        })
    }
}

/// Where a claim is in its life. Only `Active` claims occupy nights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimState {
    /// Occupying its nights (a hold only until `expires_at`).
    Active,
    /// A hold given up by the client.
    Released,
    /// A hold that ran out before it was confirmed.
    Expired,
    /// A hold that became a booking.
    Confirmed,
    /// A booking cancelled.
    Cancelled,
    /// A block the host removed.
    Removed,
}

impl ClaimState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ClaimState::Active => "active",
            ClaimState::Released => "released",
            ClaimState::Expired => "expired",
            ClaimState::Confirmed => "confirmed",
            ClaimState::Cancelled => "cancelled",
            ClaimState::Removed => "removed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => ClaimState::Active,
            "released" => ClaimState::Released,
            "expired" => ClaimState::Expired,
            "confirmed" => ClaimState::Confirmed,
            "cancelled" => ClaimState::Cancelled,
            "removed" => ClaimState::Removed,
            _ => return None,
        })
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hold, booking or block.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub id: String,
    pub listing_id: String,
    pub kind: Kind,
    pub state: ClaimState,
    pub nights: NightRange,
    pub units: u16,
    /// The guest a hold or booking is for (an opaque id); `None` for blocks.
    pub guest_id: Option<String>,
    /// When a hold stops occupying its nights.
    pub expires_at: Option<Timestamp>,
    /// For a booking made by confirming a hold: that hold.
    pub hold_id: Option<String>,
    /// For a block: the host's note.
    pub note: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// On a claim a write just returned: the listing version that write produced, so the client
    /// can read its own write (`min_version`). `None` on claims read back later.
    pub listing_version: Option<i64>,
}

impl Claim {
    /// The state as seen at `now`: an active hold past its expiry is expired even before the
    /// sweeper has written so.
    pub fn state_at(&self, now: Timestamp) -> ClaimState {
        match (self.state, self.expires_at) {
            (ClaimState::Active, Some(at)) if self.kind == Kind::Hold && at <= now => {
                ClaimState::Expired
            }
            (state, _) => state,
        }
    }

    pub(crate) fn span(&self) -> ClaimSpan {
        ClaimSpan {
            nights: self.nights,
            units: self.units,
            kind: match self.kind {
                Kind::Hold => ClaimKind::Hold {
                    expires_at: self.expires_at.unwrap_or(Timestamp::MIN),
                },
                Kind::Booking => ClaimKind::Booking,
                Kind::Block => ClaimKind::Block,
            },
        }
    }
}

/// One committed change, as written to the outbox and later published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// e.g. `hold.placed`, `booking.created`, `booking.cancelled`, `block.added`.
    pub kind: String,
    pub listing_id: String,
    /// The listing version this change produced.
    pub version: i64,
    /// The claim the change is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    /// The nights whose availability changed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nights: Option<NightRange>,
    /// Holds released because they had expired, in the same transaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_holds: Vec<String>,
    /// Commit time, epoch milliseconds.
    pub at_ms: i64,
}
