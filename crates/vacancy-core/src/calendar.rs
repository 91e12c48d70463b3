//! A listing's calendar: how many units are used on each night of a range.
//!
//! Stored compactly: one bit per night when the listing has a single unit, one `u16` per night
//! otherwise. A calendar is built from the claims (holds, bookings, blocks) that overlap its
//! range, judged at one instant: holds that have expired by then count for nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Night, NightRange, day_number};

/// What kind of claim holds some units on some nights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClaimKind {
    /// A temporary claim during checkout; it frees its nights at `expires_at`.
    Hold { expires_at: Timestamp },
    /// A confirmed booking.
    Booking,
    /// Nights the host closed.
    Block,
}

/// One claim on `units` units for each night of `nights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSpan {
    pub nights: NightRange,
    pub units: u16,
    pub kind: ClaimKind,
}

impl ClaimSpan {
    /// Whether the claim still occupies its nights at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        match self.kind {
            ClaimKind::Hold { expires_at } => now < expires_at,
            ClaimKind::Booking | ClaimKind::Block => true,
        }
    }
}

/// One night of a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NightStatus {
    pub night: Night,
    pub remaining: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Usage {
    /// `units == 1`: bit `i` set means night `i` of the range is taken.
    Single(Vec<u64>),
    /// Units used per night.
    Multi(Vec<u16>),
}

/// Units used on each night of a range, for a listing with `units` units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CalendarRecord", try_from = "CalendarRecord")]
pub struct Calendar {
    range: NightRange,
    units: u16,
    usage: Usage,
    valid_until: Option<Timestamp>,
}

impl Calendar {
    /// A calendar with every night free.
    pub fn empty(range: NightRange, units: u16) -> Self {
        let len = range.len() as usize;
        let usage = if units == 1 {
            Usage::Single(vec![0; len.div_ceil(64)])
        } else {
            Usage::Multi(vec![0; len])
        };
        Self {
            range,
            units,
            usage,
            valid_until: None,
        }
    }

