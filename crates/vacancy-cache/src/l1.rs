//! L1: the in-process map of cached listings, built for the read path's hot loop.
//!
//! A hit is one fast hash, one shard read lock, one lookup and one `Arc` clone: no allocation,
//! no queue of recorded reads, no maintenance on the reader's time. Writers lock one shard.
//!
//! Bounded by weight (the bytes entries really keep): an insert that takes L1 past its budget
//! evicts by sampled LRU — of eight slots picked at random, the one read longest ago, a copy past
//! its lifetime first — as Redis does, so eviction costs the same whatever L1 holds. A copy past
//! its lifetime is never returned, and is the first to go.
//!
//! This module keeps copies and weighs them; it never judges whether a copy is fresh enough to
//! answer from (the read path does) and never talks to the store.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::entry::Entry;

/// Slots looked at to pick one to evict.
const EVICTION_SAMPLE: usize = 8;

type Hasher = foldhash::fast::RandomState;

pub(crate) struct L1 {
    shards: Box<[RwLock<Shard>]>,
    hasher: Hasher,
    max_bytes: u64,
    used: AtomicU64,
    /// Longest a copy may stay at all, from when it was loaded.
    lifetime: Duration,
    /// Reference point of the coarse read times kept per slot.
    epoch: Instant,
    /// State of the cheap random generator that picks eviction samples.
    dice: AtomicU64,
}

#[derive(Default)]
struct Shard {
    index: HashMap<Arc<str>, usize, Hasher>,
    slots: Vec<Slot>,
}

struct Slot {
    key: Arc<str>,
    entry: Arc<Entry>,
    weight: u64,
    /// Seconds since `epoch` of the last read (coarse on purpose: a read writes only when the
    /// second changed, so hot slots do not bounce cache lines between cores).
    read_at: AtomicU32,
}

/// What an insert found in L1 for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// The copy went in.
    Put,
    /// A copy of the same or a newer version was there and stays.
    KeptNewer,
    /// The copy is older than the newest version announced for its listing: left out.
    Outdated,
}

impl L1 {
    pub(crate) fn new(max_bytes: u64, lifetime: Duration) -> Self {
        // One shard per MiB of budget, up to 64: enough to keep two cores from contending, and
        // few enough in a small L1 that every shard holds many copies (eviction samples shards
        // first, so a nearly empty shard would be sampled out of proportion).
        let count = (max_bytes >> 20).clamp(1, 64) as usize;
        let shards = (0..count).map(|_| RwLock::new(Shard::default())).collect();
        Self {
            shards,
            hasher: Hasher::default(),
            max_bytes,
            used: AtomicU64::new(0),
            lifetime,
            epoch: Instant::now(),
            dice: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard> {
        let hash = self.hasher.hash_one(key);
        // The high bits: the map inside the shard uses the low ones.
        &self.shards[(hash >> 58) as usize % self.shards.len()]
    }

    fn seconds(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.epoch).as_secs() as u32
    }

    fn alive(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.loaded_at) <= self.lifetime
    }

