//! Leap days are nights like any other: 2024-02-29 and 2000-02-29 exist, 2100-02-29 does not.

use jiff::Timestamp;
use jiff::civil::Date;
use vacancy_core::{
    Calendar, ClaimKind, ClaimSpan, DATE_MIN, ListingRules, NightRange, Reason, RulesInput,
    StayRequest, Zone, check_stay, day_number, rule_violations,
};

fn d(s: &str) -> Date {
    s.parse().expect("test date")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn range(a: &str, b: &str) -> NightRange {
    NightRange::new(d(a), d(b)).expect("test range")
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

#[test]
fn the_leap_day_is_a_night() {
    let leap = range("2024-02-29", "2024-03-01");
    assert_eq!(leap.len(), 1);
    assert_eq!(leap.last_night(), d("2024-02-29"));
    assert_eq!(leap.nights().collect::<Vec<_>>(), vec![d("2024-02-29")]);
    assert_eq!(day_number(d("2024-03-01")) - day_number(d("2024-02-28")), 2);
    // 2000 is a leap year (divisible by 400) and its leap day is within bounds.
    assert!(d("2000-02-29") > DATE_MIN);
    assert_eq!(range("2000-02-28", "2000-03-01").len(), 2);
}

#[test]
fn stays_over_the_leap_day_count_it() {
    let stay = range("2024-02-27", "2024-03-02");
    assert_eq!(stay.len(), 4);
    assert!(stay.contains(d("2024-02-29")));
    assert_eq!(
        stay.nights().collect::<Vec<_>>(),
        vec![
            d("2024-02-27"),
            d("2024-02-28"),
            d("2024-02-29"),
            d("2024-03-01")
        ]
    );
    // The same calendar dates a year earlier span one night fewer.
    assert_eq!(range("2023-02-27", "2023-03-02").len(), 3);

    // A four-night maximum accepts the leap-year stay; a three-night maximum does not.
    let now = ts("2024-02-01T12:00:00Z");
    let utc = Zone::new("UTC").expect("zone");
    assert_eq!(
        rule_violations(&rules(1, 1, 4, 0, 60), &utc, &stay, now),
        vec![]
    );
    assert_eq!(
        rule_violations(&rules(1, 1, 3, 0, 60), &utc, &stay, now),
        vec![Reason::AboveMaxNights { max_nights: 3 }]
    );

    // A booking that holds only the leap night makes exactly that night unavailable.
    let booked = [ClaimSpan {
        nights: range("2024-02-29", "2024-03-01"),
        units: 1,
        kind: ClaimKind::Booking,
    }];
    let cal = Calendar::build(stay, 1, &booked, now);
    assert_eq!(
        cal.nights().map(|n| n.remaining).collect::<Vec<_>>(),
        vec![1, 1, 0, 1]
    );
    let decision = check_stay(
        &rules(1, 1, 30, 0, 60),
        &utc,
        &cal,
        &StayRequest { stay, units: 1 },
        now,
    );
    assert_eq!(decision.unavailable_nights(), &[d("2024-02-29")]);
}

#[test]
fn a_booking_window_can_end_on_the_leap_day() {
    let utc = Zone::new("UTC").expect("zone");
    let now = ts("2024-02-01T12:00:00Z");
    // Today (02-01) plus 29 days minus one is 02-29.
    let r = rules(1, 1, 30, 0, 29);
    assert_eq!(r.last_bookable_night(&utc, now), d("2024-02-29"));
    assert_eq!(
        rule_violations(&r, &utc, &range("2024-02-28", "2024-03-01"), now),
        vec![]
    );
    assert_eq!(
        rule_violations(&r, &utc, &range("2024-02-28", "2024-03-02"), now),
        vec![Reason::BeyondBookingWindow {
            last_bookable_night: d("2024-02-29")
        }]
    );
    // The same window a year earlier ends on 03-01.
    assert_eq!(
        r.last_bookable_night(&utc, ts("2023-02-01T12:00:00Z")),
        d("2023-03-01")
    );
    // A window of one day on the leap day itself allows only that night.
    let tonight = rules(1, 1, 30, 0, 1);
    let leap_noon = ts("2024-02-29T12:00:00Z");
    assert_eq!(
        tonight.last_bookable_night(&utc, leap_noon),
        d("2024-02-29")
    );
    assert_eq!(tonight.earliest_check_in(&utc, leap_noon), d("2024-02-29"));
    // 24 hours' notice from 02-28 lands on the leap day.
    assert_eq!(
        rules(1, 1, 30, 24, 30).earliest_check_in(&utc, ts("2024-02-28T12:00:00Z")),
        d("2024-02-29")
    );
}

#[test]
fn the_year_2100_has_no_leap_day() {
    assert!("2100-02-29".parse::<Date>().is_err());
    assert_eq!(day_number(d("2100-03-01")) - day_number(d("2100-02-28")), 1);
    let stay = range("2100-02-28", "2100-03-01");
    assert_eq!(stay.len(), 1);
    assert_eq!(stay.nights().collect::<Vec<_>>(), vec![d("2100-02-28")]);
    assert_eq!(range("2100-02-27", "2100-03-02").len(), 3);

    let utc = Zone::new("UTC").expect("zone");
    let now = ts("2100-02-01T12:00:00Z");
    // Today (02-01) plus 29 days minus one is 03-01 in a common year.
    let r = rules(1, 1, 30, 0, 29);
    assert_eq!(r.last_bookable_night(&utc, now), d("2100-03-01"));
    assert_eq!(
        rules(1, 1, 30, 24, 30).earliest_check_in(&utc, ts("2100-02-28T12:00:00Z")),
        d("2100-03-01")
    );
}
