//! The availability decision: can this stay be booked at this instant, and if not, why not.

use jiff::Timestamp;
use serde::Serialize;

use crate::{Calendar, ListingRules, Night, NightRange, Zone};

/// A stay and how many units of the listing it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StayRequest {
    pub stay: NightRange,
    pub units: u16,
}

/// One reason a stay cannot be booked. Serialized with a `reason` tag for API clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Some nights do not have enough free units (taken by bookings, live holds or blocks).
    NightsUnavailable { nights: Vec<Night> },
    /// More units requested than the listing has at all.
    TooManyUnits { requested: u16, units: u16 },
    /// The stay is shorter than the listing's minimum.
    BelowMinNights { min_nights: u16 },
    /// The stay is longer than the listing's maximum.
    AboveMaxNights { max_nights: u16 },
    /// Check-in is sooner than the listing's advance notice allows (or in the past).
    AdvanceNotice { earliest_check_in: Night },
    /// The stay reaches past the listing's booking window.
    BeyondBookingWindow { last_bookable_night: Night },
}

impl Reason {
    /// Whether the reason is a conflict with other claims (HTTP 409) rather than a rule the
    /// request itself breaks (HTTP 422).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Reason::NightsUnavailable { .. })
    }
}

/// The answer to "can this stay be booked now?". Available when there are no reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub reasons: Vec<Reason>,
}

impl Decision {
    pub fn is_available(&self) -> bool {
        self.reasons.is_empty()
    }

