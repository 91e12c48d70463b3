//! The scenarios: what each one sends, and which answers count as its expected outcome.
//!
//! Every scenario is a [`Workload`] built from the loaded [`Dataset`]; the engine decides the
//! pace. Stays are placed relative to the dataset's `today` (see [`crate::dataset`] for which
//! days each scenario uses).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use jiff::civil::Date;
use rand::Rng;
use rand::rngs::SmallRng;
use serde::Serialize;

use crate::dataset::{BOOK_DAYS, CONTEND_FIRST_DAY, Dataset, SEEDED_DAYS, day};
use crate::engine::Workload;
use crate::http::Planned;
use crate::zipf::Zipf;

/// One benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Baseline,
    Check,
    DirectDb,
    Batch,
    Calendar,
    Book,
    Contend,
}

impl Scenario {
    /// Every scenario, in the order `--scenario all` runs them: reads first, then writes.
    pub const ALL: [Scenario; 7] = [
        Scenario::Baseline,
        Scenario::Check,
        Scenario::DirectDb,
        Scenario::Batch,
        Scenario::Calendar,
        Scenario::Book,
        Scenario::Contend,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Check => "check",
            Scenario::DirectDb => "direct-db",
            Scenario::Batch => "batch",
            Scenario::Calendar => "calendar",
            Scenario::Book => "book",
            Scenario::Contend => "contend",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line on what the scenario measures.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::Baseline => {
                "GET /healthz: the ceiling of this machine's HTTP stack, for ratios"
            }
            Scenario::Check => {
                "GET /v1/listings/{id}/availability, Zipf-skewed listings, random stays of 1-7 nights"
            }
            Scenario::DirectDb => {
                "the check workload with `Cache-Control: no-cache`: every cache bypassed, \
                 each check read from the database"
            }
            Scenario::Batch => "POST /v1/availability/batch for a set of random listings",
            Scenario::Calendar => "GET /v1/listings/{id}/calendar for 90-day ranges, Zipf-skewed",
            Scenario::Book => {
                "POST /v1/bookings, every request on its own listing and nights (no conflicts)"
            }
            Scenario::Contend => {
                "POST /v1/bookings, all clients on the same few listings and nights; \
                 then an audit for overbookings"
            }
        }
    }

    /// The statuses that are this scenario's expected outcome; anything else is an error.
    pub fn expected_statuses(self) -> &'static [u16] {
        match self {
            Scenario::Book => &[201],
            Scenario::Contend => &[201, 409],
            _ => &[200],
        }
    }

    /// The requests of this scenario over `dataset`.
    pub fn workload(
        self,
        dataset: &Dataset,
        options: &WorkloadOptions,
    ) -> anyhow::Result<Arc<dyn Workload>> {
        let ids = Arc::new(dataset.listing_ids.clone());
        let today = dataset.today;
        Ok(match self {
            Scenario::Baseline => Arc::new(Baseline),
            Scenario::Check | Scenario::DirectDb => Arc::new(Check {
                zipf: Zipf::new(ids.len(), options.zipf_exponent)?,
                ids,
                today,
                bypass_cache: self == Scenario::DirectDb,
            }),
            Scenario::Batch => {
                anyhow::ensure!(options.batch_size >= 1, "the batch size must be at least 1");
                Arc::new(Batch {
                    size: options.batch_size.min(ids.len()),
                    ids,
                    today,
                })
            }
            Scenario::Calendar => {
                anyhow::ensure!(
                    (1..=731).contains(&options.calendar_days),
                    "calendar ranges must be 1 to 731 days"
                );
                Arc::new(Calendar {
                    zipf: Zipf::new(ids.len(), options.zipf_exponent)?,
                    ids,
                    today,
                    days: options.calendar_days,
                })
            }
            Scenario::Book => Arc::new(Book {
                ids,
                today,
                prefix: dataset.id_prefix.clone(),
                next: AtomicU64::new(0),
            }),
            Scenario::Contend => {
                anyhow::ensure!(
                    !dataset.contend_ids.is_empty(),
                    "the contend scenario needs at least one contend listing"
                );
                Arc::new(Contend {
                    ids: dataset.contend_ids.clone(),
                    today,
                    prefix: dataset.id_prefix.clone(),
                    next: AtomicU64::new(0),
                })
            }
        })
    }
}