    /// The calendar as the given claims make it at `now`: live claims count, expired holds do
    /// not, and [`Calendar::valid_until`] is the first instant a counted hold expires.
    pub fn build<'a>(
        range: NightRange,
        units: u16,
        claims: impl IntoIterator<Item = &'a ClaimSpan>,
        now: Timestamp,
    ) -> Self {
        let mut calendar = Self::empty(range, units);
        for claim in claims {
            if !claim.is_live(now) {
                continue;
            }
            if let ClaimKind::Hold { expires_at } = claim.kind {
                calendar.valid_until = Some(
                    calendar
                        .valid_until
                        .map_or(expires_at, |v| v.min(expires_at)),
                );
            }
            calendar.add(&claim.nights, claim.units);
        }
        calendar
    }

    /// The nights this calendar covers.
    pub fn range(&self) -> NightRange {
        self.range
    }

    /// The listing's unit count the calendar was built for.
    pub fn units(&self) -> u16 {
        self.units
    }

    /// The first instant a hold counted in this calendar expires, after which the calendar
    /// understates availability and should be built again.
    pub fn valid_until(&self) -> Option<Timestamp> {
        self.valid_until
    }

    /// Marks `units` more units used on the nights of `nights` that the calendar covers.
    pub fn add(&mut self, nights: &NightRange, units: u16) {
        let Some(span) = self.range.intersect(nights) else {
            return;
        };
        if units == 0 {
            return;
        }
        let from = self.index(span.start());
        let to = from + span.len() as usize;
        if let Usage::Single(bits) = &self.usage {
            // A bit cannot count: claims overlapping on a one-unit listing (which the invariant
            // forbids, but a calendar must stay right for any input) switch to counts.
            if (from..to).any(|i| bits[i / 64] & (1 << (i % 64)) != 0) {
                self.promote();
            }
        }
        match &mut self.usage {
            Usage::Single(bits) => (from..to).for_each(|i| bits[i / 64] |= 1 << (i % 64)),
            Usage::Multi(used) => used[from..to]
                .iter_mut()
                .for_each(|u| *u = u.saturating_add(units)),
        }
    }

    /// Marks `units` fewer units used on the nights of `nights` that the calendar covers.
    pub fn remove(&mut self, nights: &NightRange, units: u16) {
        let Some(span) = self.range.intersect(nights) else {
            return;
        };
        let from = self.index(span.start());
        let to = from + span.len() as usize;
        match &mut self.usage {
            Usage::Single(bits) => (from..to).for_each(|i| bits[i / 64] &= !(1 << (i % 64))),
            Usage::Multi(used) => used[from..to]
                .iter_mut()
                .for_each(|u| *u = u.saturating_sub(units)),
        }
    }

    /// Units still free on `night`, or `None` when the calendar does not cover it.
    pub fn remaining(&self, night: Night) -> Option<u16> {
        self.range
            .contains(night)
            .then(|| self.remaining_at(self.index(night)))
    }

    /// The nights of `stay` that cannot take `units` more units (including nights the calendar
    /// does not cover, which it cannot vouch for).
    pub fn short_nights(&self, stay: &NightRange, units: u16) -> Vec<Night> {
        stay.nights()
            .filter(|n| self.remaining(*n).is_none_or(|left| left < units))
            .collect()
    }

    /// Every night of the calendar with its remaining units, in order.
    pub fn nights(&self) -> impl Iterator<Item = NightStatus> + '_ {
        self.range
            .nights()
            .enumerate()
            .map(|(i, night)| NightStatus {
                night,
                remaining: self.remaining_at(i),
            })
    }

    /// Bytes the calendar keeps on the heap, for weighing it in a cache.
    pub fn heap_bytes(&self) -> usize {
        match &self.usage {
            Usage::Single(bits) => bits.capacity() * size_of::<u64>(),
            Usage::Multi(used) => used.capacity() * size_of::<u16>(),
        }
    }

    /// The same calendar restricted to `range`, or `None` when it does not cover all of it.
    pub fn slice(&self, range: &NightRange) -> Option<Calendar> {
        if !self.range.covers(range) {
            return None;
        }
        let from = self.index(range.start());
        let len = range.len() as usize;
        let usage = match &self.usage {
            Usage::Single(_) => {
                let mut bits = vec![0u64; len.div_ceil(64)];
                for i in 0..len {
                    if self.remaining_at(from + i) == 0 {
                        bits[i / 64] |= 1 << (i % 64);
                    }
                }
                Usage::Single(bits)
            }
            Usage::Multi(used) => Usage::Multi(used[from..from + len].to_vec()),
        };
        Some(Calendar {
            range: *range,
            units: self.units,
            usage,
            valid_until: self.valid_until,
        })
    }

    /// Switches a one-unit bitmap to per-night counts.
    fn promote(&mut self) {
        if let Usage::Single(_) = self.usage {
            let used = (0..self.range.len() as usize)
                .map(|i| 1 - self.remaining_at(i))
                .collect();
            self.usage = Usage::Multi(used);
        }
    }

    fn index(&self, night: Night) -> usize {
        (day_number(night) - day_number(self.range.start())) as usize
    }

    fn remaining_at(&self, i: usize) -> u16 {
        match &self.usage {
            Usage::Single(bits) => u16::from(bits[i / 64] & (1 << (i % 64)) == 0),
            Usage::Multi(used) => self.units.saturating_sub(used[i]),
        }
    }
}

/// The serialized form of a [`Calendar`], checked on the way back in.
#[derive(Serialize, Deserialize)]
struct CalendarRecord {
    range: NightRange,
    units: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bits: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_until: Option<Timestamp>,
}

