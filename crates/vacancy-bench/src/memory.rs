//! L1 memory (`--scenario memory`): what the read path's in-process cache costs when it holds
//! many listings' calendars over its whole horizon (about 18 months).
//!
//! No service and no data in a database: the listings are drawn exactly as the dataset draws
//! them (same mix of units, bookings and blocks, same ids), turned into the snapshots a load
//! from the database would produce (calendar over the read path's horizon, version counting the
//! writes), and put into a [`ReadPath`]'s L1 with [`ReadPath::prime`], one after the other, so
//! nothing but the cache holds them. The read path needs a store to be built; it is an empty
//! SQLite file that is never read.
//!
//! Reported: the entries L1 holds and their weighed size ([`ReadPath::l1_usage`], after the
//! cache's pending work ran), listings that did not stay in (evicted or refused), and the
//! process's resident memory (`VmRSS`) before and after, so the growth includes everything the
//! cache allocated for them (its own structures and the allocator's overhead), not only what
//! the weigher counts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use jiff::Timestamp;
use jiff::civil::Date;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use vacancy_cache::{CacheConfig, ReadPath};
use vacancy_core::{Calendar, NightRange, Zone, day_number, from_day_number};
use vacancy_store::{Backend, Listing, ListingSnapshot, Store, StoreOptions};

use crate::cli::{BenchArgs, Mode};
use crate::dataset::{self, DatasetSpec, ListingPlan, ZONES};
use crate::report::Machine;
use crate::service::{drop_database, fresh_database_url};

const MIB: f64 = 1024.0 * 1024.0;

/// What a memory run measured.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub tool: &'static str,
    pub version: &'static str,
    pub started_at: String,
    pub command: String,
    pub machine: Machine,
    /// Listings put into L1.
    pub listings: usize,
    /// Nights each calendar covers (the read path's default horizon).
    pub horizon_nights: u32,
    /// L1's capacity.
    pub cache_max_mib: u64,
    pub mix: Mix,
    /// Entries L1 holds after the run.
    pub entries: u64,
    /// Listings that are not in L1 (evicted or refused): 0 unless the capacity was too small.
    pub not_cached: u64,
    /// L1's weighed size: what its weigher counts (keys, entries, calendars, holds).
    pub weighed_bytes: u64,
    pub weighed_mib: f64,
    pub weighed_bytes_per_listing: f64,
    /// Resident memory of the process before the first listing and after the last (MiB).
    pub rss_before_mib: Option<f64>,
    pub rss_after_mib: Option<f64>,
    pub rss_growth_mib: Option<f64>,
    pub rss_growth_bytes_per_listing: Option<f64>,
    /// The process's peak resident memory (MiB).
    pub peak_rss_mib: Option<f64>,
    /// Time to build and put every listing into L1.
    pub seconds: f64,
}

/// The listings that were cached.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mix {
    pub one_unit: u64,
    pub two_to_five_units: u64,
    pub ten_or_more_units: u64,
    pub bookings: u64,
    pub blocks: u64,
}