/// Knobs of the workloads.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Skew of listing popularity (0 = uniform; 1 = classic Zipf).
    pub zipf_exponent: f64,
    /// Listings per batch check.
    pub batch_size: usize,
    /// Nights per calendar request.
    pub calendar_days: i64,
}

/// A random stay among the seeded days: check-in 3–180 days out, 1–7 nights.
fn random_stay(rng: &mut SmallRng, today: Date) -> (Date, Date) {
    let start = rng.random_range(SEEDED_DAYS.start..=180);
    let nights = rng.random_range(1..=7);
    (day(today, start), day(today, start + nights))
}

struct Baseline;

impl Workload for Baseline {
    fn next_request(&self, _rng: &mut SmallRng) -> Planned {
        Planned::get("/healthz")
    }
}

struct Check {
    ids: Arc<Vec<String>>,
    zipf: Zipf,
    today: Date,
    /// Ask every cache to step aside (`Cache-Control: no-cache`). Before the read-path caches
    /// existed the service ignored the header and this was the same path as a plain check;
    /// since they landed (issue 4) the service honours it and reads the database.
    bypass_cache: bool,
}

impl Workload for Check {
    fn next_request(&self, rng: &mut SmallRng) -> Planned {
        let id = &self.ids[self.zipf.sample_index(rng)];
        let (check_in, check_out) = random_stay(rng, self.today);
        let request = Planned::get(format!(
            "/v1/listings/{id}/availability?check_in={check_in}&check_out={check_out}"
        ));
        if self.bypass_cache {
            request.with_header(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        } else {
            request
        }
    }
}

struct Batch {
    ids: Arc<Vec<String>>,
    size: usize,
    today: Date,
}

#[derive(Serialize)]
struct BatchBody<'a> {
    listing_ids: Vec<&'a str>,
    check_in: String,
    check_out: String,
}

