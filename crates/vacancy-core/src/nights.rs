//! Nights and half-open ranges of nights `[start, end)`.
//!
//! A stay from `check_in` to `check_out` occupies the nights `check_in ..= check_out - 1`. Nights
//! are civil dates, never instants, so no arithmetic here can shift a stay by a day because of
//! DST or the server's time zone.

use jiff::civil::{Date, date};
use serde::{Deserialize, Serialize};

use crate::Night;

/// The earliest night the service accepts.
pub const DATE_MIN: Date = date(2000, 1, 1);
/// The latest night the service accepts (a range may end the day after it).
pub const DATE_MAX: Date = date(2199, 12, 31);

/// Why a pair of dates is not a valid range of nights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("the end date must be after the start date")]
    NotAfterStart,
    #[error("a range may span at most {max} nights, this one spans {nights}")]
    TooLong { nights: i64, max: u32 },
    #[error("dates must lie between {DATE_MIN} and {DATE_MAX}")]
    OutOfBounds,
}

/// A non-empty half-open range of nights `[start, end)`, within [`DATE_MIN`]..=[`DATE_MAX`]
/// (+1 day for `end`), of at most `max_nights` nights as given to [`NightRange::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct NightRange {
    start: Date,
    end: Date,
}

/// The unvalidated shape a [`NightRange`] is deserialized from.
#[derive(Deserialize)]
struct RawRange {
    start: Date,
    end: Date,
}

impl TryFrom<RawRange> for NightRange {
    type Error = RangeError;
    fn try_from(raw: RawRange) -> Result<Self, RangeError> {
        NightRange::new(raw.start, raw.end)
    }
}

impl NightRange {
    /// The longest range any request may name: two years of nights.
    pub const MAX_NIGHTS: u32 = 731;

    /// A range of at most [`NightRange::MAX_NIGHTS`] nights.
    pub fn new(start: Date, end: Date) -> Result<Self, RangeError> {
        Self::with_limit(start, end, Self::MAX_NIGHTS)
    }

    /// A range of at most `max_nights` nights.
    pub fn with_limit(start: Date, end: Date, max_nights: u32) -> Result<Self, RangeError> {
        let last_end = DATE_MAX.tomorrow().map_err(|_| RangeError::OutOfBounds)?;
        if start < DATE_MIN || start > DATE_MAX || end < DATE_MIN || end > last_end {
            return Err(RangeError::OutOfBounds);
        }
        if end <= start {
            return Err(RangeError::NotAfterStart);
        }
        let nights = i64::from(day_number(end) - day_number(start));
        if nights > i64::from(max_nights) {
            return Err(RangeError::TooLong {
                nights,
                max: max_nights,
            });
        }
        Ok(Self { start, end })
    }

    /// The first night.
    pub fn start(&self) -> Date {
        self.start
    }

    /// The day after the last night (the check-out date of a stay).
    pub fn end(&self) -> Date {
        self.end
    }

    /// The last night of the range.
    pub fn last_night(&self) -> Date {
        from_day_number(day_number(self.end) - 1)
    }

    /// How many nights the range holds (at least 1).
    pub fn len(&self) -> u32 {
        // Non-negative and small by construction.
        (day_number(self.end) - day_number(self.start)).unsigned_abs()
    }

    /// Always false: a range holds at least one night. Present for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `night` is one of the range's nights.
    pub fn contains(&self, night: Night) -> bool {
        self.start <= night && night < self.end
    }

