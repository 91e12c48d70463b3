//! The data a benchmark runs on: listings in many time zones and sizes, some with bookings and
//! blocks, plus a few listings kept apart for the contention scenario.
//!
//! The calendar is split so scenarios do not disturb each other: seeded bookings and blocks
//! sit in days [`SEEDED_DAYS`] from today, uncontended bookings go to days [`BOOK_DAYS`]
//! (which nothing else claims), and contention happens on listings of its own.
//!
//! Loading goes straight through [`Store`] when the harness owns the database (fast), or
//! through the HTTP API when it targets a service it did not start.

use std::ops::Range;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use jiff::{Span, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use vacancy_core::{ListingRules, NightRange, RulesInput, StayRequest, Zone};
use vacancy_store::{NewListing, StayClaim, Store, StoreError};

use crate::http::{Planned, Reconnecting, Target};

/// Days from today where seeded bookings and blocks lie.
pub const SEEDED_DAYS: Range<i64> = 3..190;
/// Days from today reserved for the uncontended booking scenario.
pub const BOOK_DAYS: Range<i64> = 200..360;
/// Days from today where contended stays start (on listings of their own).
pub const CONTEND_FIRST_DAY: i64 = 2;

pub(crate) const ZONES: &[&str] = &[
    "Europe/Lisbon",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Pacific/Auckland",
];

/// What to load.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// Listings for the read and uncontended booking scenarios.
    pub listings: usize,
    /// Share of listings that get a few bookings (0–1).
    pub booked_fraction: f64,
    /// Listings (one unit each) that the contention scenario fights over.
    pub contend_listings: usize,
    /// Seeds the random data.
    pub seed: u64,
    /// Loads in flight at once.
    pub concurrency: usize,
    /// Prefix of every id this run creates, so runs against a shared service do not collide.
    pub id_prefix: String,
}

/// The loaded data, as the scenarios see it.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Listing ids, most popular first (the Zipf rank order).
    pub listing_ids: Vec<String>,
    /// Listings reserved for the contention scenario.
    pub contend_ids: Vec<String>,
    /// Today (UTC) when the data was loaded; stays are placed relative to it.
    pub today: Date,
    /// Prefix of this run's ids, also used for guest ids and idempotency keys.
    pub id_prefix: String,
}

/// What loading did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub listings: usize,
    pub contend_listings: usize,
    pub bookings: usize,
    pub blocks: usize,
    /// Through the store or through the HTTP API.
    pub via: &'static str,
    pub seconds: f64,
}

/// Where data is written.
#[derive(Clone)]
pub enum Sink {
    Store(Store),
    Http(Target),
}

/// One listing to create, with the stays to book and the block to add on it (days from
/// today, half-open).
#[derive(Debug, Clone)]
pub(crate) struct ListingPlan {
    pub(crate) id: String,
    pub(crate) host_id: String,
    pub(crate) zone: &'static str,
    pub(crate) units: u32,
    pub(crate) min_nights: u32,
    pub(crate) advance_notice_hours: u32,
    pub(crate) bookings: Vec<(i64, i64)>,
    pub(crate) block: Option<(i64, i64)>,
}

impl ListingPlan {
    pub(crate) fn rules(&self) -> Result<ListingRules, vacancy_core::RuleError> {
        ListingRules::new(RulesInput {
            units: self.units,
            min_nights: self.min_nights,
            max_nights: 30,
            advance_notice_hours: self.advance_notice_hours,
            booking_window_days: 365,
        })
    }
}

/// Regular listing number `i`, drawn from `rng` (the listings of a run are drawn one after the
/// other from one generator seeded with the run's seed).
pub(crate) fn plan(rng: &mut StdRng, spec: &DatasetSpec, i: usize) -> ListingPlan {
    let units = match rng.random_range(0..100) {
        0..80 => 1,
        80..95 => rng.random_range(2..=5),
        _ => rng.random_range(10..=50),
    };
    let bookings = if rng.random_bool(spec.booked_fraction.clamp(0.0, 1.0)) {
        (0..rng.random_range(1..=4))
            .map(|_| {
                let start = rng.random_range(SEEDED_DAYS.start..SEEDED_DAYS.end - 8);
                (start, start + rng.random_range(2..=7))
            })
            .collect()
    } else {
        Vec::new()
    };
    let block = rng.random_bool(0.1).then(|| {
        let start = rng.random_range(30..SEEDED_DAYS.end - 7);
        (start, start + 7)
    });
    ListingPlan {
        id: format!("{}l{i:06}", spec.id_prefix),
        host_id: format!("{}h{:04}", spec.id_prefix, i % 1000),
        zone: ZONES[rng.random_range(0..ZONES.len())],
        units,
        min_nights: rng.random_range(1..=2),
        advance_notice_hours: [0, 24, 48][rng.random_range(0..3)],
        bookings,
        block,
    }
}