    /// The copy of `key`, unless there is none or it is past its lifetime. Marks it read.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Arc<Entry>> {
        let shard = self.shard(key).read();
        let slot = &shard.slots[*shard.index.get(key)?];
        if !self.alive(&slot.entry, now) {
            return None;
        }
        let second = self.seconds(now);
        if slot.read_at.load(Relaxed) != second {
            slot.read_at.store(second, Relaxed);
        }
        Some(slot.entry.clone())
    }

    /// The copy of `key` without marking it read (for background work), even past its lifetime.
    pub(crate) fn peek(&self, key: &str) -> Option<Arc<Entry>> {
        let shard = self.shard(key).read();
        shard.index.get(key).map(|&i| shard.slots[i].entry.clone())
    }

    /// Puts `entry` in unless a copy of the same or a newer version (still alive) is there, or
    /// `entry` is older than `floor()` (the newest version announced for its listing), then
    /// evicts while L1 is over its budget.
    ///
    /// `floor` is asked under the shard's lock. Together with [`L1::invalidate_older`], which
    /// takes the same lock after the announcement is recorded, no copy older than an announced
    /// version can stay in L1, however a load and an event interleave.
    pub(crate) fn insert_if_newer(
        &self,
        entry: Arc<Entry>,
        floor: impl FnOnce() -> i64,
    ) -> Inserted {
        let now = Instant::now();
        let weight = u64::from(entry.weight()) + entry.listing.id.len() as u64;
        let outcome = {
            let mut shard = self.shard(&entry.listing.id).write();
            let shard = &mut *shard;
            if entry.version() < floor() {
                return Inserted::Outdated;
            }
            match shard.index.get(entry.listing.id.as_str()) {
                Some(&i) => {
                    let slot = &mut shard.slots[i];
                    // A reload of the same version replaces the copy it refreshes, so the
                    // copy's age starts again (otherwise every read would refresh it anew).
                    let current = &slot.entry;
                    let newer = (current.version(), current.loaded_at)
                        >= (entry.version(), entry.loaded_at);
                    if newer && self.alive(current, now) {
                        Inserted::KeptNewer
                    } else {
                        self.used.fetch_add(weight, Relaxed);
                        self.used.fetch_sub(slot.weight, Relaxed);
                        slot.entry = entry;
                        slot.weight = weight;
                        Inserted::Put
                    }
                }
                None => {
                    let key: Arc<str> = Arc::from(entry.listing.id.as_str());
                    shard.index.insert(key.clone(), shard.slots.len());
                    shard.slots.push(Slot {
                        key,
                        entry,
                        weight,
                        read_at: AtomicU32::new(self.seconds(now)),
                    });
                    self.used.fetch_add(weight, Relaxed);
                    Inserted::Put
                }
            }
        };
        self.evict_while_over(now);
        outcome
    }

    /// Drops the copy of `key`, if any.
    pub(crate) fn invalidate(&self, key: &str) {
        let mut shard = self.shard(key).write();
        if let Some(i) = shard.index.get(key).copied() {
            self.remove_at(&mut shard, i);
        }
    }

    /// Drops the copy of `key` if it is older than `version`; says whether it did.
    pub(crate) fn invalidate_older(&self, key: &str, version: i64) -> bool {
        let mut shard = self.shard(key).write();
        match shard.index.get(key).copied() {
            Some(i) if shard.slots[i].entry.version() < version => {
                self.remove_at(&mut shard, i);
                true
            }
            _ => false,
        }
    }

    /// Drops `key` only if L1 still holds exactly `entry` (not a newer copy put in meanwhile).
    pub(crate) fn invalidate_if_same(&self, key: &str, entry: &Arc<Entry>) {
        let mut shard = self.shard(key).write();
        if let Some(i) = shard.index.get(key).copied()
            && Arc::ptr_eq(&shard.slots[i].entry, entry)
        {
            self.remove_at(&mut shard, i);
        }
    }

    pub(crate) fn invalidate_all(&self) {
        for shard in &self.shards {
            let mut shard = shard.write();
            let freed: u64 = shard.slots.iter().map(|s| s.weight).sum();
            shard.slots.clear();
            shard.index.clear();
            self.used.fetch_sub(freed, Relaxed);
        }
    }

    /// Copies held (alive or not yet evicted) and their weight in bytes.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let entries = self
            .shards
            .iter()
            .map(|s| s.read().slots.len() as u64)
            .sum();
        (entries, self.used.load(Relaxed))
    }

    fn remove_at(&self, shard: &mut Shard, i: usize) {
        let slot = shard.slots.swap_remove(i);
        shard.index.remove(&slot.key);
        if let Some(moved) = shard.slots.get(i) {
            shard.index.insert(moved.key.clone(), i);
        }
        self.used.fetch_sub(slot.weight, Relaxed);
    }

    fn roll(&self) -> u64 {
        // xorshift64*: plenty for picking samples, and lock-free.
        let mut x = self.dice.load(Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.dice.store(x, Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn evict_while_over(&self, now: Instant) {
        // Bounded: each round evicts one copy unless its samples all found empty shards.
        for _ in 0..64 {
            if self.used.load(Relaxed) <= self.max_bytes {
                return;
            }
            self.evict_one(now);
        }
    }

    /// Evicts the coldest of a few copies sampled across all shards: one past its lifetime
    /// first, else the one read longest ago.
    fn evict_one(&self, now: Instant) {
        let mut coldest: Option<(usize, Arc<str>, (bool, u32))> = None;
        for _ in 0..EVICTION_SAMPLE {
            let s = self.roll() as usize % self.shards.len();
            let shard = self.shards[s].read();
            if shard.slots.is_empty() {
                continue;
            }
            let slot = &shard.slots[self.roll() as usize % shard.slots.len()];
            let rank = (self.alive(&slot.entry, now), slot.read_at.load(Relaxed));
            if coldest.as_ref().is_none_or(|(_, _, best)| rank < *best) {
                coldest = Some((s, slot.key.clone(), rank));
            }
        }
        if let Some((s, key, _)) = coldest {
            let mut shard = self.shards[s].write();
            if let Some(i) = shard.index.get(&*key).copied() {
                self.remove_at(&mut shard, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vacancy_core::{Calendar, ListingRules, NightRange, RulesInput, Zone};
    use vacancy_store::{Listing, ListingSnapshot};

    fn entry(id: &str, version: i64) -> Arc<Entry> {
        let rules = ListingRules::new(RulesInput {
            units: 1,
            min_nights: 1,
            max_nights: 30,
            advance_notice_hours: 0,
            booking_window_days: 365,
        })
        .expect("rules");
        let range = NightRange::new(
            "2030-01-01".parse().expect("date"),
            "2031-07-01".parse().expect("date"),
        )
        .expect("range");
        let now = jiff::Timestamp::UNIX_EPOCH;
        Arc::new(Entry::new(ListingSnapshot {
            listing: Listing {
                id: id.to_owned(),
                host_id: "h".into(),
                zone: Zone::new("UTC").expect("zone"),
                rules,
                version,
                created_at: now,
                updated_at: now,
            },
            calendar: Calendar::empty(range, 1),
            holds: Vec::new(),
        }))
    }

    #[test]
    fn a_newer_copy_replaces_an_older_one_and_never_the_reverse() {
        let l1 = L1::new(1 << 20, Duration::from_secs(60));
        let first = entry("a", 2);
        let reloaded = entry("a", 2);
        assert_eq!(l1.insert_if_newer(first.clone(), || 0), Inserted::Put);
        assert_eq!(l1.insert_if_newer(entry("a", 1), || 0), Inserted::KeptNewer);
        // A reload of the same version replaces the older load, never the reverse.
        assert_eq!(l1.insert_if_newer(reloaded.clone(), || 0), Inserted::Put);
        assert_eq!(l1.insert_if_newer(first, || 0), Inserted::KeptNewer);
        assert!(Arc::ptr_eq(&l1.peek("a").expect("cached"), &reloaded));
        assert_eq!(l1.insert_if_newer(entry("a", 3), || 0), Inserted::Put);
        let now = Instant::now();
        assert_eq!(l1.get("a", now).map(|e| e.version()), Some(3));
        assert!(l1.get("b", now).is_none());
        assert_eq!(l1.usage().0, 1);
        assert_eq!(l1.insert_if_newer(entry("b", 4), || 5), Inserted::Outdated);
        assert!(l1.peek("b").is_none());
        assert!(!l1.invalidate_older("a", 3));
        assert!(l1.invalidate_older("a", 4));
        assert!(l1.peek("a").is_none());
    }

    #[test]
    fn weight_is_accounted_and_the_budget_holds() {
        let one = u64::from(entry("listing-00000", 1).weight()) + 13;
        let l1 = L1::new(one * 100, Duration::from_secs(60));
        for i in 0..1000 {
            l1.insert_if_newer(entry(&format!("listing-{i:05}"), 1), || 0);
        }
        let (entries, bytes) = l1.usage();
        assert!(bytes <= one * 100, "{bytes} > {}", one * 100);
        assert!((90..=100).contains(&entries), "{entries} entries");
        l1.invalidate_all();
        assert_eq!(l1.usage(), (0, 0));
    }

    #[test]
    fn eviction_prefers_copies_not_read_lately() {
        let one = u64::from(entry("listing-00000", 1).weight()) + 13;
        let l1 = L1::new(one * 200, Duration::from_secs(3600));
        for i in 0..100 {
            l1.insert_if_newer(entry(&format!("listing-{i:05}"), 1), || 0);
        }
        // The first hundred were read "later" than anything inserted after them.
        let later = Instant::now() + Duration::from_secs(5);
        for i in 0..100 {
            assert!(l1.get(&format!("listing-{i:05}"), later).is_some());
        }
        for i in 100..2000 {
            l1.insert_if_newer(entry(&format!("listing-{i:05}"), 1), || 0);
        }
        let kept = (0..100)
            .filter(|i| l1.get(&format!("listing-{i:05}"), later).is_some())
            .count();
        // A random sample of 5 rarely holds none of the 1,900 colder copies.
        assert!(
            kept >= 80,
            "only {kept} of the 100 recently read copies kept"
        );
    }

    #[test]
    fn removal_keeps_the_index_consistent() {
        let l1 = L1::new(1 << 24, Duration::from_secs(60));
        for i in 0..50 {
            l1.insert_if_newer(entry(&format!("k{i}"), 1), || 0);
        }
        for i in (0..50).step_by(3) {
            l1.invalidate(&format!("k{i}"));
        }
        let now = Instant::now();
        for i in 0..50 {
            let present = l1.get(&format!("k{i}"), now).map(|e| e.listing.id.clone());
            if i % 3 == 0 {
                assert_eq!(present, None);
            } else {
                assert_eq!(present, Some(format!("k{i}")));
            }
        }
        let kept = l1.peek("k1").expect("present");
        l1.insert_if_newer(entry("k1", 2), || 0);
        l1.invalidate_if_same("k1", &kept);
        assert_eq!(l1.peek("k1").map(|e| e.version()), Some(2));
    }

    #[test]
    fn a_copy_past_its_lifetime_is_not_returned() {
        let l1 = L1::new(1 << 20, Duration::from_secs(10));
        l1.insert_if_newer(entry("a", 1), || 0);
        assert!(
            l1.get("a", Instant::now() + Duration::from_secs(11))
                .is_none()
        );
        assert!(l1.peek("a").is_some());
    }
}
