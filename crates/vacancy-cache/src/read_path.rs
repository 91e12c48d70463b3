//! L1 → L2 → database, with coalesced misses, version guards and background refreshes.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use moka::ops::compute::Op;
use vacancy_core::{NightRange, from_day_number};
use vacancy_store::{Listing, Store, StoreError};

use crate::entry::Entry;
use crate::hot::HotTracker;
use crate::l1::{Inserted, L1};
use crate::loads::Loads;
use crate::shared::SharedCache;

/// Read-path tunables.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Most bytes L1 may hold (entries are weighed by their real size).
    pub max_bytes: u64,
    /// Longest an entry lives in L1 (±10 % jitter so entries loaded together do not expire
    /// together).
    pub ttl: Duration,
    /// Age after which a read serves the entry but refreshes it in the background.
    pub fresh_for: Duration,
    /// Nights an entry covers, starting two days before today (UTC).
    pub horizon_nights: u32,
    /// Lifetime of entries written to L2.
    pub l2_ttl: Duration,
    /// How often the hottest listings are refreshed ahead of their expiry.
    pub hot_interval: Duration,
    /// How many of the most-read listings count as hot.
    pub hot_listings: usize,
    /// How long past its TTL a copy may still answer, marked stale, while the database cannot
    /// be reached. Copies stay in L1 (space permitting) this much longer than their TTL, but
    /// are never answered from past the TTL while the database answers.
    pub max_stale: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 512 * 1024 * 1024,
            ttl: Duration::from_secs(300),
            fresh_for: Duration::from_secs(30),
            horizon_nights: 550,
            l2_ttl: Duration::from_secs(900),
            hot_interval: Duration::from_secs(5),
            hot_listings: 1024,
            max_stale: Duration::from_secs(3600),
        }
    }
}

/// Per-request read options.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Read-your-writes: never answer from a copy older than this listing version.
    pub min_version: Option<i64>,
    /// Skip every cache and read the database (what a team without this service would do).
    pub bypass_cache: bool,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    L2,
    Database,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::L1 => "l1",
            Source::L2 => "l2",
            Source::Database => "database",
        }
    }
}

/// A listing with its calendar over the asked range, as of now.
#[derive(Debug, Clone)]
pub struct View {
    pub listing: Arc<Listing>,
    pub calendar: vacancy_core::Calendar,
    pub source: Source,
    /// `Some(age of the copy)` when the database could not be asked and a copy past its TTL
    /// answered instead: possibly out of date, and to be marked so.
    pub stale: Option<Duration>,
}

/// The read path. Cheap to clone; clones share the caches.
#[derive(Clone)]
pub struct ReadPath {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    l1: L1,
    /// Misses under way, so concurrent misses on one listing share one load.
    loads: Loads<Entry, LoadError>,
    /// Copies past their TTL whose reload is under way or failed, kept to answer (marked
    /// stale) while the database is unavailable; dropped once a reload succeeds.
    fallback: moka::sync::Cache<String, Arc<Entry>>,
    l2: Option<Arc<dyn SharedCache>>,
    /// The newest version each listing's events (and local commits) announced. L1 never keeps
    /// a copy older than this (see [`L1::insert_if_newer`]), so a hit needs no lookup here;
    /// loads ask for at least this version.
    latest: moka::sync::Cache<String, i64>,
    /// Listings with a background refresh under way (one at a time per listing).
    refreshing: moka::sync::Cache<String, ()>,
    hot: HotTracker,
    config: CacheConfig,
    stats: Counters,
}

/// This read path's own counts (the same events also go to the metrics registry, which is
/// process-wide).
#[derive(Default)]
struct Counters {
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    db_loads: AtomicU64,
    refreshes: AtomicU64,
    stale_served: AtomicU64,
}

/// A snapshot of a read path's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub l1_hits: u64,
    pub l1_misses: u64,
    pub l2_hits: u64,
    pub l2_misses: u64,
    /// Listings loaded from the database to fill the cache (not counting bypassing reads).
    pub db_loads: u64,
    /// Listings reloaded in the background (stale-while-revalidate, events, hot listings).
    pub refreshes: u64,
    /// Listings answered from a copy past its TTL because the database was unavailable.
    pub stale_served: u64,
}

/// A load that found nothing or failed; shared by coalesced waiters.
#[derive(Debug)]
enum LoadError {
    NotFound,
    Store(StoreError),
    /// The load's task died (a bug): waiters read the database directly instead.
    Panicked,
}

