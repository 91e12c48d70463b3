//! Demo data: listings spread over real time zones and sizes, with bookings and blocks over the
//! next months, so the calendar and availability endpoints have something to say.

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vacancy_core::{ListingRules, NightRange, RulesInput, StayRequest, Zone};
use vacancy_store::{NewListing, StayClaim, Store, StoreError};

const ZONES: &[&str] = &[
    "Europe/Lisbon",
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Pacific/Auckland",
];

pub struct SeedReport {
    pub listings: u32,
    pub bookings: u32,
    pub blocks: u32,
}

pub async fn seed(store: &Store, listings: u32, seed: u64) -> anyhow::Result<SeedReport> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Timestamp::now();
    let mut report = SeedReport {
        listings: 0,
        bookings: 0,
        blocks: 0,
    };
    for i in 0..listings {
        let units = match rng.random_range(0..100) {
            0..80 => 1,
            80..95 => rng.random_range(2..=5),
            _ => rng.random_range(10..=50),
        };
        let zone = Zone::new(ZONES[rng.random_range(0..ZONES.len())])?;
        let rules = ListingRules::new(RulesInput {
            units,
            min_nights: rng.random_range(1..=3),
            max_nights: 30,
            advance_notice_hours: [0, 24, 48][rng.random_range(0..3)],
            booking_window_days: 365,
        })?;
        let id = format!("listing-{i:07}");
        let new = NewListing {
            id: Some(id.clone()),
            host_id: format!("host-{:04}", i % 500),
            zone: zone.clone(),
            rules,
        };
        match store.create_listing(new, now, None).await {
            Ok(_) => report.listings += 1,
            Err(StoreError::AlreadyExists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        let today = zone.today(now);
        for _ in 0..rng.random_range(0..6) {
            let start = today.saturating_add(jiff::Span::new().days(rng.random_range(3..180)));
            let nights = NightRange::new(
                start,
                start.saturating_add(jiff::Span::new().days(rng.random_range(3..8))),
            )?;
            let stay = StayClaim {
                request: StayRequest {
                    stay: nights,
                    units: 1,
                },
                guest_id: format!("guest-{}", rng.random_range(0..100_000)),
            };
            // Random stays collide or break a rule now and then; those are simply not booked.
            if store.book(&id, &stay, now, None).await.is_ok() {
                report.bookings += 1;
            }
        }
        if rng.random_bool(0.2) {
            let start = today.saturating_add(jiff::Span::new().days(rng.random_range(30..200)));
            let nights = NightRange::new(start, start.saturating_add(jiff::Span::new().days(7)))?;
            let later = now.checked_add(SignedDuration::from_secs(1))?;
            if store
                .add_block(&id, nights, None, Some("maintenance".into()), later, None)
                .await
                .is_ok()
            {
                report.blocks += 1;
            }
        }
    }
    Ok(report)
}
