//! The pure domain core of vacancy.
//!
//! Nights, stays, listing rules, calendars and availability decisions live here, with no I/O,
//! no async and no clock: "now" is always a parameter. Everything that talks to a database, a
//! cache or the network is an adapter around this crate, so this crate must never depend on one.
//!
//! Types here cannot hold invalid values: a [`NightRange`] that exists is non-empty, ordered and
//! within bounds; [`ListingRules`] that exist are consistent; a [`Zone`] is a known IANA zone.

mod availability;
mod calendar;
pub mod fuzzing;
mod nights;
mod rules;

pub use availability::{Decision, Reason, StayRequest, check_stay, rule_violations};
pub use calendar::{Calendar, ClaimKind, ClaimSpan, NightStatus};
pub use nights::{DATE_MAX, DATE_MIN, NightRange, RangeError, day_number, from_day_number};
pub use rules::{ListingRules, RuleError, RulesInput, Zone, ZoneError};

/// A night is a civil date in the listing's time zone: the night that starts on that date.
pub type Night = jiff::civil::Date;