    /// Whether the two ranges share at least one night.
    pub fn overlaps(&self, other: &NightRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether every night of `other` is a night of `self`.
    pub fn covers(&self, other: &NightRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The nights both ranges share, if any.
    pub fn intersect(&self, other: &NightRange) -> Option<NightRange> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(NightRange { start, end })
    }

    /// What is left of `self` after removing the nights of `cut`: zero, one or two ranges.
    pub fn subtract(&self, cut: &NightRange) -> Vec<NightRange> {
        if !self.overlaps(cut) {
            return vec![*self];
        }
        let mut rest = Vec::with_capacity(2);
        if self.start < cut.start {
            rest.push(NightRange {
                start: self.start,
                end: cut.start,
            });
        }
        if cut.end < self.end {
            rest.push(NightRange {
                start: cut.end,
                end: self.end,
            });
        }
        rest
    }

    /// The nights of the range, in order.
    pub fn nights(&self) -> impl ExactSizeIterator<Item = Night> + use<> {
        let first = day_number(self.start);
        (first..day_number(self.end)).map(from_day_number)
    }
}

/// The civil epoch day numbers count from.
const EPOCH: Date = date(1970, 1, 1);

/// Days since 1970-01-01 (negative before it): the compact form nights take in storage.
pub fn day_number(night: Date) -> i32 {
    // Civil days are exactly 24 hours long, and jiff's civil range spans far less than
    // i32::MAX days, so the division is exact and the cast cannot truncate.
    (night.duration_since(EPOCH).as_secs() / 86_400) as i32
}

/// The date `days` days after 1970-01-01, saturating at the ends of jiff's civil range.
pub fn from_day_number(days: i32) -> Date {
    EPOCH.saturating_add(jiff::Span::new().days(days.clamp(-7_000_000, 7_000_000)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Date {
        s.parse().expect("test date")
    }

    #[test]
    fn day_numbers_round_trip_known_dates() {
        assert_eq!(day_number(d("1970-01-01")), 0);
        assert_eq!(day_number(d("1969-12-31")), -1);
        assert_eq!(day_number(d("2000-03-01")) - day_number(d("2000-02-28")), 2);
        assert_eq!(day_number(d("2100-03-01")) - day_number(d("2100-02-28")), 1);
        assert_eq!(
            from_day_number(day_number(d("2024-02-29"))),
            d("2024-02-29")
        );
    }

    #[test]
    fn a_range_rejects_inverted_empty_long_and_out_of_bounds() {
        assert_eq!(
            NightRange::new(d("2025-01-02"), d("2025-01-01")),
            Err(RangeError::NotAfterStart)
        );
        assert_eq!(
            NightRange::new(d("2025-01-01"), d("2025-01-01")),
            Err(RangeError::NotAfterStart)
        );
        assert!(matches!(
            NightRange::new(d("2025-01-01"), d("2027-01-03")),
            Err(RangeError::TooLong {
                nights: 732,
                max: 731
            })
        ));
        assert_eq!(
            NightRange::new(d("1999-12-31"), d("2000-01-02")),
            Err(RangeError::OutOfBounds)
        );
        assert!(NightRange::new(d("2199-12-31"), d("2200-01-01")).is_ok());
        assert_eq!(
            NightRange::new(d("2199-12-31"), d("2200-01-02")),
            Err(RangeError::OutOfBounds)
        );
    }

    #[test]
    fn a_stay_over_a_leap_day_counts_it() {
        let stay = NightRange::new(d("2024-02-28"), d("2024-03-01")).expect("valid");
        assert_eq!(stay.len(), 2);
        assert_eq!(
            stay.nights().collect::<Vec<_>>(),
            vec![d("2024-02-28"), d("2024-02-29")]
        );
        assert_eq!(stay.last_night(), d("2024-02-29"));
        let plain = NightRange::new(d("2023-02-28"), d("2023-03-01")).expect("valid");
        assert_eq!(plain.len(), 1);
    }

    #[test]
    fn subtract_splits_a_range_around_a_cut() {
        let r = NightRange::new(d("2025-01-01"), d("2025-01-10")).expect("valid");
        let cut = NightRange::new(d("2025-01-03"), d("2025-01-05")).expect("valid");
        let rest = r.subtract(&cut);
        assert_eq!(rest.len(), 2);
        assert_eq!(
            (rest[0].start(), rest[0].end()),
            (d("2025-01-01"), d("2025-01-03"))
        );
        assert_eq!(
            (rest[1].start(), rest[1].end()),
            (d("2025-01-05"), d("2025-01-10"))
        );
        assert!(r.subtract(&r).is_empty());
    }

    fn arb_range() -> impl Strategy<Value = NightRange> {
        (0i32..3_000, 1i32..120).prop_map(|(offset, len)| {
            let start = from_day_number(day_number(d("2020-01-01")) + offset);
            let end = from_day_number(day_number(start) + len);
            NightRange::new(start, end).expect("generated ranges are valid")
        })
    }

    proptest! {
        #[test]
        fn day_numbers_are_a_bijection_in_bounds(n in day_number(DATE_MIN)..=day_number(DATE_MAX)) {
            prop_assert_eq!(day_number(from_day_number(n)), n);
            prop_assert_eq!(from_day_number(n).tomorrow().expect("in range"), from_day_number(n + 1));
        }

        #[test]
        fn nights_iterates_len_consecutive_dates(r in arb_range()) {
            let nights: Vec<_> = r.nights().collect();
            prop_assert_eq!(nights.len() as u32, r.len());
            prop_assert_eq!(nights[0], r.start());
            prop_assert_eq!(*nights.last().expect("non-empty"), r.last_night());
            for pair in nights.windows(2) {
                prop_assert_eq!(day_number(pair[1]) - day_number(pair[0]), 1);
            }
            prop_assert!(nights.iter().all(|n| r.contains(*n)));
            prop_assert!(!r.contains(r.end()));
        }

        #[test]
        fn overlap_is_symmetric_and_matches_shared_nights(a in arb_range(), b in arb_range()) {
            let shared = a.nights().filter(|n| b.contains(*n)).count() as u32;
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
            prop_assert_eq!(a.overlaps(&b), shared > 0);
            prop_assert_eq!(a.intersect(&b).map_or(0, |i| i.len()), shared);
        }

        #[test]
        fn subtract_keeps_exactly_the_nights_outside_the_cut(a in arb_range(), cut in arb_range()) {
            let rest = a.subtract(&cut);
            let kept: u32 = rest.iter().map(NightRange::len).sum();
            let expected = a.nights().filter(|n| !cut.contains(*n)).count() as u32;
            prop_assert_eq!(kept, expected);
            for piece in &rest {
                prop_assert!(a.covers(piece));
                prop_assert!(!piece.overlaps(&cut));
            }
        }
    }
}
