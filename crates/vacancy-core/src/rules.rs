//! A listing's time zone and stay rules.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::{Night, NightRange};

/// A named IANA time zone, such as `Europe/London`. "Now" is judged in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

/// The name is not a known IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown IANA time zone {0:?}")]
pub struct ZoneError(pub String);

impl Zone {
    /// Looks the name up in the time zone database bundled with the binary.
    pub fn new(name: &str) -> Result<Self, ZoneError> {
        // Fixed offsets and POSIX strings are rejected on purpose: a listing's zone must follow
        // its region's DST rules, which only a named zone does.
        if name.is_empty() || name.len() > 64 || !name.contains('/') && name != "UTC" {
            return Err(ZoneError(name.to_owned()));
        }
        let tz = TimeZone::get(name).map_err(|_| ZoneError(name.to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            tz,
        })
    }

    /// The IANA name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The civil date it is at `now` in this zone.
    pub fn today(&self, now: Timestamp) -> Night {
        now.to_zoned_datetime(self.tz.clone()).date()
    }

    /// The civil date it will be in this zone once `after` has elapsed from `now` (elapsed
    /// time, so a DST change in between moves the wall clock, not the duration).
    pub fn date_after(&self, now: Timestamp, after: SignedDuration) -> Night {
        let later = now.checked_add(after).unwrap_or(Timestamp::MAX);
        later.to_zoned_datetime(self.tz.clone()).date()
    }
}

/// Raw rule values as a client sends them, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesInput {
    pub units: u32,
    pub min_nights: u32,
    pub max_nights: u32,
    pub advance_notice_hours: u32,
    pub booking_window_days: u32,
}

/// A rule value is out of range or inconsistent with another. `field` names the offender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

/// A listing's validated stay rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListingRules {
    units: u16,
    min_nights: u16,
    max_nights: u16,
    advance_notice_hours: u32,
    booking_window_days: u16,
}

impl ListingRules {
    /// Most identical units one listing may have (a large hotel room type).
    pub const MAX_UNITS: u32 = 10_000;
    /// Longest stay any listing may allow.
    pub const MAX_STAY_NIGHTS: u32 = 365;
    /// Longest advance notice: one year.
    pub const MAX_ADVANCE_NOTICE_HOURS: u32 = 8_784;
    /// Furthest booking window: three years.
    pub const MAX_BOOKING_WINDOW_DAYS: u32 = 1_096;

    pub fn new(input: RulesInput) -> Result<Self, RuleError> {
        let units = within("units", input.units, 1, Self::MAX_UNITS)?;
        let min_nights = within("min_nights", input.min_nights, 1, Self::MAX_STAY_NIGHTS)?;
        let max_nights = within("max_nights", input.max_nights, 1, Self::MAX_STAY_NIGHTS)?;
        if max_nights < min_nights {
            return Err(RuleError {
                field: "max_nights",
                message: format!("must be at least min_nights ({min_nights})"),
            });
        }
        let advance_notice_hours = within(
            "advance_notice_hours",
            input.advance_notice_hours,
            0,
            Self::MAX_ADVANCE_NOTICE_HOURS,
        )?;
        let booking_window_days = within(
            "booking_window_days",
            input.booking_window_days,
            1,
            Self::MAX_BOOKING_WINDOW_DAYS,
        )?;
        // Every value was checked against a bound that fits in u16 except the notice.
        Ok(Self {
            units: units as u16,
            min_nights: min_nights as u16,
            max_nights: max_nights as u16,
            advance_notice_hours,
            booking_window_days: booking_window_days as u16,
        })
    }

    pub fn units(&self) -> u16 {
        self.units
    }
    pub fn min_nights(&self) -> u16 {
        self.min_nights
    }
    pub fn max_nights(&self) -> u16 {
        self.max_nights
    }
    pub fn advance_notice_hours(&self) -> u32 {
        self.advance_notice_hours
    }
    pub fn booking_window_days(&self) -> u16 {
        self.booking_window_days
    }

    /// The raw values, e.g. to merge a partial update before validating it again.
    pub fn to_input(&self) -> RulesInput {
        RulesInput {
            units: self.units.into(),
            min_nights: self.min_nights.into(),
            max_nights: self.max_nights.into(),
            advance_notice_hours: self.advance_notice_hours,
            booking_window_days: self.booking_window_days.into(),
        }
    }

    /// The earliest check-in date allowed at `now`: the listing-local date once the advance
    /// notice has elapsed. With no notice, that is today in the listing's zone.
    pub fn earliest_check_in(&self, zone: &Zone, now: Timestamp) -> Night {
        let notice = SignedDuration::from_hours(i64::from(self.advance_notice_hours));
        zone.date_after(now, notice)
    }

