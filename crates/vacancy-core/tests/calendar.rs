//! Incremental calendar updates against a calendar rebuilt from the claims that remain.

use jiff::Timestamp;
use jiff::civil::Date;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use vacancy_core::{Calendar, ClaimKind, ClaimSpan, NightRange, day_number, from_day_number};

fn d(s: &str) -> Date {
    s.parse().expect("test date")
}

fn range(a: &str, b: &str) -> NightRange {
    NightRange::new(d(a), d(b)).expect("test range")
}

fn now() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().expect("test timestamp")
}

fn booking(nights: NightRange, units: u16) -> ClaimSpan {
    ClaimSpan {
        nights,
        units,
        kind: ClaimKind::Booking,
    }
}

fn remaining(cal: &Calendar) -> Vec<u16> {
    cal.nights().map(|n| n.remaining).collect()
}

/// Claims as `(start, nights, units, keep)` relative to 2025-06-01, within a 40-night calendar.
fn arb_claims(units: u16) -> impl Strategy<Value = Vec<(i32, i32, u16, bool)>> {
    proptest::collection::vec((-5i32..40, 1i32..12, 1u16..=units, any::<bool>()), 0..12)
}

fn spans(claims: &[(i32, i32, u16, bool)]) -> Vec<(ClaimSpan, bool)> {
    let base = day_number(d("2025-06-01"));
    claims
        .iter()
        .map(|&(start, n, u, keep)| {
            let nights = NightRange::new(
                from_day_number(base + start),
                from_day_number(base + start + n),
            )
            .expect("valid");
            (booking(nights, u), keep)
        })
        .collect()
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
    #![proptest_config(config(256))]

    /// Multi-unit calendars: adding every claim and removing the cancelled ones gives the
    /// calendar built from the claims that remain.
    #[test]
    fn multi_unit_add_then_remove_matches_a_rebuild(
        (units, claims) in (2u16..=6).prop_flat_map(|u| (Just(u), arb_claims(u))),
    ) {
        let cal_range = range("2025-06-01", "2025-07-11");
        let claims = spans(&claims);
        let mut cal = Calendar::empty(cal_range, units);
        for (c, _) in &claims {
            cal.add(&c.nights, c.units);
        }
        for (c, keep) in &claims {
            if !keep {
                cal.remove(&c.nights, c.units);
            }
        }
        let kept: Vec<ClaimSpan> = claims.iter().filter(|(_, k)| *k).map(|(c, _)| *c).collect();
        let rebuilt = Calendar::build(cal_range, units, &kept, now());
        prop_assert_eq!(remaining(&cal), remaining(&rebuilt));
    }

    /// Single-unit calendars whose claims never overlap: the same holds for the bitmap.
    #[test]
    fn single_unit_add_then_remove_matches_a_rebuild_without_overlaps(
        claims in arb_claims(1),
    ) {
        let cal_range = range("2025-06-01", "2025-07-11");
        let mut claims = spans(&claims);
        // Drop every claim that overlaps an earlier one.
        let mut disjoint: Vec<(ClaimSpan, bool)> = Vec::new();
        for (c, keep) in claims.drain(..) {
            if disjoint.iter().all(|(o, _)| !o.nights.overlaps(&c.nights)) {
                disjoint.push((c, keep));
            }
        }
        let mut cal = Calendar::empty(cal_range, 1);
        for (c, _) in &disjoint {
            cal.add(&c.nights, c.units);
        }
        for (c, keep) in &disjoint {
            if !keep {
                cal.remove(&c.nights, c.units);
            }
        }
        let kept: Vec<ClaimSpan> = disjoint.iter().filter(|(_, k)| *k).map(|(c, _)| *c).collect();
        let rebuilt = Calendar::build(cal_range, 1, &kept, now());
        prop_assert_eq!(remaining(&cal), remaining(&rebuilt));
    }
}

#[test]
fn single_unit_remove_keeps_nights_held_by_an_overlapping_claim() {
    // A booking of 06-02..06-05 and a host block of 06-04..06-06 overlap on 06-04. Cancelling
    // the booking must leave 06-04 blocked.
    let cal_range = range("2025-06-01", "2025-06-08");
    let stay = booking(range("2025-06-02", "2025-06-05"), 1);
    let block = ClaimSpan {
        nights: range("2025-06-04", "2025-06-06"),
        units: 1,
        kind: ClaimKind::Block,
    };
    let mut cal = Calendar::build(cal_range, 1, &[stay, block], now());
    assert_eq!(remaining(&cal), vec![1, 0, 0, 0, 0, 1, 1]);
    cal.remove(&stay.nights, 1);
    let rebuilt = Calendar::build(cal_range, 1, &[block], now());
    assert_eq!(remaining(&rebuilt), vec![1, 1, 1, 0, 0, 1, 1]);
    // Actual: [1, 1, 1, 1, 0, 1, 1] — the bitmap has no count, so 06-04 is freed.
    assert_eq!(cal.remaining(d("2025-06-04")), Some(0));
    assert_eq!(
        cal.short_nights(&range("2025-06-04", "2025-06-05"), 1),
        vec![d("2025-06-04")]
    );
}

#[test]
fn a_zero_unit_claim_takes_nothing() {
    let cal_range = range("2025-06-01", "2025-06-04");
    let nothing = booking(range("2025-06-02", "2025-06-03"), 0);
    // Multi-unit calendars add 0 units, leaving every night as it was.
    let multi = Calendar::build(cal_range, 2, &[nothing], now());
    assert_eq!(remaining(&multi), vec![2, 2, 2]);
    // Actual for the bitmap: [1, 0, 1].
    let single = Calendar::build(cal_range, 1, &[nothing], now());
    assert_eq!(remaining(&single), vec![1, 1, 1]);
}