    /// The nights that are taken, if that is one of the reasons.
    pub fn unavailable_nights(&self) -> &[Night] {
        self.reasons
            .iter()
            .find_map(|r| match r {
                Reason::NightsUnavailable { nights } => Some(nights.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

/// Judges `request` against the listing's rules (in the listing's zone, at `now`) and its
/// calendar. Every failing rule is reported, not only the first.
pub fn check_stay(
    rules: &ListingRules,
    zone: &Zone,
    calendar: &Calendar,
    request: &StayRequest,
    now: Timestamp,
) -> Decision {
    let mut reasons = rule_violations(rules, zone, &request.stay, now);
    if request.units > rules.units() {
        reasons.push(Reason::TooManyUnits {
            requested: request.units,
            units: rules.units(),
        });
    } else {
        let nights = calendar.short_nights(&request.stay, request.units);
        if !nights.is_empty() {
            reasons.insert(0, Reason::NightsUnavailable { nights });
        }
    }
    Decision { reasons }
}

/// The stay rules a stay breaks, ignoring the calendar.
pub fn rule_violations(
    rules: &ListingRules,
    zone: &Zone,
    stay: &NightRange,
    now: Timestamp,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if stay.len() < u32::from(rules.min_nights()) {
        reasons.push(Reason::BelowMinNights {
            min_nights: rules.min_nights(),
        });
    }
    if stay.len() > u32::from(rules.max_nights()) {
        reasons.push(Reason::AboveMaxNights {
            max_nights: rules.max_nights(),
        });
    }
    let earliest = rules.earliest_check_in(zone, now);
    if stay.start() < earliest {
        reasons.push(Reason::AdvanceNotice {
            earliest_check_in: earliest,
        });
    }
    let last = rules.last_bookable_night(zone, now);
    if stay.last_night() > last {
        reasons.push(Reason::BeyondBookingWindow {
            last_bookable_night: last,
        });
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClaimKind, ClaimSpan, RulesInput};

    fn d(s: &str) -> Night {
        s.parse().expect("test date")
    }

    fn range(a: &str, b: &str) -> NightRange {
        NightRange::new(d(a), d(b)).expect("test range")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn rules(units: u32, min: u32, max: u32, notice: u32, window: u32) -> ListingRules {
        ListingRules::new(RulesInput {
            units,
            min_nights: min,
            max_nights: max,
            advance_notice_hours: notice,
            booking_window_days: window,
        })
        .expect("test rules")
    }

    fn decide(
        r: &ListingRules,
        zone: &str,
        claims: &[ClaimSpan],
        stay: NightRange,
        units: u16,
        now: &str,
    ) -> Decision {
        let zone = Zone::new(zone).expect("zone");
        let cal = Calendar::build(stay, r.units(), claims, ts(now));
        check_stay(r, &zone, &cal, &StayRequest { stay, units }, ts(now))
    }

    #[test]
    fn a_free_stay_that_keeps_every_rule_is_available() {
        let r = rules(1, 2, 14, 24, 365);
        let dec = decide(
            &r,
            "Europe/London",
            &[],
            range("2025-06-10", "2025-06-13"),
            1,
            "2025-06-01T10:00:00Z",
        );
        assert!(dec.is_available(), "{dec:?}");
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_reason() {
        let r = rules(2, 3, 5, 48, 30);
        let now = "2025-06-01T10:00:00Z";
        let short = decide(&r, "UTC", &[], range("2025-06-10", "2025-06-12"), 1, now);
        assert_eq!(
            short.reasons,
            vec![Reason::BelowMinNights { min_nights: 3 }]
        );
        let long = decide(&r, "UTC", &[], range("2025-06-10", "2025-06-16"), 1, now);
        assert_eq!(long.reasons, vec![Reason::AboveMaxNights { max_nights: 5 }]);
        let soon = decide(&r, "UTC", &[], range("2025-06-02", "2025-06-05"), 1, now);
        assert_eq!(
            soon.reasons,
            vec![Reason::AdvanceNotice {
                earliest_check_in: d("2025-06-03")
            }]
        );
        let far = decide(&r, "UTC", &[], range("2025-06-28", "2025-07-02"), 1, now);
        assert_eq!(
            far.reasons,
            vec![Reason::BeyondBookingWindow {
                last_bookable_night: d("2025-06-30")
            }]
        );
        let many = decide(&r, "UTC", &[], range("2025-06-10", "2025-06-13"), 3, now);
        assert_eq!(
            many.reasons,
            vec![Reason::TooManyUnits {
                requested: 3,
                units: 2
            }]
        );
        let past = decide(&r, "UTC", &[], range("2025-05-01", "2025-05-08"), 1, now);
        assert_eq!(
            past.reasons,
            vec![
                Reason::AboveMaxNights { max_nights: 5 },
                Reason::AdvanceNotice {
                    earliest_check_in: d("2025-06-03")
                }
            ]
        );
    }

    #[test]
    fn taken_nights_are_named_and_are_a_conflict() {
        let r = rules(1, 1, 30, 0, 365);
        let booked = [ClaimSpan {
            nights: range("2025-06-11", "2025-06-13"),
            units: 1,
            kind: ClaimKind::Booking,
        }];
        let dec = decide(
            &r,
            "UTC",
            &booked,
            range("2025-06-10", "2025-06-14"),
            1,
            "2025-06-01T00:00:00Z",
        );
        assert_eq!(
            dec.unavailable_nights(),
            &[d("2025-06-11"), d("2025-06-12")]
        );
        assert!(dec.reasons.iter().all(Reason::is_conflict));
    }

    #[test]
    fn check_in_today_is_allowed_without_notice_in_the_listing_zone() {
        let r = rules(1, 1, 30, 0, 365);
        // 23:30 in Los Angeles on 2025-06-01 is 06:30Z on 2025-06-02.
        let dec = decide(
            &r,
            "America/Los_Angeles",
            &[],
            range("2025-06-01", "2025-06-02"),
            1,
            "2025-06-02T06:30:00Z",
        );
        assert!(dec.is_available(), "{dec:?}");
        let dec = decide(
            &r,
            "Europe/Paris",
            &[],
            range("2025-06-01", "2025-06-02"),
            1,
            "2025-06-02T06:30:00Z",
        );
        assert_eq!(
            dec.reasons,
            vec![Reason::AdvanceNotice {
                earliest_check_in: d("2025-06-02")
            }]
        );
    }
}