impl From<Calendar> for CalendarRecord {
    fn from(c: Calendar) -> Self {
        let (bits, used) = match c.usage {
            Usage::Single(bits) => (Some(bits), None),
            Usage::Multi(used) => (None, Some(used)),
        };
        Self {
            range: c.range,
            units: c.units,
            bits,
            used,
            valid_until: c.valid_until,
        }
    }
}

impl TryFrom<CalendarRecord> for Calendar {
    type Error = String;
    fn try_from(r: CalendarRecord) -> Result<Self, String> {
        let len = r.range.len() as usize;
        let usage = match (r.bits, r.used) {
            (Some(bits), None) if r.units == 1 && bits.len() == len.div_ceil(64) => {
                Usage::Single(bits)
            }
            (None, Some(used)) if used.len() == len => Usage::Multi(used),
            _ => return Err("calendar usage does not match its range and units".into()),
        };
        Ok(Calendar {
            range: r.range,
            units: r.units,
            usage,
            valid_until: r.valid_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_day_number;
    use proptest::prelude::*;

    fn d(s: &str) -> Night {
        s.parse().expect("test date")
    }

    fn range(a: &str, b: &str) -> NightRange {
        NightRange::new(d(a), d(b)).expect("test range")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    #[test]
    fn live_claims_count_and_expired_holds_do_not() {
        let now = ts("2025-01-01T12:00:00Z");
        let claims = [
            ClaimSpan {
                nights: range("2025-02-01", "2025-02-03"),
                units: 1,
                kind: ClaimKind::Booking,
            },
            ClaimSpan {
                nights: range("2025-02-03", "2025-02-04"),
                units: 1,
                kind: ClaimKind::Hold {
                    expires_at: ts("2025-01-01T12:15:00Z"),
                },
            },
            ClaimSpan {
                nights: range("2025-02-04", "2025-02-05"),
                units: 1,
                kind: ClaimKind::Hold {
                    expires_at: ts("2025-01-01T12:00:00Z"),
                },
            },
            ClaimSpan {
                nights: range("2025-02-06", "2025-02-07"),
                units: 1,
                kind: ClaimKind::Block,
            },
        ];
        let cal = Calendar::build(range("2025-02-01", "2025-02-08"), 1, &claims, now);
        let free: Vec<u16> = cal.nights().map(|n| n.remaining).collect();
        assert_eq!(free, vec![0, 0, 0, 1, 1, 0, 1]);
        assert_eq!(cal.valid_until(), Some(ts("2025-01-01T12:15:00Z")));
        let later = Calendar::build(
            range("2025-02-01", "2025-02-08"),
            1,
            &claims,
            ts("2025-01-01T12:15:00Z"),
        );
        assert_eq!(later.remaining(d("2025-02-03")), Some(1));
        assert_eq!(later.valid_until(), None);
    }

    #[test]
    fn multi_unit_calendars_count_units() {
        let mut cal = Calendar::empty(range("2025-03-01", "2025-03-04"), 3);
        cal.add(&range("2025-03-01", "2025-03-03"), 2);
        cal.add(&range("2025-03-02", "2025-03-10"), 1);
        assert_eq!(
            cal.nights().map(|n| n.remaining).collect::<Vec<_>>(),
            vec![1, 0, 2]
        );
        assert_eq!(
            cal.short_nights(&range("2025-03-01", "2025-03-04"), 1),
            vec![d("2025-03-02")]
        );
        assert_eq!(
            cal.short_nights(&range("2025-03-03", "2025-03-05"), 1),
            vec![d("2025-03-04")]
        );
        cal.remove(&range("2025-03-02", "2025-03-03"), 1);
        assert_eq!(cal.remaining(d("2025-03-02")), Some(1));
        assert_eq!(cal.remaining(d("2025-03-04")), None);
    }

    #[test]
    fn a_single_unit_calendar_of_eighteen_months_fits_in_eighty_bytes() {
        let cal = Calendar::empty(range("2025-01-01", "2026-07-01"), 1);
        assert!(cal.heap_bytes() <= 80, "{} bytes", cal.heap_bytes());
    }

    #[test]
    fn a_slice_keeps_the_nights_it_covers() {
        for units in [1, 3] {
            let mut cal = Calendar::empty(range("2025-01-01", "2025-03-01"), units);
            cal.add(&range("2025-01-10", "2025-01-12"), 1);
            let part = cal
                .slice(&range("2025-01-09", "2025-01-13"))
                .expect("covered");
            let left: Vec<u16> = part.nights().map(|n| n.remaining).collect();
            assert_eq!(left, vec![units, units - 1, units - 1, units]);
            assert!(cal.slice(&range("2024-12-31", "2025-01-02")).is_none());
        }
    }

    #[test]
    fn a_calendar_survives_serialization_and_refuses_bad_shapes() {
        let mut cal = Calendar::empty(range("2025-01-01", "2025-03-01"), 1);
        cal.add(&range("2025-01-10", "2025-01-12"), 1);
        let json = serde_json_like(&cal);
        assert!(json.contains("bits"));
        let mut multi = Calendar::empty(range("2025-01-01", "2025-01-03"), 2);
        multi.add(&range("2025-01-01", "2025-01-02"), 1);
        let back: Result<Calendar, _> = CalendarRecord::from(multi.clone()).try_into();
        assert_eq!(back, Ok(multi));
        let bad = CalendarRecord {
            range: range("2025-01-01", "2025-01-03"),
            units: 2,
            bits: None,
            used: Some(vec![0]),
            valid_until: None,
        };
        assert!(Calendar::try_from(bad).is_err());
    }

    /// Serializes through the record form without pulling a JSON crate into the core.
    fn serde_json_like(cal: &Calendar) -> String {
        let record = CalendarRecord::from(cal.clone());
        format!(
            "{}{}",
            if record.bits.is_some() {
                "bits"
            } else {
                "used"
            },
            record.units
        )
    }

    fn arb_claims(units: u16) -> impl Strategy<Value = Vec<(i32, i32, u16)>> {
        proptest::collection::vec((0i32..100, 1i32..20, 1u16..=units), 0..12)
    }

    proptest! {
        /// The compact calendar agrees with a naive per-night count, for both representations.
        #[test]
        fn calendar_matches_a_naive_count(units in 1u16..5, claims in arb_claims(4), offset in 0i32..50, len in 1i32..90) {
            let base = day_number(d("2025-01-01"));
            let cal_range = NightRange::new(from_day_number(base + offset), from_day_number(base + offset + len)).expect("valid");
            let spans: Vec<ClaimSpan> = claims.iter()
                .map(|&(start, n, u)| ClaimSpan {
                    nights: NightRange::new(from_day_number(base + start), from_day_number(base + start + n)).expect("valid"),
                    units: u.min(units),
                    kind: ClaimKind::Booking,
                })
                .collect();
            let cal = Calendar::build(cal_range, units, &spans, ts("2025-01-01T00:00:00Z"));
            for status in cal.nights() {
                let used: u32 = spans.iter().filter(|c| c.nights.contains(status.night)).map(|c| u32::from(c.units)).sum();
                let expected = u32::from(units).saturating_sub(used) as u16;
                prop_assert_eq!(status.remaining, expected, "night {}", status.night);
            }
        }

        /// Adding then removing the same claim restores the calendar.
        #[test]
        fn add_then_remove_is_identity(units in 2u16..6, start in 0i32..60, n in 1i32..40, u in 1u16..2) {
            let base = day_number(d("2025-01-01"));
            let cal_range = NightRange::new(from_day_number(base), from_day_number(base + 60)).expect("valid");
            let nights = NightRange::new(from_day_number(base + start), from_day_number(base + start + n)).expect("valid");
            let before = Calendar::empty(cal_range, units);
            let mut cal = before.clone();
            cal.add(&nights, u);
            cal.remove(&nights, u);
            prop_assert_eq!(cal, before);
        }
    }
}
