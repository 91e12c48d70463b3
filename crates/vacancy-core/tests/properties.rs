//! Property tests of the rule checks and the availability decision, against oracles written
//! independently of the core: listing-local dates come from the zone's UTC offset and plain
//! day arithmetic, remaining units from a naive per-night count of the claims.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use vacancy_core::{
    Calendar, ClaimKind, ClaimSpan, DATE_MAX, DATE_MIN, ListingRules, NightRange, Reason,
    RulesInput, StayRequest, Zone, check_stay, day_number, from_day_number, rule_violations,
};

/// Zones with DST in either hemisphere, a 30-minute DST shift, a skipped day, +14:00, +05:30
/// and +05:45.
const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Asia/Kolkata",
    "America/Santiago",
    "Asia/Kathmandu",
];

/// 2002-01-01T00:00:00Z and 2190-01-01T00:00:00Z: far enough inside the night bounds that a
/// stay a few years ahead of "now", or a year behind it, is still a valid range.
const FIRST_SECOND: i64 = 1_009_843_200;
const LAST_SECOND: i64 = 6_942_585_600;

fn oracle_date(tz: &TimeZone, at: Timestamp) -> Date {
    let local = at.as_second() + i64::from(tz.to_offset(at).seconds());
    from_day_number(i32::try_from(local.div_euclid(86_400)).expect("small day number"))
}

fn oracle_today(zone: &str, now: Timestamp) -> Date {
    oracle_date(&TimeZone::get(zone).expect("known zone"), now)
}

fn oracle_earliest(zone: &str, now: Timestamp, notice_hours: u32) -> Date {
    let later = Timestamp::from_second(now.as_second() + i64::from(notice_hours) * 3_600)
        .expect("in range");
    oracle_date(&TimeZone::get(zone).expect("known zone"), later)
}

fn plus_days(date: Date, days: i64) -> Date {
    let n = i64::from(day_number(date)) + days;
    from_day_number(i32::try_from(n).expect("small day number"))
}

fn clamp_night(n: i64) -> i64 {
    n.clamp(
        i64::from(day_number(DATE_MIN)),
        i64::from(day_number(DATE_MAX)),
    )
}

fn range_of(start: i64, len: i64) -> NightRange {
    let start = clamp_night(start);
    let end = clamp_night(start + len - 1) + 1;
    NightRange::new(from_day(start), from_day(end)).expect("generated range is valid")
}

fn from_day(n: i64) -> Date {
    from_day_number(i32::try_from(n).expect("small day number"))
}

fn arb_zone() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(ZONES)
}