    /// The last night bookable at `now`: today in the listing's zone plus the booking window,
    /// minus one (a window of 1 day allows only tonight).
    pub fn last_bookable_night(&self, zone: &Zone, now: Timestamp) -> Night {
        let today = zone.today(now);
        today.saturating_add(jiff::Span::new().days(i64::from(self.booking_window_days) - 1))
    }

    /// Whether a stay's length fits `min_nights ..= max_nights`.
    pub fn allows_length(&self, stay: &NightRange) -> bool {
        (u32::from(self.min_nights)..=u32::from(self.max_nights)).contains(&stay.len())
    }
}

fn within(field: &'static str, value: u32, min: u32, max: u32) -> Result<u32, RuleError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(RuleError {
            field,
            message: format!("must be between {min} and {max}, got {value}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(
        units: u32,
        min: u32,
        max: u32,
        notice: u32,
        window: u32,
    ) -> Result<ListingRules, RuleError> {
        ListingRules::new(RulesInput {
            units,
            min_nights: min,
            max_nights: max,
            advance_notice_hours: notice,
            booking_window_days: window,
        })
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn d(s: &str) -> Night {
        s.parse().expect("test date")
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(rules(0, 1, 1, 0, 1).map_err(|e| e.field), Err("units"));
        assert_eq!(rules(10_001, 1, 1, 0, 1).map_err(|e| e.field), Err("units"));
        assert_eq!(rules(1, 0, 1, 0, 1).map_err(|e| e.field), Err("min_nights"));
        assert_eq!(
            rules(1, 1, 366, 0, 1).map_err(|e| e.field),
            Err("max_nights")
        );
        assert_eq!(rules(1, 5, 4, 0, 1).map_err(|e| e.field), Err("max_nights"));
        assert_eq!(
            rules(1, 1, 1, 9_000, 1).map_err(|e| e.field),
            Err("advance_notice_hours")
        );
        assert_eq!(
            rules(1, 1, 1, 0, 0).map_err(|e| e.field),
            Err("booking_window_days")
        );
        assert!(rules(10_000, 365, 365, 8_784, 1_096).is_ok());
    }

    #[test]
    fn zones_must_be_named_iana_zones() {
        assert!(Zone::new("Europe/London").is_ok());
        assert!(Zone::new("UTC").is_ok());
        assert!(Zone::new("Mars/Olympus").is_err());
        assert!(Zone::new("+02:00").is_err());
        assert!(Zone::new("EST5EDT,M3.2.0,M11.1.0").is_err());
        assert!(Zone::new("").is_err());
    }

    #[test]
    fn today_is_judged_in_the_listing_zone_not_utc() {
        let now = ts("2025-06-01T02:30:00Z");
        assert_eq!(
            Zone::new("Europe/Berlin").expect("zone").today(now),
            d("2025-06-01")
        );
        assert_eq!(
            Zone::new("America/Los_Angeles").expect("zone").today(now),
            d("2025-05-31")
        );
        assert_eq!(
            Zone::new("Pacific/Kiritimati").expect("zone").today(now),
            d("2025-06-01")
        );
    }

    #[test]
    fn advance_notice_counts_elapsed_hours_across_a_dst_change() {
        // New York springs forward at 02:00 on 2025-03-09: 23 wall-clock hours that day.
        let zone = Zone::new("America/New_York").expect("zone");
        let r = rules(1, 1, 30, 24, 365).expect("rules");
        // 2025-03-08 00:30 local (EST, UTC-5). 24 elapsed hours later it is 2025-03-09 01:30
        // EST... wall clock shows 2025-03-09 01:30 → date 2025-03-09.
        assert_eq!(
            r.earliest_check_in(&zone, ts("2025-03-08T05:30:00Z")),
            d("2025-03-09")
        );
        // 2025-03-08 23:30 EST + 24 h = 2025-03-10 00:30 EDT: the 23-hour day is skipped past.
        assert_eq!(
            r.earliest_check_in(&zone, ts("2025-03-09T04:30:00Z")),
            d("2025-03-10")
        );
    }

    #[test]
    fn booking_window_counts_listing_local_days() {
        let zone = Zone::new("Australia/Lord_Howe").expect("zone");
        let r = rules(1, 1, 30, 0, 10).expect("rules");
        // 2025-01-01T13:00Z is 2025-01-02 00:00 at Lord Howe (UTC+11 in summer).
        assert_eq!(
            r.last_bookable_night(&zone, ts("2025-01-01T13:00:00Z")),
            d("2025-01-11")
        );
        assert_eq!(
            r.last_bookable_night(&zone, ts("2025-01-01T12:59:59Z")),
            d("2025-01-10")
        );
    }
}