/// Runs the memory mode `args` describe.
pub async fn run(args: &BenchArgs, command: String) -> anyhow::Result<MemoryReport> {
    args.validate()?;
    anyhow::ensure!(
        args.mode()? == Mode::Memory,
        "not a memory run: pass --scenario memory"
    );
    anyhow::ensure!(
        args.cache_max_mib >= 1,
        "--cache-max-mib must be at least 1"
    );
    let started_at = Timestamp::now().round(jiff::Unit::Second)?.to_string();
    let machine = crate::run::machine();
    eprintln!(
        "vacancy-bench memory: {} cores, {} build; reproduce with: {command}",
        machine.cores, machine.build_profile
    );
    let database_url = fresh_database_url(Backend::Sqlite).await?;
    let outcome = fill(args, &database_url).await;
    if let Err(e) = drop_database(&database_url).await {
        eprintln!("warning: could not delete {database_url}: {e:#}");
    }
    let filled = outcome?;
    let listings = args.listings();
    let growth = match (filled.rss_before, filled.rss_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok(MemoryReport {
        tool: "vacancy-bench",
        version: env!("CARGO_PKG_VERSION"),
        started_at,
        command,
        machine,
        listings,
        horizon_nights: filled.horizon_nights,
        cache_max_mib: args.cache_max_mib,
        mix: filled.mix,
        entries: filled.entries,
        not_cached: (listings as u64).saturating_sub(filled.entries),
        weighed_bytes: filled.weighed,
        weighed_mib: filled.weighed as f64 / MIB,
        weighed_bytes_per_listing: filled.weighed as f64 / listings as f64,
        rss_before_mib: filled.rss_before.map(|b| b as f64 / MIB),
        rss_after_mib: filled.rss_after.map(|b| b as f64 / MIB),
        rss_growth_mib: growth.map(|b| b as f64 / MIB),
        rss_growth_bytes_per_listing: growth.map(|b| b as f64 / listings as f64),
        peak_rss_mib: filled.peak_rss.map(|b| b as f64 / MIB),
        seconds: filled.seconds,
    })
}

struct Filled {
    horizon_nights: u32,
    mix: Mix,
    entries: u64,
    weighed: u64,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    peak_rss: Option<u64>,
    seconds: f64,
}

async fn fill(args: &BenchArgs, database_url: &str) -> anyhow::Result<Filled> {
    let listings = args.listings();
    let store = Store::connect(&StoreOptions::new(database_url.to_owned())).await?;
    let config = CacheConfig {
        max_bytes: args.cache_max_mib.saturating_mul(1024 * 1024),
        ..CacheConfig::default()
    };
    let now = Timestamp::now();
    let today = dataset::today_utc();
    let horizon = horizon(today, config.horizon_nights)?;
    let zones: HashMap<&str, Zone> = ZONES
        .iter()
        .map(|name| Ok((*name, Zone::new(name)?)))
        .collect::<anyhow::Result<_>>()?;
    let spec = DatasetSpec {
        listings,
        booked_fraction: args.booked_fraction,
        contend_listings: 0,
        seed: args.seed,
        concurrency: 1,
        id_prefix: id_prefix(),
    };
    let horizon_nights = config.horizon_nights;
    let reads = ReadPath::new(store.clone(), None, config);
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut mix = Mix::default();
    eprintln!(
        "memory: {listings} listings' calendars over {horizon_nights} nights into L1 ({} MiB)…",
        args.cache_max_mib
    );
    let rss_before = resident_bytes("VmRSS");
    let started = Instant::now();
    let step = (listings / 10).max(1);
    for i in 0..listings {
        let plan = dataset::plan(&mut rng, &spec, i);
        let zone = zones
            .get(plan.zone)
            .ok_or_else(|| anyhow::anyhow!("no zone {}", plan.zone))?;
        let snapshot = snapshot(&plan, zone, today, horizon, now, &mut mix)?;
        reads.prime(snapshot).await;
        if (i + 1) % step == 0 && i + 1 < listings {
            eprintln!(
                "  {} listings in {:.1} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let (entries, weighed) = reads.l1_usage().await;
    let seconds = started.elapsed().as_secs_f64();
    let rss_after = resident_bytes("VmRSS");
    let peak_rss = resident_bytes("VmHWM");
    eprintln!(
        "  {entries} entries, {:.1} MiB weighed, RSS {} in {seconds:.1} s",
        weighed as f64 / MIB,
        match (rss_before, rss_after) {
            (Some(b), Some(a)) => format!("+{:.1} MiB", a.saturating_sub(b) as f64 / MIB),
            _ => "not available".into(),
        }
    );
    drop(reads);
    store.close().await;
    Ok(Filled {
        horizon_nights,
        mix,
        entries,
        weighed,
        rss_before,
        rss_after,
        peak_rss,
        seconds,
    })
}

/// The nights the read path's entries cover when loaded today: from two days before today
/// (UTC), `nights` long.
fn horizon(today: Date, nights: u32) -> anyhow::Result<NightRange> {
    let first = day_number(today) - 2;
    let nights = i32::try_from(nights)?;
    Ok(NightRange::with_limit(
        from_day_number(first),
        from_day_number(first + nights),
        u32::MAX,
    )?)
}

/// Ids shaped like the other scenarios' (a run tag, then the listing number).
fn id_prefix() -> String {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    format!("b{}-", &tag[tag.len() - 6..])
}

/// The snapshot a load from the database would give for `plan` after its writes: bookings that
/// fit (one unit each) and its block (every unit), the version raised once per write.
fn snapshot(
    plan: &ListingPlan,
    zone: &Zone,
    today: Date,
    horizon: NightRange,
    now: Timestamp,
    mix: &mut Mix,
) -> anyhow::Result<ListingSnapshot> {
    let units = u16::try_from(plan.units)?;
    let mut calendar = Calendar::empty(horizon, units);
    let mut version = 1;
    for &stay in &plan.bookings {
        let nights = dataset::nights(today, stay)?;
        // As loading does: a stay that no longer fits is simply not booked.
        if calendar.short_nights(&nights, 1).is_empty() {
            calendar.add(&nights, 1);
            version += 1;
            mix.bookings += 1;
        }
    }
    if let Some(block) = plan.block {
        let nights = dataset::nights(today, block)?;
        if calendar.short_nights(&nights, units).is_empty() {
            calendar.add(&nights, units);
            version += 1;
            mix.blocks += 1;
        }
    }
    match units {
        1 => mix.one_unit += 1,
        2..=5 => mix.two_to_five_units += 1,
        _ => mix.ten_or_more_units += 1,
    }
    Ok(ListingSnapshot {
        listing: Listing {
            id: plan.id.clone(),
            host_id: plan.host_id.clone(),
            zone: zone.clone(),
            rules: plan.rules()?,
            version,
            created_at: now,
            updated_at: now,
        },
        calendar,
        holds: Vec::new(),
    })
}

/// A memory figure of this process from `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes;
/// `None` where there is no such file.
pub fn resident_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    })
}

impl MemoryReport {
    /// The results as markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "### vacancy-bench memory, {}\n", self.started_at);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(md, "{}", m.markdown_line());
        let x = &self.mix;
        let _ = writeln!(
            md,
            "- {} listings ({} with one unit, {} with 2-5, {} with 10 or more; {} bookings, {} blocks), calendars over {} nights, L1 capacity {} MiB, built in {:.1} s\n",
            self.listings,
            x.one_unit,
            x.two_to_five_units,
            x.ten_or_more_units,
            x.bookings,
            x.blocks,
            self.horizon_nights,
            self.cache_max_mib,
            self.seconds
        );
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.digits$}"));
        md.push_str(
            "| entries | not cached | L1 weighed MiB | weighed bytes/listing | RSS before MiB | RSS after MiB | RSS growth MiB | RSS growth bytes/listing | peak RSS MiB |\n\
             |--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.0} | {} | {} | {} | {} | {} |",
            self.entries,
            self.not_cached,
            self.weighed_mib,
            self.weighed_bytes_per_listing,
            opt(self.rss_before_mib, 1),
            opt(self.rss_after_mib, 1),
            opt(self.rss_growth_mib, 1),
            opt(self.rss_growth_bytes_per_listing, 0),
            opt(self.peak_rss_mib, 1),
        );
        if self.not_cached > 0 {
            let _ = writeln!(
                md,
                "\n{} listings are not in L1: the capacity (--cache-max-mib) was too small, so the figures are not those of every listing.",
                self.not_cached
            );
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_is_the_read_paths() {
        let today: Date = "2030-01-10".parse().expect("date");
        let h = horizon(today, 550).expect("horizon");
        assert_eq!(h.start().to_string(), "2030-01-08");
        assert_eq!(h.len(), 550);
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes("VmRSS").is_some_and(|b| b > 0));
            assert_eq!(resident_bytes("NoSuchField"), None);
        }
    }
}
