//! "Now" is judged in the listing's zone: explicit checks of `Zone::today`,
//! `ListingRules::earliest_check_in` and `ListingRules::last_bookable_night` at instants just
//! before and after DST transitions (including Lord Howe's 30-minute shift) and across the day
//! Samoa skipped, plus stays over those days, which are counted in civil dates, never hours.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use vacancy_core::{
    Calendar, ListingRules, NightRange, Reason, RulesInput, StayRequest, Zone, check_stay,
    day_number, from_day_number, rule_violations,
};

fn d(s: &str) -> Date {
    s.parse().expect("test date")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn zone(name: &str) -> Zone {
    Zone::new(name).expect("known zone")
}

fn range(a: &str, b: &str) -> NightRange {
    NightRange::new(d(a), d(b)).expect("test range")
}

fn rules(min: u32, max: u32, notice: u32, window: u32) -> ListingRules {
    ListingRules::new(RulesInput {
        units: 1,
        min_nights: min,
        max_nights: max,
        advance_notice_hours: notice,
        booking_window_days: window,
    })
    .expect("test rules")
}

fn plus_days(date: Date, days: i32) -> Date {
    from_day_number(day_number(date) + days)
}

/// One instant near a transition: the listing-local date at it, and the listing-local date
/// 24 elapsed hours later (the earliest check-in with 24 hours' notice).
struct Case {
    now: &'static str,
    today: &'static str,
    earliest_24h: &'static str,
}

const fn case(now: &'static str, today: &'static str, earliest_24h: &'static str) -> Case {
    Case {
        now,
        today,
        earliest_24h,
    }
}

/// Checks every case against `Zone::today`, `earliest_check_in` (0, 1 and 24 hours' notice) and
/// `last_bookable_night` (windows of 1, 2 and 30 days).
fn check_cases(zone_name: &str, cases: &[Case]) {
    let zone = zone(zone_name);
    let no_notice = rules(1, 30, 0, 1);
    let day_notice = rules(1, 30, 24, 2);
    let month_window = rules(1, 30, 0, 30);
    for c in cases {
        let now = ts(c.now);
        let today = d(c.today);
        let ctx = format!("{zone_name} at {}", c.now);
        assert_eq!(zone.today(now), today, "today, {ctx}");
        assert_eq!(
            no_notice.earliest_check_in(&zone, now),
            today,
            "earliest with no notice, {ctx}"
        );
        assert_eq!(
            day_notice.earliest_check_in(&zone, now),
            d(c.earliest_24h),
            "earliest with 24 h notice, {ctx}"
        );
        assert_eq!(
            no_notice.last_bookable_night(&zone, now),
            today,
            "a window of 1 day allows only tonight, {ctx}"
        );
        assert_eq!(
            day_notice.last_bookable_night(&zone, now),
            plus_days(today, 1),
            "window of 2 days, {ctx}"
        );
        assert_eq!(
            month_window.last_bookable_night(&zone, now),
            plus_days(today, 29),
            "window of 30 days, {ctx}"
        );
    }
}

#[test]
fn new_york_spring_forward_2025_03_09() {
    // 2025-03-09 02:00 EST (07:00Z) becomes 03:00 EDT: a 23-hour day.
    check_cases(
        "America/New_York",
        &[
            // Saturday 23:59:59 EST: 24 elapsed hours later it is already Monday 00:59:59 EDT.
            case("2025-03-09T04:59:59Z", "2025-03-08", "2025-03-10"),
            case("2025-03-09T04:30:00Z", "2025-03-08", "2025-03-10"),
            // Sunday 00:00 EST.
            case("2025-03-09T05:00:00Z", "2025-03-09", "2025-03-10"),
            // One second before the jump (01:59:59 EST) and at it (03:00 EDT).
            case("2025-03-09T06:59:59Z", "2025-03-09", "2025-03-10"),
            case("2025-03-09T07:00:00Z", "2025-03-09", "2025-03-10"),
            // Sunday 23:59:59 EDT.
            case("2025-03-10T03:59:59Z", "2025-03-09", "2025-03-10"),
            // Monday 00:00 EDT, which UTC-5 (the offset before the change) would call Sunday 23:00.
            case("2025-03-10T04:00:00Z", "2025-03-10", "2025-03-11"),
        ],
    );
}

#[test]
fn new_york_fall_back_2025_11_02() {
    // 2025-11-02 02:00 EDT (06:00Z) becomes 01:00 EST: a 25-hour day.
    check_cases(
        "America/New_York",
        &[
            case("2025-11-02T03:59:59Z", "2025-11-01", "2025-11-02"),
            // Sunday 00:00 EDT + 24 h = Sunday 23:00 EST: the notice ends on the same date.
            case("2025-11-02T04:00:00Z", "2025-11-02", "2025-11-02"),
            // 01:30 EDT (the first 01:30) and 01:30 EST (the second).
            case("2025-11-02T05:30:00Z", "2025-11-02", "2025-11-03"),
            case("2025-11-02T05:59:59Z", "2025-11-02", "2025-11-03"),
            case("2025-11-02T06:00:00Z", "2025-11-02", "2025-11-03"),
            case("2025-11-02T06:30:00Z", "2025-11-02", "2025-11-03"),
            // Sunday 23:59:59 EST, which EDT (the offset before the change) would call Monday.
            case("2025-11-03T04:59:59Z", "2025-11-02", "2025-11-03"),
            case("2025-11-03T05:00:00Z", "2025-11-03", "2025-11-04"),
        ],
    );
}

#[test]
fn london_spring_forward_2025_03_30() {
    // 2025-03-30 01:00 GMT (01:00Z) becomes 02:00 BST.
    check_cases(
        "Europe/London",
        &[
            // Saturday 23:59:59 GMT + 24 h = Monday 00:59:59 BST.
            case("2025-03-29T23:59:59Z", "2025-03-29", "2025-03-31"),
            case("2025-03-30T00:00:00Z", "2025-03-30", "2025-03-31"),
            case("2025-03-30T00:59:59Z", "2025-03-30", "2025-03-31"),
            case("2025-03-30T01:00:00Z", "2025-03-30", "2025-03-31"),
            case("2025-03-30T22:59:59Z", "2025-03-30", "2025-03-31"),
            // Monday 00:00 BST, still Sunday in UTC.
            case("2025-03-30T23:00:00Z", "2025-03-31", "2025-04-01"),
        ],
    );
}

#[test]
fn london_fall_back_2025_10_26() {
    // 2025-10-26 02:00 BST (01:00Z) becomes 01:00 GMT.
    check_cases(
        "Europe/London",
        &[
            case("2025-10-25T22:59:59Z", "2025-10-25", "2025-10-26"),
            // Sunday 00:00 BST (Saturday in UTC) + 24 h = Sunday 23:00 GMT: same date.
            case("2025-10-25T23:00:00Z", "2025-10-26", "2025-10-26"),
            case("2025-10-26T00:59:59Z", "2025-10-26", "2025-10-27"),
            case("2025-10-26T01:00:00Z", "2025-10-26", "2025-10-27"),
            case("2025-10-26T23:59:59Z", "2025-10-26", "2025-10-27"),
            case("2025-10-27T00:00:00Z", "2025-10-27", "2025-10-28"),
        ],
    );
}

#[test]
fn lord_howe_half_hour_fall_back_2025_04_06() {
    // 2025-04-06 02:00 +11 (2025-04-05T15:00Z) becomes 01:30 +10:30: a 24.5-hour day.
    check_cases(
        "Australia/Lord_Howe",
        &[
            case("2025-04-05T12:59:59Z", "2025-04-05", "2025-04-06"),
            // Sunday 00:00 +11 + 24 h = Sunday 23:30 +10:30: same date.
            case("2025-04-05T13:00:00Z", "2025-04-06", "2025-04-06"),
            case("2025-04-05T13:29:59Z", "2025-04-06", "2025-04-06"),
            // Sunday 00:30 +11 + 24 h = Monday 00:00 +10:30.
            case("2025-04-05T13:30:00Z", "2025-04-06", "2025-04-07"),
            case("2025-04-05T14:59:59Z", "2025-04-06", "2025-04-07"),
            case("2025-04-05T15:00:00Z", "2025-04-06", "2025-04-07"),
            // Sunday 23:59:59 +10:30, which +11 would call Monday 00:29:59.
            case("2025-04-06T13:29:59Z", "2025-04-06", "2025-04-07"),
            case("2025-04-06T13:30:00Z", "2025-04-07", "2025-04-08"),
        ],
    );
}

#[test]
fn lord_howe_half_hour_spring_forward_2025_10_05() {
    // 2025-10-05 02:00 +10:30 (2025-10-04T15:30Z) becomes 02:30 +11: a 23.5-hour day.
    check_cases(
        "Australia/Lord_Howe",
        &[
            // Saturday 23:45 +10:30 + 24 h = Monday 00:15 +11.
            case("2025-10-04T13:15:00Z", "2025-10-04", "2025-10-06"),
            case("2025-10-04T13:29:59Z", "2025-10-04", "2025-10-06"),
            case("2025-10-04T13:30:00Z", "2025-10-05", "2025-10-06"),
            case("2025-10-04T15:29:59Z", "2025-10-05", "2025-10-06"),
            case("2025-10-04T15:30:00Z", "2025-10-05", "2025-10-06"),
            case("2025-10-05T12:59:59Z", "2025-10-05", "2025-10-06"),
            // Monday 00:00 +11, which +10:30 would call Sunday 23:30.
            case("2025-10-05T13:00:00Z", "2025-10-06", "2025-10-07"),
        ],
    );
}

#[test]
fn advance_notice_is_elapsed_hours_not_wall_clock_days() {
    // Across New York's 23-hour day, 24 hours from Saturday 23:30 EST is Monday 00:30 EDT, so
    // Sunday is too soon; 23 hours' notice still allows Sunday.
    let zone = zone("America/New_York");
    let now = ts("2025-03-09T04:30:00Z");
    assert_eq!(
        rules(1, 30, 24, 30).earliest_check_in(&zone, now),
        d("2025-03-10")
    );
    assert_eq!(
        rules(1, 30, 23, 30).earliest_check_in(&zone, now),
        d("2025-03-09")
    );
    assert_eq!(
        zone.date_after(now, SignedDuration::from_hours(24)),
        d("2025-03-10")
    );
    // Across the 25-hour day, 24 hours from Sunday 00:00 EDT is still Sunday.
    let now = ts("2025-11-02T04:00:00Z");
    assert_eq!(
        rules(1, 30, 24, 30).earliest_check_in(&zone, now),
        d("2025-11-02")
    );
    assert_eq!(
        rules(1, 30, 25, 30).earliest_check_in(&zone, now),
        d("2025-11-03")
    );
}

#[test]
fn rule_checks_at_a_transition_use_the_listing_zone() {
    // 2025-03-30T23:00Z is Monday 00:00 BST in London but still Sunday in UTC.
    let now = ts("2025-03-30T23:00:00Z");
    let r = rules(1, 30, 0, 1);
    let london = zone("Europe/London");
    let utc = zone("UTC");
    assert_eq!(
        rule_violations(&r, &london, &range("2025-03-30", "2025-03-31"), now),
        vec![Reason::AdvanceNotice {
            earliest_check_in: d("2025-03-31")
        }]
    );
    assert_eq!(
        rule_violations(&r, &london, &range("2025-03-31", "2025-04-01"), now),
        vec![]
    );
    assert_eq!(
        rule_violations(&r, &london, &range("2025-04-01", "2025-04-02"), now),
        vec![Reason::BeyondBookingWindow {
            last_bookable_night: d("2025-03-31")
        }]
    );
    // The same instant judged in UTC allows Sunday night and not Monday.
    assert_eq!(
        rule_violations(&r, &utc, &range("2025-03-30", "2025-03-31"), now),
        vec![]
    );
    assert_eq!(
        rule_violations(&r, &utc, &range("2025-03-31", "2025-04-01"), now),
        vec![Reason::BeyondBookingWindow {
            last_bookable_night: d("2025-03-30")
        }]
    );
}

#[test]
fn a_stay_over_a_dst_weekend_counts_plain_dates() {
    for (zone_name, from, to) in [
        ("America/New_York", "2025-03-08", "2025-03-10"),
        ("America/New_York", "2025-11-01", "2025-11-03"),
        ("Europe/London", "2025-03-29", "2025-03-31"),
        ("Europe/London", "2025-10-25", "2025-10-27"),
        ("Australia/Lord_Howe", "2025-04-05", "2025-04-07"),
        ("Australia/Lord_Howe", "2025-10-04", "2025-10-06"),
    ] {
        let stay = range(from, to);
        assert_eq!(stay.len(), 2, "{zone_name} {from}..{to}");
        assert_eq!(
            stay.nights().collect::<Vec<_>>(),
            vec![d(from), plus_days(d(from), 1)],
            "{zone_name} {from}..{to}"
        );
        assert_eq!(stay.last_night(), plus_days(d(from), 1));
        // The elapsed time between the local midnights is not 48 hours, yet the stay is
        // exactly two nights: nights are dates, not instants.
        let start = d(from).in_tz(zone_name).expect("midnight exists");
        let end = d(to).in_tz(zone_name).expect("midnight exists");
        assert_ne!(
            end.duration_since(&start),
            SignedDuration::from_hours(48),
            "{zone_name} {from}..{to} should span a DST change"
        );
        // A listing requiring exactly two nights accepts the stay, a week ahead, with a calendar
        // covering exactly these nights.
        let z = zone(zone_name);
        let r = rules(2, 2, 0, 30);
        let now = start.timestamp() - SignedDuration::from_hours(24 * 7);
        let cal = Calendar::empty(stay, 1);
        let decision = check_stay(&r, &z, &cal, &StayRequest { stay, units: 1 }, now);
        assert!(decision.is_available(), "{zone_name}: {decision:?}");
        assert_eq!(cal.nights().count(), 2);
    }
}

#[test]
fn apia_skipped_2011_12_30() {
    // Samoa moved across the date line: 2011-12-29 23:59:59 -10 was followed by
    // 2011-12-31 00:00:00 +14 (at 2011-12-30T10:00Z).
    let apia = zone("Pacific/Apia");
    assert_eq!(apia.today(ts("2011-12-29T09:59:59Z")), d("2011-12-28"));
    assert_eq!(apia.today(ts("2011-12-29T10:00:00Z")), d("2011-12-29"));
    assert_eq!(apia.today(ts("2011-12-30T09:59:59Z")), d("2011-12-29"));
    assert_eq!(apia.today(ts("2011-12-30T10:00:00Z")), d("2011-12-31"));
    assert_eq!(apia.today(ts("2011-12-31T09:59:59Z")), d("2011-12-31"));
    assert_eq!(apia.today(ts("2011-12-31T10:00:00Z")), d("2012-01-01"));

    // Minute by minute over those days, no instant is 2011-12-30 in Apia and the date never
    // goes backwards.
    let mut seen = Vec::new();
    let mut t = ts("2011-12-28T00:00:00Z");
    while t < ts("2012-01-01T00:00:00Z") {
        let today = apia.today(t);
        if seen.last() != Some(&today) {
            seen.push(today);
        }
        t += SignedDuration::from_mins(1);
    }
    assert_eq!(
        seen,
        vec![
            d("2011-12-27"),
            d("2011-12-28"),
            d("2011-12-29"),
            d("2011-12-31"),
            d("2012-01-01")
        ]
    );
}

#[test]
fn a_stay_over_the_skipped_apia_day_counts_it_as_a_night() {
    let apia = zone("Pacific/Apia");
    let stay = range("2011-12-29", "2011-12-31");
    assert_eq!(stay.len(), 2);
    assert_eq!(
        stay.nights().collect::<Vec<_>>(),
        vec![d("2011-12-29"), d("2011-12-30")]
    );
    // On the morning of 2011-12-29 (08:00 -10), a listing with two-night stays and no notice
    // accepts it: the night of 12-30 is a date, even though no local instant had it.
    let morning = ts("2011-12-29T18:00:00Z");
    assert_eq!(apia.today(morning), d("2011-12-29"));
    let r = rules(2, 2, 0, 30);
    assert_eq!(rule_violations(&r, &apia, &stay, morning), vec![]);
    let decision = check_stay(
        &r,
        &apia,
        &Calendar::empty(stay, 1),
        &StayRequest { stay, units: 1 },
        morning,
    );
    assert!(decision.is_available(), "{decision:?}");
    // A window of 2 days on 12-29 reaches the (skipped) date 12-30.
    assert_eq!(
        rules(1, 1, 0, 2).last_bookable_night(&apia, morning),
        d("2011-12-30")
    );
    // Right after the jump it is 12-31, so a check-in on 12-30 is in the past.
    let after = ts("2011-12-30T10:00:00Z");
    assert_eq!(
        rule_violations(
            &rules(1, 2, 0, 30),
            &apia,
            &range("2011-12-30", "2011-12-31"),
            after
        ),
        vec![Reason::AdvanceNotice {
            earliest_check_in: d("2011-12-31")
        }]
    );
}

#[test]
fn advance_notice_over_the_skipped_apia_day() {
    let apia = zone("Pacific/Apia");
    // 2011-12-29 08:00 -10. 24 elapsed hours later it is 2011-12-31 08:00 +14.
    let morning = ts("2011-12-29T18:00:00Z");
    let day_notice = rules(1, 30, 24, 30);
    assert_eq!(
        day_notice.earliest_check_in(&apia, morning),
        d("2011-12-31")
    );
    assert_eq!(
        rule_violations(
            &day_notice,
            &apia,
            &range("2011-12-30", "2011-12-31"),
            morning
        ),
        vec![Reason::AdvanceNotice {
            earliest_check_in: d("2011-12-31")
        }]
    );
    assert_eq!(
        rule_violations(
            &day_notice,
            &apia,
            &range("2011-12-31", "2012-01-01"),
            morning
        ),
        vec![]
    );
    // Even one hour's notice from 2011-12-29 23:30 -10 skips to 12-31.
    let late = ts("2011-12-30T09:30:00Z");
    assert_eq!(apia.today(late), d("2011-12-29"));
    assert_eq!(
        rules(1, 30, 1, 30).earliest_check_in(&apia, late),
        d("2011-12-31")
    );
    // With no notice, tonight (12-29) is still bookable at 23:30.
    assert_eq!(
        rules(1, 30, 0, 30).earliest_check_in(&apia, late),
        d("2011-12-29")
    );
}
