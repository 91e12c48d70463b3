//! Entry points for fuzzers and property tests: each takes arbitrary bytes, builds whatever
//! domain values they describe, runs the real logic on them and checks the invariants it must
//! keep. A panic is a bug. The service never calls these.

use jiff::{SignedDuration, Timestamp};

use crate::{
    Calendar, ClaimKind, ClaimSpan, ListingRules, NightRange, RulesInput, StayRequest, Zone,
    check_stay, from_day_number,
};

/// Time zones the fuzzer picks from (DST in both hemispheres, a date-line jump, UTC).
const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Lisbon",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kathmandu",
];

/// Reads little-endian integers off the front of the input, zero once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn i32(&mut self) -> i32 {
        self.u32() as i32
    }
}

/// Dates, ranges, rules, a calendar of claims and a stay decision, from arbitrary bytes.
///
/// Checks: a range that exists is non-empty and ordered; intersect/subtract stay within their
/// inputs; rules that exist are consistent; a calendar never reports more remaining units than
/// the listing has; a decision is "available" exactly when no reason is given, and an
/// available stay has every night free.
pub fn stay_decision(data: &[u8]) {
    let mut b = Bytes(data);
    // Around 2000–2199 most of the time (where ranges can exist), anywhere otherwise.
    let base = 10_957 + i32::from(b.u16() % 4_000);
    let pick = |b: &mut Bytes<'_>| {
        if b.u8() < 16 {
            from_day_number(b.i32())
        } else {
            from_day_number(base + i32::from(b.u16() % 800) - 400)
        }
    };
    let (start, end) = (pick(&mut b), pick(&mut b));
    let Ok(range) = NightRange::new(start, end) else {
        return;
    };
    assert!(range.start() < range.end() && !range.is_empty());
    assert_eq!(range.nights().len(), range.len() as usize);
    let input = RulesInput {
        units: u32::from(b.u8() % 12),
        min_nights: u32::from(b.u8() % 20),
        max_nights: u32::from(b.u16() % 400),
        advance_notice_hours: u32::from(b.u16() % 800),
        booking_window_days: u32::from(b.u16() % 1_200),
    };
    let Ok(rules) = ListingRules::new(input) else {
        return;
    };
    assert!(rules.min_nights() <= rules.max_nights() && rules.units() >= 1);
    let zone = Zone::new(ZONES[usize::from(b.u8()) % ZONES.len()]).expect("known zone");
    let now = Timestamp::from_second(i64::from(base) * 86_400 + i64::from(b.u32() % 86_400))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let mut claims = Vec::new();
    for _ in 0..(b.u8() % 8) {
        let (s, e) = (pick(&mut b), pick(&mut b));
        let Ok(nights) = NightRange::new(s, e) else {
            continue;
        };
        if let Some(cut) = range.intersect(&nights) {
            assert!(range.covers(&cut) && nights.covers(&cut));
        }
        for piece in nights.subtract(&range) {
            assert!(nights.covers(&piece) && !piece.overlaps(&range));
        }
        let kind = match b.u8() % 3 {
            0 => ClaimKind::Booking,
            1 => ClaimKind::Block,
            _ => ClaimKind::Hold {
                expires_at: now
                    .checked_add(SignedDuration::from_secs(i64::from(b.u16()) - 30_000))
                    .unwrap_or(now),
            },
        };
        claims.push(ClaimSpan {
            nights,
            units: u16::from(b.u8() % 4) + 1,
            kind,
        });
    }
    let calendar = Calendar::build(range, rules.units(), &claims, now);
    for night in calendar.nights() {
        assert!(night.remaining <= rules.units());
    }
    let request = StayRequest {
        stay: range,
        units: u16::from(b.u8() % 6),
    };
    let decision = check_stay(&rules, &zone, &calendar, &request, now);
    assert_eq!(decision.is_available(), decision.reasons.is_empty());
    if decision.is_available() {
        assert!(calendar.short_nights(&range, request.units).is_empty());
    }
}