impl Workload for Batch {
    fn next_request(&self, rng: &mut SmallRng) -> Planned {
        // A search page's result set: distinct listings, chosen uniformly.
        let listing_ids = rand::seq::index::sample(rng, self.ids.len(), self.size)
            .into_iter()
            .map(|i| self.ids[i].as_str())
            .collect();
        let (check_in, check_out) = random_stay(rng, self.today);
        let body = BatchBody {
            listing_ids,
            check_in: check_in.to_string(),
            check_out: check_out.to_string(),
        };
        Planned::post_json(
            "/v1/availability/batch",
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    }
}

struct Calendar {
    ids: Arc<Vec<String>>,
    zipf: Zipf,
    today: Date,
    days: i64,
}

impl Workload for Calendar {
    fn next_request(&self, rng: &mut SmallRng) -> Planned {
        let id = &self.ids[self.zipf.sample_index(rng)];
        let start = rng.random_range(0..=270);
        let (start, end) = (day(self.today, start), day(self.today, start + self.days));
        Planned::get(format!(
            "/v1/listings/{id}/calendar?start={start}&end={end}"
        ))
    }
}

/// Nights per uncontended booking.
const BOOK_NIGHTS: i64 = 2;

/// How many distinct stays each listing offers the book scenario.
pub const BOOK_SLOTS: u64 = ((BOOK_DAYS.end - BOOK_DAYS.start) / BOOK_NIGHTS) as u64;

/// Request `n` books listing `n mod L` on slot `n / L`: distinct listings and nights until
/// `L × BOOK_SLOTS` requests, after which stays repeat and 409s appear (and are reported).
struct Book {
    ids: Arc<Vec<String>>,
    today: Date,
    prefix: String,
    next: AtomicU64,
}

impl Workload for Book {
    fn next_request(&self, _rng: &mut SmallRng) -> Planned {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let listings = self.ids.len() as u64;
        let listing = &self.ids[(n % listings) as usize];
        let slot = ((n / listings) % BOOK_SLOTS) as i64;
        let check_in = BOOK_DAYS.start + slot * BOOK_NIGHTS;
        booking(
            listing,
            day(self.today, check_in),
            day(self.today, check_in + BOOK_NIGHTS),
            &format!("{}book-{n}", self.prefix),
        )
    }
}

/// Contention in rounds: [`CONTEND_ROUND`] consecutive requests fight over one window of
/// nights on one of a few one-unit listings (stays of 1–2 nights starting in the window's first
/// 3 days, so 2–4 of them can win), then the fight moves to the next window. There are always
/// winners and many losers. After `listings × CONTEND_WINDOWS` rounds the windows repeat and
/// every request loses.
struct Contend {
    ids: Vec<String>,
    today: Date,
    prefix: String,
    next: AtomicU64,
}

/// Requests per contention round.
pub const CONTEND_ROUND: u64 = 100;
/// Days between the windows of consecutive rounds on one listing.
const CONTEND_STRIDE_DAYS: i64 = 5;
/// Windows per listing, all inside the booking window.
pub const CONTEND_WINDOWS: u64 = 70;

impl Workload for Contend {
    fn next_request(&self, rng: &mut SmallRng) -> Planned {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let round = n / CONTEND_ROUND;
        let listings = self.ids.len() as u64;
        let listing = &self.ids[(round % listings) as usize];
        let window = ((round / listings) % CONTEND_WINDOWS) as i64;
        let start = CONTEND_FIRST_DAY + window * CONTEND_STRIDE_DAYS + rng.random_range(0..3);
        let nights = rng.random_range(1..=2);
        booking(
            listing,
            day(self.today, start),
            day(self.today, start + nights),
            &format!("{}contend-{n}", self.prefix),
        )
    }
}

/// A direct booking, as a checkout sends it: with a fresh `Idempotency-Key`.
pub(crate) fn booking(listing_id: &str, check_in: Date, check_out: Date, key: &str) -> Planned {
    let body = serde_json::json!({
        "listing_id": listing_id,
        "check_in": check_in.to_string(),
        "check_out": check_out.to_string(),
        "guest_id": format!("guest-{key}"),
    });
    let request = Planned::post_json("/v1/bookings", body.to_string());
    match HeaderValue::from_str(key) {
        Ok(value) => request.with_header(HeaderName::from_static("idempotency-key"), value),
        Err(_) => request,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn dataset() -> Dataset {
        Dataset {
            listing_ids: (0..10).map(|i| format!("l{i}")).collect(),
            contend_ids: vec!["c0".into(), "c1".into()],
            today: "2030-01-01".parse().expect("date"),
            id_prefix: "p-".into(),
        }
    }

    fn options() -> WorkloadOptions {
        WorkloadOptions {
            zipf_exponent: 1.0,
            batch_size: 500,
            calendar_days: 90,
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }

    #[test]
    fn book_requests_never_repeat_a_stay_within_the_slots() {
        let workload = Scenario::Book
            .workload(&dataset(), &options())
            .expect("workload");
        let mut rng = SmallRng::seed_from_u64(1);
        let total = 10 * BOOK_SLOTS;
        let bodies: std::collections::HashSet<String> = (0..total)
            .map(|_| {
                let body = workload.next_request(&mut rng).body.unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                format!("{}/{}", v["listing_id"], v["check_in"])
            })
            .collect();
        assert_eq!(bodies.len() as u64, total);
    }

    #[test]
    fn direct_db_asks_caches_to_step_aside_and_check_does_not() {
        let mut rng = SmallRng::seed_from_u64(1);
        let direct = Scenario::DirectDb
            .workload(&dataset(), &options())
            .expect("workload")
            .next_request(&mut rng);
        assert!(
            direct
                .headers
                .iter()
                .any(|(n, v)| n == CACHE_CONTROL && v == "no-cache")
        );
        let check = Scenario::Check
            .workload(&dataset(), &options())
            .expect("workload")
            .next_request(&mut rng);
        assert!(check.headers.is_empty());
        assert!(
            check
                .path_and_query
                .contains("/availability?check_in=2030-")
        );
    }

    #[test]
    fn batch_is_capped_by_the_listings_there_are() {
        let mut rng = SmallRng::seed_from_u64(1);
        let request = Scenario::Batch
            .workload(&dataset(), &options())
            .expect("workload")
            .next_request(&mut rng);
        let v: serde_json::Value =
            serde_json::from_slice(&request.body.unwrap_or_default()).expect("json");
        assert_eq!(v["listing_ids"].as_array().map(Vec::len), Some(10));
    }
}