fn plans(spec: &DatasetSpec) -> (Vec<ListingPlan>, Vec<ListingPlan>) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let regular = (0..spec.listings)
        .map(|i| plan(&mut rng, spec, i))
        .collect();
    let contend = (0..spec.contend_listings)
        .map(|i| ListingPlan {
            id: format!("{}c{i:03}", spec.id_prefix),
            host_id: format!("{}h-contend", spec.id_prefix),
            zone: "Europe/Lisbon",
            units: 1,
            min_nights: 1,
            advance_notice_hours: 0,
            bookings: Vec::new(),
            block: None,
        })
        .collect();
    (regular, contend)
}

/// Today's date in UTC, which every stay of a run is placed relative to.
pub fn today_utc() -> Date {
    jiff::tz::TimeZone::UTC.to_datetime(Timestamp::now()).date()
}

/// `today + days`.
pub fn day(today: Date, days: i64) -> Date {
    today.saturating_add(Span::new().days(days))
}

/// Loads the data into `sink`.
pub async fn load(sink: &Sink, spec: &DatasetSpec) -> anyhow::Result<(Dataset, LoadReport)> {
    anyhow::ensure!(spec.listings >= 1, "at least one listing is needed");
    let started = Instant::now();
    let today = today_utc();
    let (regular, contend) = plans(spec);
    let dataset = Dataset {
        listing_ids: regular.iter().map(|p| p.id.clone()).collect(),
        contend_ids: contend.iter().map(|p| p.id.clone()).collect(),
        today,
        id_prefix: spec.id_prefix.clone(),
    };
    let all: Vec<ListingPlan> = regular.into_iter().chain(contend).collect();
    let workers = spec.concurrency.clamp(1, 64);
    let chunk = all.len().div_ceil(workers).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for part in all.chunks(chunk) {
        let part = part.to_vec();
        let sink = sink.clone();
        tasks.spawn(async move { load_part(&sink, part, today).await });
    }
    let mut counts = (0usize, 0usize);
    while let Some(done) = tasks.join_next().await {
        let (bookings, blocks) = done??;
        counts.0 += bookings;
        counts.1 += blocks;
    }
    let report = LoadReport {
        listings: dataset.listing_ids.len(),
        contend_listings: dataset.contend_ids.len(),
        bookings: counts.0,
        blocks: counts.1,
        via: match sink {
            Sink::Store(_) => "store",
            Sink::Http(_) => "http",
        },
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((dataset, report))
}

/// Loads a share of the listings, one after the other; returns (bookings, blocks) made.
async fn load_part(
    sink: &Sink,
    plans: Vec<ListingPlan>,
    today: Date,
) -> anyhow::Result<(usize, usize)> {
    let mut http = match sink {
        Sink::Http(target) => Some(Reconnecting::new(target.clone())),
        Sink::Store(_) => None,
    };
    let mut made = (0, 0);
    for plan in &plans {
        match (sink, http.as_mut()) {
            (Sink::Store(store), _) => {
                let (b, k) = load_into_store(store, plan, today).await?;
                made.0 += b;
                made.1 += k;
            }
            (Sink::Http(_), Some(client)) => {
                let (b, k) = load_over_http(client, plan, today).await?;
                made.0 += b;
                made.1 += k;
            }
            (Sink::Http(_), None) => anyhow::bail!("no HTTP client for an HTTP sink"),
        }
    }
    Ok(made)
}

pub(crate) fn nights(today: Date, (from, to): (i64, i64)) -> anyhow::Result<NightRange> {
    Ok(NightRange::new(day(today, from), day(today, to))?)
}

async fn load_into_store(
    store: &Store,
    plan: &ListingPlan,
    today: Date,
) -> anyhow::Result<(usize, usize)> {
    let now = Timestamp::now();
    let new = NewListing {
        id: Some(plan.id.clone()),
        host_id: plan.host_id.clone(),
        zone: Zone::new(plan.zone)?,
        rules: plan.rules()?,
    };
    store.create_listing(new, now, None).await?;
    let mut made = (0, 0);
    for (i, &stay) in plan.bookings.iter().enumerate() {
        let claim = StayClaim {
            request: StayRequest {
                stay: nights(today, stay)?,
                units: 1,
            },
            guest_id: format!("{}-seed-{i}", plan.id),
        };
        match store.book(&plan.id, &claim, now, None).await {
            Ok(_) => made.0 += 1,
            // Random stays overlap now and then, or break a rule: those are simply not booked.
            Err(StoreError::Conflict { .. } | StoreError::RulesBroken(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(block) = plan.block {
        let range = nights(today, block)?;
        match store
            .add_block(&plan.id, range, None, Some("maintenance".into()), now, None)
            .await
        {
            Ok(_) => made.1 += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(made)
}

/// How long one loading request may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

async fn load_over_http(
    client: &mut Reconnecting,
    plan: &ListingPlan,
    today: Date,
) -> anyhow::Result<(usize, usize)> {
    let body = serde_json::json!({
        "id": plan.id,
        "host_id": plan.host_id,
        "time_zone": plan.zone,
        "units": plan.units,
        "min_nights": plan.min_nights,
        "max_nights": 30,
        "advance_notice_hours": plan.advance_notice_hours,
        "booking_window_days": 365,
    });
    let (status, answer) = client
        .exchange(
            &Planned::post_json("/v1/listings", body.to_string()),
            LOAD_TIMEOUT,
        )
        .await?;
    anyhow::ensure!(
        status.as_u16() == 201,
        "creating listing {} answered {status}: {}",
        plan.id,
        String::from_utf8_lossy(&answer)
    );
    let mut made = (0, 0);
    for (i, &(from, to)) in plan.bookings.iter().enumerate() {
        let body = serde_json::json!({
            "listing_id": plan.id,
            "check_in": day(today, from).to_string(),
            "check_out": day(today, to).to_string(),
            "guest_id": format!("{}-seed-{i}", plan.id),
        });
        let (status, answer) = client
            .exchange(
                &Planned::post_json("/v1/bookings", body.to_string()),
                LOAD_TIMEOUT,
            )
            .await?;
        match status.as_u16() {
            201 => made.0 += 1,
            409 | 422 => {}
            other => anyhow::bail!(
                "booking on {} answered {other}: {}",
                plan.id,
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    if let Some((from, to)) = plan.block {
        let body = serde_json::json!({
            "start": day(today, from).to_string(),
            "end": day(today, to).to_string(),
            "note": "maintenance",
        });
        let path = format!("/v1/listings/{}/blocks", plan.id);
        let (status, answer) = client
            .exchange(&Planned::post_json(path, body.to_string()), LOAD_TIMEOUT)
            .await?;
        match status.as_u16() {
            201 => made.1 += 1,
            409 => {}
            other => anyhow::bail!(
                "block on {} answered {other}: {}",
                plan.id,
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DatasetSpec {
        DatasetSpec {
            listings: 500,
            booked_fraction: 0.5,
            contend_listings: 3,
            seed: 9,
            concurrency: 4,
            id_prefix: "t-".into(),
        }
    }

    #[test]
    fn plans_are_repeatable_and_keep_to_their_days() {
        let (a, contend) = plans(&spec());
        let (b, _) = plans(&spec());
        assert_eq!(a.len(), 500);
        assert_eq!(contend.len(), 3);
        assert_eq!(
            a.iter().map(|p| &p.bookings).collect::<Vec<_>>(),
            b.iter().map(|p| &p.bookings).collect::<Vec<_>>()
        );
        for plan in &a {
            plan.rules().expect("valid rules");
            for &(from, to) in plan.bookings.iter().chain(plan.block.iter()) {
                assert!(SEEDED_DAYS.contains(&from) && to <= SEEDED_DAYS.end && from < to);
            }
        }
        let booked = a.iter().filter(|p| !p.bookings.is_empty()).count();
        assert!((150..350).contains(&booked), "{booked}");
        assert!(
            contend
                .iter()
                .all(|p| p.units == 1 && p.bookings.is_empty())
        );
    }
}