/// The TTL of one listing's copies: `base` ±10 %, fixed per listing (an FNV-1a hash of its id,
/// cheap enough for every read) so that copies loaded together expire at different times.
fn jittered(base: Duration, listing_id: &str) -> Duration {
    let hash = listing_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    // Integer arithmetic: this runs for every cached read.
    let permille = 900 + hash % 201;
    let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos.saturating_mul(permille) / 1000)
}

fn key(listing_id: &str) -> String {
    format!("cal:{listing_id}")
}

impl ReadPath {
    pub fn new(store: Store, l2: Option<Arc<dyn SharedCache>>, config: CacheConfig) -> Self {
        let weigh = |k: &String, v: &Arc<Entry>| (k.len() as u32).saturating_add(v.weight());
        // A copy past its TTL stays (space permitting) for outages, never answered from while
        // the database answers; after `max_stale` more it is gone for good.
        let l1 = L1::new(config.max_bytes, config.ttl.mul_f64(1.1) + config.max_stale);
        let fallback = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes / 4)
            .weigher(weigh)
            .time_to_live(config.max_stale)
            .build();
        let latest = moka::sync::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_idle(Duration::from_secs(600))
            .build();
        let refreshing = moka::sync::Cache::builder()
            .time_to_live(Duration::from_secs(30))
            .build();
        let hot = HotTracker::new(config.hot_listings);
        Self {
            inner: Arc::new(Inner {
                store,
                l1,
                loads: Loads::new(),
                fallback,
                l2,
                latest,
                refreshing,
                hot,
                config,
                stats: Counters::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// What this read path has done so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.stats;
        CacheStats {
            l1_hits: c.l1_hits.load(Relaxed),
            l1_misses: c.l1_misses.load(Relaxed),
            l2_hits: c.l2_hits.load(Relaxed),
            l2_misses: c.l2_misses.load(Relaxed),
            db_loads: c.db_loads.load(Relaxed),
            refreshes: c.refreshes.load(Relaxed),
            stale_served: c.stale_served.load(Relaxed),
        }
    }

    /// The nights an entry loaded at `now` covers.
    fn horizon(&self, now: Timestamp) -> NightRange {
        let today = vacancy_core::day_number(jiff::tz::TimeZone::UTC.to_datetime(now).date());
        let start = from_day_number(today - 2);
        let end = from_day_number(today - 2 + self.inner.config.horizon_nights as i32);
        NightRange::with_limit(start, end, u32::MAX).unwrap_or_else(|_| {
            // Only at the very ends of the supported dates; a one-night horizon still works.
            NightRange::with_limit(start, from_day_number(today - 1), u32::MAX)
                .expect("two consecutive days form a range")
        })
    }

    fn required_version(&self, id: &str, opts: &ReadOptions) -> i64 {
        let seen = self.inner.latest.get(id).unwrap_or(0);
        opts.min_version.unwrap_or(0).max(seen)
    }

    /// One listing over `range` at `now`; `None` when it does not exist.
    pub async fn view(
        &self,
        id: &str,
        range: NightRange,
        now: Timestamp,
        opts: ReadOptions,
    ) -> Result<Option<View>, StoreError> {
        if opts.bypass_cache || !self.horizon(now).covers(&range) {
            return self.direct(id, range, now).await;
        }
        let inner = &self.inner;
        let at = Instant::now();
        // L1 holds no copy older than an announced version: only the asked one is checked.
        if let Some(entry) = inner.l1.get(id, at) {
            let usable = entry.version() >= opts.min_version.unwrap_or(0) && entry.covers(&range);
            if usable && self.within_ttl(&entry, at) {
                inner.stats.l1_hits.fetch_add(1, Relaxed);
                metrics::counter!("vacancy_cache_lookups_total", "layer" => "l1", "result" => "hit").increment(1);
                inner.hot.touch(id);
                if self.is_old(&entry, at) {
                    self.refresh(id.to_owned());
                }
                return Ok(entry.calendar_at(&range, now).map(|calendar| View {
                    listing: entry.listing.clone(),
                    calendar,
                    source: Source::L1,
                    stale: None,
                }));
            }
            if usable {
                // Past its TTL: reload, but keep the copy in case the database is down.
                inner.fallback.insert(id.to_owned(), entry.clone());
            }
            inner.l1.invalidate_if_same(id, &entry);
        }
        inner.stats.l1_misses.fetch_add(1, Relaxed);
        metrics::counter!("vacancy_cache_lookups_total", "layer" => "l1", "result" => "miss")
            .increment(1);
        let required = self.required_version(id, &opts);
        let loaded = self.load_coalesced(id, now, required).await;
        let entry = match loaded {
            Ok(entry) => entry,
            Err(e) => {
                let err = match Arc::try_unwrap(e) {
                    Ok(LoadError::NotFound) => return Ok(None),
                    Ok(LoadError::Store(err)) => err,
                    Ok(LoadError::Panicked) => return self.direct(id, range, now).await,
                    Err(shared) => match shared.as_ref() {
                        LoadError::NotFound => return Ok(None),
                        LoadError::Store(err) if err.is_unavailable() => {
                            match self.stale_view(id, range, now, required) {
                                Some(view) => return Ok(Some(view)),
                                // Another waiter owns the error: read directly rather than
                                // clone it.
                                None => return self.direct(id, range, now).await,
                            }
                        }
                        LoadError::Store(_) | LoadError::Panicked => {
                            return self.direct(id, range, now).await;
                        }
                    },
                };
                if err.is_unavailable()
                    && let Some(view) = self.stale_view(id, range, now, required)
                {
                    return Ok(Some(view));
                }
                return Err(err);
            }
        };
        if entry.version() < required || !entry.covers(&range) {
            // The database has not caught up with what was asked (or an event raced the load),
            // or another path cached a copy over a different horizon meanwhile: answer from the
            // database rather than from a copy that cannot say.
            return self.direct(id, range, now).await;
        }
        inner.hot.touch(id);
        let source = entry.origin;
        Ok(entry.calendar_at(&range, now).map(|calendar| View {
            listing: entry.listing.clone(),
            calendar,
            source,
            stale: None,
        }))
    }

    /// Whether `entry` is within its TTL at `at`, i.e. may be answered from while the database
    /// answers.
    fn within_ttl(&self, entry: &Entry, at: Instant) -> bool {
        at.saturating_duration_since(entry.loaded_at)
            <= jittered(self.inner.config.ttl, &entry.listing.id)
    }

    /// Whether `entry` is past its soft age at `at`: still served, but refreshed in the
    /// background (stale-while-revalidate).
    fn is_old(&self, entry: &Entry, at: Instant) -> bool {
        at.saturating_duration_since(entry.loaded_at) > self.inner.config.fresh_for
    }

    /// The load of `id` under way, or a new one: concurrent misses share it. A loaded copy
    /// goes into L1 (unless a newer one is there) before any waiter is answered.
    async fn load_coalesced(
        &self,
        id: &str,
        now: Timestamp,
        required: i64,
    ) -> Result<Arc<Entry>, Arc<LoadError>> {
        let this = self.clone();
        let owned = id.to_owned();
        self.inner
            .loads
            .get_or_load(
                id,
                move || async move {
                    let entry = this.load(&owned, now, required).await?;
                    this.insert_if_newer(entry.clone());
                    Ok(entry)
                },
                || LoadError::Panicked,
            )
            .await
    }

    /// A copy of `id` past its TTL, at `required` version or newer and covering `range`, to
    /// answer with while the database cannot be asked. Counted, and marked with its age.
    fn stale_view(
        &self,
        id: &str,
        range: NightRange,
        now: Timestamp,
        required: i64,
    ) -> Option<View> {
        let entry = self.stale_entry(id, &range, required)?;
        let calendar = entry.calendar_at(&range, now)?;
        Some(View {
            listing: entry.listing.clone(),
            calendar,
            source: entry.origin,
            stale: Some(entry.loaded_at.elapsed()),
        })
    }

    fn stale_entry(&self, id: &str, range: &NightRange, required: i64) -> Option<Arc<Entry>> {
        let config = &self.inner.config;
        let entry = self.inner.fallback.get(id).filter(|e| {
            e.version() >= required
                && e.covers(range)
                && e.loaded_at.elapsed() <= config.ttl.mul_f64(1.1) + config.max_stale
        })?;
        self.inner.stats.stale_served.fetch_add(1, Relaxed);
        metrics::counter!("vacancy_cache_stale_served_total").increment(1);
        Some(entry)
    }

    /// Listings over `range` at `now`, in the order of `ids`, unknown ones left out.
    pub async fn views(
        &self,
        ids: &[String],
        range: NightRange,
        now: Timestamp,
        opts: ReadOptions,
    ) -> Result<Vec<View>, StoreError> {
        if opts.bypass_cache || !self.horizon(now).covers(&range) {
            let snapshots = self.inner.store.snapshots(ids, range, now).await?;
            return Ok(snapshots
                .into_iter()
                .map(|s| direct_view(s, range, now))
                .collect());
        }
        let inner = &self.inner;
        let at = Instant::now();
        let asked = opts.min_version.unwrap_or(0);
        // One slot per asked id, in order; L1 first.
        let mut slots: Vec<Option<(Arc<Entry>, Source)>> = Vec::with_capacity(ids.len());
        let mut old = Vec::new();
        for id in ids {
            let hit = inner
                .l1
                .get(id, at)
                .filter(|entry| entry.version() >= asked && entry.covers(&range))
                .and_then(|entry| {
                    if self.within_ttl(&entry, at) {
                        inner.hot.touch(id);
                        if self.is_old(&entry, at) {
                            old.push(id.clone());
                        }
                        Some((entry, Source::L1))
                    } else {
                        inner.fallback.insert(id.clone(), entry);
                        None
                    }
                });
            slots.push(hit);
        }
        self.refresh_many(old);
        let misses = slots.iter().filter(|s| s.is_none()).count();
        let hits = (ids.len() - misses) as u64;
        inner.stats.l1_hits.fetch_add(hits, Relaxed);
        inner.stats.l1_misses.fetch_add(misses as u64, Relaxed);
        metrics::counter!("vacancy_cache_lookups_total", "layer" => "l1", "result" => "hit")
            .increment(hits);
        metrics::counter!("vacancy_cache_lookups_total", "layer" => "l1", "result" => "miss")
            .increment(misses as u64);
        let mut stale = std::collections::HashSet::new();
        if misses > 0 {
            let mut seen = std::collections::HashSet::with_capacity(misses);
            let missing: Vec<String> = ids
                .iter()
                .zip(&slots)
                .filter(|(id, slot)| slot.is_none() && seen.insert(id.as_str()))
                .map(|(id, _)| id.clone())
                .collect();
            let loaded: std::collections::HashMap<String, (Arc<Entry>, Source)> =
                match self.load_many(&missing, now, &opts).await {
                    Ok(loaded) => loaded
                        .into_iter()
                        .map(|(id, entry, source)| (id, (entry, source)))
                        .collect(),
                    Err(err) if err.is_unavailable() => {
                        // Every missing listing needs a usable copy, or the batch cannot be
                        // answered: leaving one out would say it does not exist.
                        let mut copies = std::collections::HashMap::new();
                        for id in &missing {
                            let required = self.required_version(id, &opts);
                            let Some(entry) = self.stale_entry(id, &range, required) else {
                                return Err(err);
                            };
                            stale.insert(id.clone());
                            let origin = entry.origin;
                            copies.insert(id.clone(), (entry, origin));
                        }
                        copies
                    }
                    Err(err) => return Err(err),
                };
            for (id, slot) in ids.iter().zip(slots.iter_mut()) {
                if slot.is_none() {
                    *slot = loaded.get(id).cloned();
                }
            }
        }
        Ok(ids
            .iter()
            .zip(slots)
            .filter_map(|(id, slot)| {
                let (entry, source) = slot?;
                let calendar = entry.calendar_at(&range, now)?;
                Some(View {
                    listing: entry.listing.clone(),
                    calendar,
                    source,
                    stale: stale.contains(id).then(|| entry.loaded_at.elapsed()),
                })
            })
            .collect())
    }

    /// Applies an event: see [`ReadPath::note`].
    pub async fn apply(&self, listing_id: &str, version: i64) {
        self.note(listing_id, version);
    }

    /// Records that `listing_id` has reached `version` (an event, or a local commit): from now
    /// on no copy older than that is served. An older copy in L1 is dropped and reloaded in the
    /// background; a listing not in L1 costs one map update. Synchronous and cheap, for the
    /// store's commit hook.
    pub fn note(&self, listing_id: &str, version: i64) {
        // First the announcement, then the drop: an insert racing this either sees the
        // announcement or is dropped here (see `L1::insert_if_newer`).
        self.inner
            .latest
            .entry_by_ref(listing_id)
            .and_compute_with(|current| match current {
                Some(current) if *current.value() >= version => Op::Nop,
                _ => Op::Put(version),
            });
        if self.inner.l1.invalidate_older(listing_id, version) {
            self.refresh(listing_id.to_owned());
        }
    }

    /// Puts a listing in L1 ahead of any read (pre-warming at start-up, or measuring memory).
    /// An older copy than the one cached is ignored.
    pub async fn prime(&self, snapshot: vacancy_store::ListingSnapshot) {
        self.insert_if_newer(Arc::new(Entry::new(snapshot)));
    }

    /// Drops every copy (after missed events).
    pub fn invalidate_all(&self) {
        self.inner.l1.invalidate_all();
        self.inner.fallback.invalidate_all();
    }

    /// Reloads the hottest listings that are getting old, so they never miss. Runs until
    /// `stop` resolves.
    pub async fn keep_hot(&self, stop: impl std::future::Future<Output = ()>) {
        // The first round comes after one full window of reads, not at once.
        let period = self.inner.config.hot_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            let hot = self.inner.hot.take_top();
            let mut stale = Vec::new();
            for id in hot {
                let old = match self.inner.l1.peek(&id) {
                    Some(entry) => entry.loaded_at.elapsed() > self.inner.config.fresh_for / 2,
                    None => true,
                };
                if old {
                    stale.push(id);
                }
            }
            if stale.is_empty() {
                continue;
            }
            let now = Timestamp::now();
            match self
                .inner
                .store
                .snapshots(&stale, self.horizon(now), now)
                .await
            {
                Ok(snapshots) => {
                    self.inner
                        .stats
                        .refreshes
                        .fetch_add(snapshots.len() as u64, Relaxed);
                    metrics::counter!("vacancy_cache_hot_refreshes_total")
                        .increment(snapshots.len() as u64);
                    for snapshot in snapshots {
                        let entry = Arc::new(Entry::new(snapshot));
                        self.write_l2(&entry);
                        self.insert_if_newer(entry);
                    }
                }
                Err(error) => tracing::warn!(%error, "hot listing refresh failed"),
            }
        }
    }

    /// How many entries L1 holds and their weighed size in bytes (after pending work).
    pub async fn l1_usage(&self) -> (u64, u64) {
        self.inner.l1.usage()
    }

    async fn direct(
        &self,
        id: &str,
        range: NightRange,
        now: Timestamp,
    ) -> Result<Option<View>, StoreError> {
        metrics::counter!("vacancy_cache_lookups_total", "layer" => "bypass", "result" => "database").increment(1);
        Ok(self
            .inner
            .store
            .snapshot(id, range, now)
            .await?
            .map(|s| direct_view(s, range, now)))
    }

    async fn load(&self, id: &str, now: Timestamp, required: i64) -> Result<Arc<Entry>, LoadError> {
        let horizon = self.horizon(now);
        if let Some(l2) = &self.inner.l2 {
            let found = l2
                .get(&key(id))
                .await
                .and_then(|v| Entry::decode(&v.value))
                .filter(|e| e.version() >= required && e.covers(&horizon));
            if let Some(entry) = found {
                self.inner.stats.l2_hits.fetch_add(1, Relaxed);
                metrics::counter!("vacancy_cache_lookups_total", "layer" => "l2", "result" => "hit").increment(1);
                return Ok(Arc::new(entry));
            }
            self.inner.stats.l2_misses.fetch_add(1, Relaxed);
            metrics::counter!("vacancy_cache_lookups_total", "layer" => "l2", "result" => "miss")
                .increment(1);
        }
        self.inner.stats.db_loads.fetch_add(1, Relaxed);
        metrics::counter!("vacancy_cache_db_loads_total").increment(1);
        let snapshot = self
            .inner
            .store
            .snapshot(id, horizon, now)
            .await
            .map_err(LoadError::Store)?;
        let entry = Arc::new(Entry::new(snapshot.ok_or(LoadError::NotFound)?));
        self.inner.fallback.invalidate(id);
        self.write_l2(&entry);
        Ok(entry)
    }

    async fn load_many(
        &self,
        ids: &[String],
        now: Timestamp,
        opts: &ReadOptions,
    ) -> Result<Vec<(String, Arc<Entry>, Source)>, StoreError> {
        let horizon = self.horizon(now);
        let mut out = Vec::with_capacity(ids.len());
        let mut remaining: Vec<String> = ids.to_vec();
        if let Some(l2) = &self.inner.l2 {
            let keys: Vec<String> = ids.iter().map(|id| key(id)).collect();
            let values = l2.get_many(&keys).await;
            remaining.clear();
            for (id, value) in ids.iter().zip(values) {
                let required = self.required_version(id, opts);
                match value
                    .and_then(|v| Entry::decode(&v.value))
                    .filter(|e| e.version() >= required && e.covers(&horizon))
                {
                    Some(entry) => {
                        let entry = Arc::new(entry);
                        self.insert_if_newer(entry.clone());
                        out.push((id.clone(), entry, Source::L2));
                    }
                    None => remaining.push(id.clone()),
                }
            }
            self.inner
                .stats
                .l2_hits
                .fetch_add(out.len() as u64, Relaxed);
            self.inner
                .stats
                .l2_misses
                .fetch_add(remaining.len() as u64, Relaxed);
            metrics::counter!("vacancy_cache_lookups_total", "layer" => "l2", "result" => "hit")
                .increment(out.len() as u64);
            metrics::counter!("vacancy_cache_lookups_total", "layer" => "l2", "result" => "miss")
                .increment(remaining.len() as u64);
        }
        if remaining.is_empty() {
            return Ok(out);
        }
        self.inner
            .stats
            .db_loads
            .fetch_add(remaining.len() as u64, Relaxed);
        metrics::counter!("vacancy_cache_db_loads_total").increment(remaining.len() as u64);
        for snapshot in self.inner.store.snapshots(&remaining, horizon, now).await? {
            let entry = Arc::new(Entry::new(snapshot));
            self.write_l2(&entry);
            self.insert_if_newer(entry.clone());
            out.push((entry.listing.id.clone(), entry, Source::Database));
        }
        Ok(out)
    }

    /// Puts `entry` in L1 unless a copy of the same or a newer version is there, or a newer
    /// version was announced.
    fn insert_if_newer(&self, entry: Arc<Entry>) -> Inserted {
        let inner = &self.inner;
        inner.fallback.invalidate(&entry.listing.id);
        let listing = entry.listing.clone();
        inner.l1.insert_if_newer(entry, || {
            inner.latest.get(listing.id.as_str()).unwrap_or(i64::MIN)
        })
    }

    /// Stale-while-revalidate for one listing: one background refresh at a time.
    fn refresh(&self, id: String) {
        self.refresh_many(vec![id]);
    }

    /// Reloads `ids` in the background, in one read, skipping those already being refreshed.
    fn refresh_many(&self, mut ids: Vec<String>) {
        let inner = &self.inner;
        ids.retain(|id| {
            let mut claimed = false;
            inner
                .refreshing
                .entry_by_ref(id.as_str())
                .or_insert_with(|| claimed = true);
            claimed
        });
        if ids.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            ids.iter().for_each(|id| inner.refreshing.invalidate(id));
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let now = Timestamp::now();
            match this
                .inner
                .store
                .snapshots(&ids, this.horizon(now), now)
                .await
            {
                Ok(snapshots) => {
                    let found = snapshots.len();
                    this.inner.stats.refreshes.fetch_add(found as u64, Relaxed);
                    metrics::counter!("vacancy_cache_refreshes_total").increment(found as u64);
                    let mut gone: std::collections::HashSet<&str> =
                        ids.iter().map(String::as_str).collect();
                    let mut entries = Vec::with_capacity(found);
                    for snapshot in snapshots {
                        let entry = Arc::new(Entry::new(snapshot));
                        gone.remove(entry.listing.id.as_str());
                        entries.push(entry);
                    }
                    // Deleted meanwhile: drop the copy.
                    gone.into_iter().for_each(|id| this.inner.l1.invalidate(id));
                    for entry in entries {
                        this.write_l2(&entry);
                        this.insert_if_newer(entry);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, listings = ids.len(), "background refresh failed")
                }
            }
            ids.iter()
                .for_each(|id| this.inner.refreshing.invalidate(id));
        });
    }

    /// Writes the entry to L2 in the background; L2 keeps the newest version.
    fn write_l2(&self, entry: &Arc<Entry>) {
        let Some(l2) = self.inner.l2.clone() else {
            return;
        };
        let entry = entry.clone();
        let ttl = self.inner.config.l2_ttl;
        tokio::spawn(async move {
            let bytes = entry.encode();
            l2.put(&key(&entry.listing.id), entry.version(), &bytes, ttl)
                .await;
        });
    }
}

fn direct_view(s: vacancy_store::ListingSnapshot, range: NightRange, _now: Timestamp) -> View {
    let _ = range;
    View {
        listing: Arc::new(s.listing),
        calendar: s.calendar,
        source: Source::Database,
        stale: None,
    }
}