fn arb_now() -> impl Strategy<Value = Timestamp> {
    (FIRST_SECOND..LAST_SECOND).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

fn arb_units() -> impl Strategy<Value = u32> {
    prop_oneof![
        1u32..=4,
        1u32..=ListingRules::MAX_UNITS,
        Just(ListingRules::MAX_UNITS)
    ]
}

fn arb_rules() -> impl Strategy<Value = ListingRules> {
    let nights = prop_oneof![1u32..=4, 1u32..=ListingRules::MAX_STAY_NIGHTS];
    let notice = prop_oneof![
        Just(0u32),
        0u32..=72,
        0u32..=ListingRules::MAX_ADVANCE_NOTICE_HOURS
    ];
    let window = prop_oneof![1u32..=4, 1u32..=ListingRules::MAX_BOOKING_WINDOW_DAYS];
    (arb_units(), nights.clone(), nights, notice, window).prop_map(
        |(units, a, b, notice, window)| {
            ListingRules::new(RulesInput {
                units,
                min_nights: a.min(b),
                max_nights: a.max(b),
                advance_notice_hours: notice,
                booking_window_days: window,
            })
            .expect("generated rules are valid")
        },
    )
}

/// How to place a stay relative to the rules at "now", so that every rule is often near its
/// edge: `(anchor, start_delta, offset, length_mode, length_delta, length)`.
type StayShape = (u8, i64, i64, u8, i64, i64);

fn arb_stay_shape() -> impl Strategy<Value = StayShape> {
    (
        0u8..3,
        -3i64..=3,
        -400i64..=1_200,
        0u8..3,
        -2i64..=2,
        1i64..=400,
    )
}

/// A stay for `rules` at `now` in `zone`, shaped by `shape`, computed from the oracles.
fn stay_for(rules: &ListingRules, zone: &str, now: Timestamp, shape: StayShape) -> NightRange {
    let (anchor, delta, offset, length_mode, length_delta, uniform_len) = shape;
    let len = match length_mode {
        0 => i64::from(rules.min_nights()) + length_delta,
        1 => i64::from(rules.max_nights()) + length_delta,
        _ => uniform_len,
    }
    .max(1);
    let today = i64::from(day_number(oracle_today(zone, now)));
    let earliest = i64::from(day_number(oracle_earliest(
        zone,
        now,
        rules.advance_notice_hours(),
    )));
    let last = today + i64::from(rules.booking_window_days()) - 1;
    let start = match anchor {
        0 => earliest + delta,
        1 => last - len + 1 + delta,
        _ => today + offset,
    };
    range_of(start, len)
}

/// The reasons the rules should give, computed without the core's rule helpers.
fn expected_violations(
    rules: &ListingRules,
    zone: &str,
    stay: &NightRange,
    now: Timestamp,
) -> Vec<Reason> {
    let len = i64::from(day_number(stay.end()) - day_number(stay.start()));
    let earliest = oracle_earliest(zone, now, rules.advance_notice_hours());
    let last = plus_days(
        oracle_today(zone, now),
        i64::from(rules.booking_window_days()) - 1,
    );
    let mut reasons = Vec::new();
    if len < i64::from(rules.min_nights()) {
        reasons.push(Reason::BelowMinNights {
            min_nights: rules.min_nights(),
        });
    }
    if len > i64::from(rules.max_nights()) {
        reasons.push(Reason::AboveMaxNights {
            max_nights: rules.max_nights(),
        });
    }
    if stay.start() < earliest {
        reasons.push(Reason::AdvanceNotice {
            earliest_check_in: earliest,
        });
    }
    if plus_days(stay.end(), -1) > last {
        reasons.push(Reason::BeyondBookingWindow {
            last_bookable_night: last,
        });
    }
    reasons
}

fn same_set(actual: &[Reason], expected: &[Reason]) -> bool {
    actual.len() == expected.len() && expected.iter().all(|r| actual.contains(r))
}

/// A calendar range that covers `stay` with some nights to spare on each side.
fn covering(stay: &NightRange, before: i64, after: i64) -> NightRange {
    let start = i64::from(day_number(stay.start())) - before;
    let end = i64::from(day_number(stay.end())) + after;
    range_of(start, end - start)
}

/// A claim relative to the stay's first night: `(start, nights, units, kind)`, where kind is
/// 0 booking, 1 block, 2 live hold, 3 expired hold.
type ClaimShape = (i64, i64, u16, u8);

fn arb_claims(units: u16) -> impl Strategy<Value = Vec<ClaimShape>> {
    proptest::collection::vec((-15i64..40, 1i64..15, 1u16..=units, 0u8..4), 0..16)
}

fn claims_for(stay: &NightRange, now: Timestamp, shapes: &[ClaimShape]) -> Vec<ClaimSpan> {
    let base = i64::from(day_number(stay.start()));
    shapes
        .iter()
        .map(|&(start, nights, units, kind)| ClaimSpan {
            nights: range_of(base + start, nights),
            units,
            kind: match kind {
                0 => ClaimKind::Booking,
                1 => ClaimKind::Block,
                2 => ClaimKind::Hold {
                    expires_at: Timestamp::from_second(now.as_second() + 1).expect("in range"),
                },
                _ => ClaimKind::Hold { expires_at: now },
            },
        })
        .collect()
}

/// Units left on `night` counting every live claim, or `None` outside the calendar.
fn naive_remaining(
    units: u16,
    calendar_range: &NightRange,
    claims: &[ClaimSpan],
    night: Date,
    now: Timestamp,
) -> Option<u16> {
    if night < calendar_range.start() || night >= calendar_range.end() {
        return None;
    }
    let used: u32 = claims
        .iter()
        .filter(|c| match c.kind {
            ClaimKind::Hold { expires_at } => now < expires_at,
            ClaimKind::Booking | ClaimKind::Block => true,
        })
        .filter(|c| c.nights.start() <= night && night < c.nights.end())
        .map(|c| u32::from(c.units))
        .sum();
    Some(u16::try_from(u32::from(units).saturating_sub(used)).expect("at most units"))
}

/// Builds the calendar from `claims` at `now`, decides `request` and checks the decision
/// against the oracles.
fn check_decision(
    rules: &ListingRules,
    zone_name: &str,
    calendar_range: &NightRange,
    claims: &[ClaimSpan],
    request: &StayRequest,
    now: Timestamp,
) -> Result<(), TestCaseError> {
    let zone = Zone::new(zone_name).expect("known zone");
    let calendar = Calendar::build(*calendar_range, rules.units(), claims, now);
    let decision = check_stay(rules, &zone, &calendar, request, now);
    let mut expected = expected_violations(rules, zone_name, &request.stay, now);
    if request.units > rules.units() {
        expected.push(Reason::TooManyUnits {
            requested: request.units,
            units: rules.units(),
        });
    } else {
        let short: Vec<Date> = request
            .stay
            .nights()
            .filter(|n| {
                naive_remaining(rules.units(), calendar_range, claims, *n, now)
                    .is_none_or(|left| left < request.units)
            })
            .collect();
        if !short.is_empty() {
            expected.push(Reason::NightsUnavailable { nights: short });
        }
    }
    prop_assert!(
        same_set(&decision.reasons, &expected),
        "got {:?}, expected {:?}",
        decision.reasons,
        expected
    );
    let short = expected
        .iter()
        .find_map(|r| match r {
            Reason::NightsUnavailable { nights } => Some(nights.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    prop_assert_eq!(decision.unavailable_nights(), short);
    prop_assert_eq!(decision.is_available(), expected.is_empty());
    Ok(())
}

/// Failing cases are saved next to this file (`*.proptest-regressions`): integration tests
/// have no `lib.rs` beside them for proptest's default location.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Each rule is reported exactly when it is broken, with the right detail.
    #[test]
    fn each_rule_is_reported_iff_broken(
        rules in arb_rules(),
        zone_name in arb_zone(),
        now in arb_now(),
        shape in arb_stay_shape(),
    ) {
        let zone = Zone::new(zone_name).expect("known zone");
        let stay = stay_for(&rules, zone_name, now, shape);
        let reasons = rule_violations(&rules, &zone, &stay, now);
        let earliest = rules.earliest_check_in(&zone, now);
        let last = rules.last_bookable_night(&zone, now);
        let has = |pred: fn(&Reason) -> bool| reasons.iter().filter(|r| pred(r)).count();

        prop_assert_eq!(
            has(|r| matches!(r, Reason::BelowMinNights { .. })),
            usize::from(stay.len() < u32::from(rules.min_nights()))
        );
        prop_assert_eq!(
            has(|r| matches!(r, Reason::AboveMaxNights { .. })),
            usize::from(stay.len() > u32::from(rules.max_nights()))
        );
        prop_assert_eq!(
            has(|r| matches!(r, Reason::AdvanceNotice { .. })),
            usize::from(stay.start() < earliest)
        );
        prop_assert_eq!(
            has(|r| matches!(r, Reason::BeyondBookingWindow { .. })),
            usize::from(stay.last_night() > last)
        );
        let no_calendar_reasons = reasons.iter().all(|r| {
            !matches!(r, Reason::NightsUnavailable { .. } | Reason::TooManyUnits { .. })
        });
        prop_assert!(no_calendar_reasons, "{:?}", reasons);
        // And the core's helpers agree with the oracles, payloads included.
        prop_assert_eq!(earliest, oracle_earliest(zone_name, now, rules.advance_notice_hours()));
        prop_assert_eq!(
            last,
            plus_days(oracle_today(zone_name, now), i64::from(rules.booking_window_days()) - 1)
        );
        let expected = expected_violations(&rules, zone_name, &stay, now);
        prop_assert!(same_set(&reasons, &expected), "got {:?}, expected {:?}", reasons, expected);
        let length_ok = !reasons.iter().any(|r| {
            matches!(r, Reason::BelowMinNights { .. } | Reason::AboveMaxNights { .. })
        });
        prop_assert_eq!(rules.allows_length(&stay), length_ok);
    }

    /// Today is the zone's civil date; the earliest check-in is never before it, equals it
    /// without notice, and never moves earlier as the notice grows.
    #[test]
    fn earliest_check_in_is_monotonic_and_never_before_today(
        zone_name in arb_zone(),
        now in arb_now(),
        a in 0u32..=ListingRules::MAX_ADVANCE_NOTICE_HOURS,
        b in 0u32..=ListingRules::MAX_ADVANCE_NOTICE_HOURS,
        small in 0u32..=48,
        window in 1u32..=ListingRules::MAX_BOOKING_WINDOW_DAYS,
    ) {
        let zone = Zone::new(zone_name).expect("known zone");
        let today = zone.today(now);
        prop_assert_eq!(today, oracle_today(zone_name, now));
        let with_notice = |hours: u32| {
            ListingRules::new(RulesInput {
                units: 1,
                min_nights: 1,
                max_nights: 1,
                advance_notice_hours: hours,
                booking_window_days: window,
            })
            .expect("valid rules")
        };
        prop_assert_eq!(with_notice(0).earliest_check_in(&zone, now), today);
        let (lo, hi) = (a.min(b), a.max(b));
        let early = with_notice(lo).earliest_check_in(&zone, now);
        let late = with_notice(hi).earliest_check_in(&zone, now);
        prop_assert!(today <= early, "{} > {}", today, early);
        prop_assert!(early <= late, "notice {}h gives {}, {}h gives {}", lo, early, hi, late);
        // Consecutive small notices move the date by at most one day each.
        let one = with_notice(small).earliest_check_in(&zone, now);
        let next = with_notice(small + 1).earliest_check_in(&zone, now);
        prop_assert!(one <= next && day_number(next) - day_number(one) <= 1);
        // The booking window always includes tonight.
        let last = with_notice(0).last_bookable_night(&zone, now);
        prop_assert_eq!(i64::from(day_number(last) - day_number(today)), i64::from(window) - 1);
    }

    /// With every night free, the decision is exactly the rule violations, plus TooManyUnits
    /// when the request needs more units than the listing has.
    #[test]
    fn an_empty_calendar_decides_by_rules_alone(
        rules in arb_rules(),
        zone_name in arb_zone(),
        now in arb_now(),
        shape in arb_stay_shape(),
        requested in prop_oneof![0u16..=5, 0u16..=10_005],
        before in 0i64..5,
        after in 0i64..5,
    ) {
        let zone = Zone::new(zone_name).expect("known zone");
        let stay = stay_for(&rules, zone_name, now, shape);
        let calendar = Calendar::empty(covering(&stay, before, after), rules.units());
        let decision =
            check_stay(&rules, &zone, &calendar, &StayRequest { stay, units: requested }, now);
        let mut expected = rule_violations(&rules, &zone, &stay, now);
        if requested > rules.units() {
            expected.push(Reason::TooManyUnits { requested, units: rules.units() });
        }
        prop_assert!(
            same_set(&decision.reasons, &expected),
            "got {:?}, expected {:?}",
            decision.reasons,
            expected
        );
        prop_assert!(decision.unavailable_nights().is_empty());
    }

    /// With claims on the calendar, NightsUnavailable names exactly the nights a naive count
    /// leaves short of the requested units; everything else is as the rules say.
    #[test]
    fn unavailable_nights_match_a_naive_count(
        (units, claims) in (1u16..=4).prop_flat_map(|u| (Just(u), arb_claims(u))),
        requested in 0u16..=5,
        rules in arb_rules(),
        zone_name in arb_zone(),
        now in arb_now(),
        shape in arb_stay_shape(),
        before in 0i64..5,
        after in 0i64..5,
    ) {
        let mut input = rules.to_input();
        input.units = u32::from(units);
        let rules = ListingRules::new(input).expect("still valid");
        let mut stay = stay_for(&rules, zone_name, now, shape);
        // Keep stays short enough for the claims to cover them often.
        if stay.len() > 30 {
            stay = range_of(i64::from(day_number(stay.start())), 30);
        }
        let claims = claims_for(&stay, now, &claims);
        let calendar_range = covering(&stay, before, after);
        check_decision(
            &rules,
            zone_name,
            &calendar_range,
            &claims,
            &StayRequest { stay, units: requested },
            now,
        )?;
    }

    /// A calendar that covers only part of the stay cannot vouch for the other nights, which
    /// are reported unavailable too.
    #[test]
    fn nights_outside_the_calendar_are_unavailable(
        (units, claims) in (1u16..=4).prop_flat_map(|u| (Just(u), arb_claims(u))),
        requested in 1u16..=4,
        zone_name in arb_zone(),
        now in arb_now(),
        stay_start in 0i64..60,
        stay_len in 1i64..30,
        cal_start in -10i64..60,
        cal_len in 1i64..60,
    ) {
        let rules = ListingRules::new(RulesInput {
            units: u32::from(units),
            min_nights: 1,
            max_nights: 365,
            advance_notice_hours: 0,
            booking_window_days: 1_096,
        })
        .expect("valid rules");
        let today = i64::from(day_number(oracle_today(zone_name, now)));
        let stay = range_of(today + stay_start, stay_len);
        let calendar_range = range_of(today + cal_start, cal_len);
        let claims = claims_for(&stay, now, &claims);
        check_decision(
            &rules,
            zone_name,
            &calendar_range,
            &claims,
            &StayRequest { stay, units: requested },
            now,
        )?;
    }

    /// ListingRules::new accepts exactly the inputs within the documented bounds with
    /// min_nights <= max_nights, and keeps them as given.
    #[test]
    fn rules_accept_exactly_the_documented_bounds(
        units in arb_bound(1, ListingRules::MAX_UNITS),
        min_nights in arb_bound(1, ListingRules::MAX_STAY_NIGHTS),
        max_nights in arb_bound(1, ListingRules::MAX_STAY_NIGHTS),
        advance_notice_hours in arb_bound(0, ListingRules::MAX_ADVANCE_NOTICE_HOURS),
        booking_window_days in arb_bound(1, ListingRules::MAX_BOOKING_WINDOW_DAYS),
    ) {
        let input = RulesInput {
            units,
            min_nights,
            max_nights,
            advance_notice_hours,
            booking_window_days,
        };
        let offenders: Vec<&str> = [
            ("units", (1..=10_000).contains(&units)),
            ("min_nights", (1..=365).contains(&min_nights)),
            ("max_nights", (1..=365).contains(&max_nights) && min_nights <= max_nights),
            ("advance_notice_hours", advance_notice_hours <= 8_784),
            ("booking_window_days", (1..=1_096).contains(&booking_window_days)),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(field, _)| field)
        .collect();
        match ListingRules::new(input) {
            Ok(rules) => {
                prop_assert!(offenders.is_empty(), "accepted {:?}", input);
                prop_assert_eq!(rules.to_input(), input);
                prop_assert_eq!(u32::from(rules.units()), units);
                prop_assert_eq!(u32::from(rules.min_nights()), min_nights);
                prop_assert_eq!(u32::from(rules.max_nights()), max_nights);
                prop_assert_eq!(rules.advance_notice_hours(), advance_notice_hours);
                prop_assert_eq!(u32::from(rules.booking_window_days()), booking_window_days);
            }
            Err(e) => {
                // min_nights out of range may leave max_nights looking fine; the field named
                // must be one that is really wrong.
                prop_assert!(
                    offenders.contains(&e.field),
                    "rejected {:?} for {}, offenders {:?}",
                    input,
                    e.field,
                    offenders
                );
            }
        }
    }
}

/// Values around and inside `lo..=hi`, with some anywhere in `u32`.
fn arb_bound(lo: u32, hi: u32) -> impl Strategy<Value = u32> {
    prop_oneof![
        lo.saturating_sub(2)..=lo + 2,
        hi - 2..=hi.saturating_add(2),
        lo..=hi,
        any::<u32>(),
    ]
}

#[test]
fn the_documented_bounds_are_the_ones_in_the_doc_comments() {
    // The property above spells the bounds out as numbers; tie them to the constants.
    assert_eq!(ListingRules::MAX_UNITS, 10_000);
    assert_eq!(ListingRules::MAX_STAY_NIGHTS, 365);
    assert_eq!(ListingRules::MAX_ADVANCE_NOTICE_HOURS, 8_784);
    assert_eq!(ListingRules::MAX_BOOKING_WINDOW_DAYS, 1_096);
}

// The same entry point the `stay_decision` fuzz target drives (fuzz/), fed random bytes: dates,
// ranges, rules, calendars and decisions never panic and keep their invariants.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]
    #[test]
    fn stay_decisions_from_random_bytes_keep_their_invariants(
        data in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        vacancy_core::fuzzing::stay_decision(&data);
    }
}
