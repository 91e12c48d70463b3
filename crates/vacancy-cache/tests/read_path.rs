//! The read path over a real database: misses coalesce, copies never go back in version, and
//! hold expiry is applied to cached calendars without reloading them.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use vacancy_cache::{CacheConfig, ReadOptions, ReadPath, Source};
use vacancy_core::{ListingRules, NightRange, RulesInput, StayRequest, Zone};
use vacancy_store::testing::fresh_database_url;
use vacancy_store::{Backend, NewListing, StayClaim, Store, StoreOptions};

async fn store(backend: Backend) -> Store {
    let url = fresh_database_url(backend).await.expect("test database");
    let store = Store::connect(&StoreOptions::new(url))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// Real time: the read path's horizon starts from today, so the test's stays are near it.
fn now() -> Timestamp {
    Timestamp::now()
}

fn nights(from_today: i32, len: i32) -> NightRange {
    let today = vacancy_core::day_number(jiff::tz::TimeZone::UTC.to_datetime(now()).date());
    let start = vacancy_core::from_day_number(today + from_today);
    NightRange::new(
        start,
        vacancy_core::from_day_number(today + from_today + len),
    )
    .expect("range")
}

async fn listing(store: &Store, units: u32) -> String {
    let rules = ListingRules::new(RulesInput {
        units,
        min_nights: 1,
        max_nights: 30,
        advance_notice_hours: 0,
        booking_window_days: 365,
    })
    .expect("rules");
    let zone = Zone::new("UTC").expect("zone");
    let new = NewListing {
        id: None,
        host_id: "h".into(),
        zone,
        rules,
    };
    store
        .create_listing(new, now(), None)
        .await
        .expect("listing")
        .id
}

fn stay(range: NightRange) -> StayClaim {
    StayClaim {
        request: StayRequest {
            stay: range,
            units: 1,
        },
        guest_id: "g".into(),
    }
}

async fn fifty_concurrent_misses_load_once(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let reads = ReadPath::new(store, None, CacheConfig::default());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (reads, id) = (reads.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            reads
                .view(&id, nights(10, 3), now(), ReadOptions::default())
                .await
        }));
    }
    for task in tasks {
        let view = task
            .await
            .expect("task")
            .expect("read")
            .expect("listing exists");
        assert_eq!(view.calendar.nights().count(), 3);
    }
    let stats = reads.stats();
    assert_eq!(stats.db_loads, 1, "{stats:?}");
    let again = reads
        .view(&id, nights(20, 2), now(), ReadOptions::default())
        .await
        .expect("read");
    assert_eq!(again.expect("listing").source, Source::L1);
    assert_eq!(reads.stats().db_loads, 1);
}

async fn a_newer_version_is_never_answered_from_an_older_copy(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let reads = ReadPath::new(store.clone(), None, CacheConfig::default());
    let range = nights(10, 3);
    let before = reads
        .view(&id, range, now(), ReadOptions::default())
        .await
        .expect("read")
        .expect("listing");
    assert_eq!(before.calendar.short_nights(&range, 1), vec![]);
    let booking = store
        .book(&id, &stay(range), now(), None)
        .await
        .expect("book");
    let version = booking.listing_version.expect("write returns its version");
    // Without news of the write the copy is still served (that is what the event path fixes)...
    let cached = reads
        .view(&id, range, now(), ReadOptions::default())
        .await
        .expect("read")
        .expect("listing");
    assert_eq!(cached.source, Source::L1);
    // ...but a read asking for the write's version reloads,
    let asked = ReadOptions {
        min_version: Some(version),
        ..ReadOptions::default()
    };
    let fresh = reads
        .view(&id, range, now(), asked)
        .await
        .expect("read")
        .expect("listing");
    assert!(fresh.listing.version >= version);
    assert_eq!(fresh.calendar.short_nights(&range, 1).len(), 3);
    // and so does every read once the version is known (an event or a local commit).
    let id2 = listing(&store, 1).await;
    reads
        .view(&id2, range, now(), ReadOptions::default())
        .await
        .expect("warm");
    let b2 = store
        .book(&id2, &stay(range), now(), None)
        .await
        .expect("book");
    reads
        .apply(&id2, b2.listing_version.expect("version"))
        .await;
    let after = reads
        .view(&id2, range, now(), ReadOptions::default())
        .await
        .expect("read")
        .expect("listing");
    assert_eq!(
        after.calendar.short_nights(&range, 1).len(),
        3,
        "no copy older than the announced version"
    );
}

async fn an_expired_hold_stops_counting_in_a_cached_calendar(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let reads = ReadPath::new(store.clone(), None, CacheConfig::default());
    let range = nights(10, 2);
    let expires = now()
        .checked_add(SignedDuration::from_secs(60))
        .expect("time");
    store
        .place_hold(&id, &stay(range), expires, now(), None)
        .await
        .expect("hold");
    let held = reads
        .view(&id, range, now(), ReadOptions::default())
        .await
        .expect("read")
        .expect("listing");
    assert_eq!(held.calendar.short_nights(&range, 1).len(), 2);
    let later = expires
        .checked_add(SignedDuration::from_secs(1))
        .expect("time");
    let loads = reads.stats().db_loads;
    let freed = reads
        .view(&id, range, later, ReadOptions::default())
        .await
        .expect("read")
        .expect("listing");
    assert_eq!(freed.source, Source::L1, "served from the same copy");
    assert_eq!(
        freed.calendar.short_nights(&range, 1),
        vec![],
        "the expired hold no longer counts"
    );
    assert_eq!(reads.stats().db_loads, loads);
}

async fn an_old_copy_is_served_while_one_refresh_runs(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let config = CacheConfig {
        fresh_for: Duration::from_millis(1),
        ..CacheConfig::default()
    };
    let reads = ReadPath::new(store.clone(), None, config);
    let range = nights(5, 1);
    reads
        .view(&id, range, now(), ReadOptions::default())
        .await
        .expect("warm");
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .book(&id, &stay(range), now(), None)
        .await
        .expect("book");
    let stale = reads
        .view(&id, range, now(), ReadOptions::default())
        .await
        .expect("read")
        .expect("listing");
    assert_eq!(stale.source, Source::L1, "an old copy is answered at once");
    // The background refresh brings the booking in (bounded wait).
    let mut refreshed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let view = reads
            .view(&id, range, now(), ReadOptions::default())
            .await
            .expect("read")
            .expect("listing");
        if view.source == Source::L1 && !view.calendar.short_nights(&range, 1).is_empty() {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "the stale copy was refreshed in the background");
    assert!(reads.stats().refreshes >= 1, "{:?}", reads.stats());
}

async fn a_refreshed_copy_counts_as_fresh_again(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let config = CacheConfig {
        fresh_for: Duration::from_millis(300),
        ..CacheConfig::default()
    };
    let reads = ReadPath::new(store.clone(), None, config);
    let range = nights(5, 1);
    let opts = ReadOptions::default();
    reads.view(&id, range, now(), opts).await.expect("warm");
    tokio::time::sleep(Duration::from_millis(350)).await;
    // Old: served, and refreshed once in the background (nothing changed, same version).
    reads.view(&id, range, now(), opts).await.expect("read");
    for _ in 0..100 {
        if reads.stats().refreshes >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reads.stats().refreshes, 1);
    // The reloaded copy replaced the old one: further reads do not refresh it again.
    for _ in 0..20 {
        let view = reads.view(&id, range, now(), opts).await.expect("read");
        assert_eq!(view.expect("listing").source, Source::L1);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(reads.stats().refreshes, 1, "{:?}", reads.stats());
}

async fn a_batch_loads_its_misses_in_one_go_and_keeps_them(backend: Backend) {
    let store = store(backend).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(listing(&store, 2).await);
    }
    let reads = ReadPath::new(store, None, CacheConfig::default());
    let views = reads
        .views(&ids, nights(3, 2), now(), ReadOptions::default())
        .await
        .expect("batch");
    assert_eq!(views.len(), 20);
    assert!(views.iter().all(|v| v.source == Source::Database));
    let views = reads
        .views(&ids, nights(3, 2), now(), ReadOptions::default())
        .await
        .expect("batch");
    assert!(views.iter().all(|v| v.source == Source::L1));
    let stats = reads.stats();
    assert_eq!((stats.db_loads, stats.l1_hits), (20, 20), "{stats:?}");
    let bypass = ReadOptions {
        bypass_cache: true,
        ..ReadOptions::default()
    };
    let direct = reads
        .views(&ids, nights(3, 2), now(), bypass)
        .await
        .expect("batch");
    assert!(direct.iter().all(|v| v.source == Source::Database));
}

async fn hot_listings_are_refreshed_without_being_read(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let config = CacheConfig {
        fresh_for: Duration::from_millis(40),
        hot_interval: Duration::from_millis(50),
        ..CacheConfig::default()
    };
    let reads = ReadPath::new(store, None, config);
    for _ in 0..64 {
        reads
            .view(&id, nights(3, 2), now(), ReadOptions::default())
            .await
            .expect("read");
    }
    let stop = tokio::time::sleep(Duration::from_millis(400));
    reads.keep_hot(stop).await;
    // Read so often that it counted as hot, it was reloaded ahead of its expiry by the
    // refresher alone (no read ran meanwhile).
    assert!(reads.stats().refreshes >= 1, "{:?}", reads.stats());
    let view = reads
        .view(&id, nights(3, 2), now(), ReadOptions::default())
        .await
        .expect("read");
    assert_eq!(view.expect("listing").source, Source::L1);
}

/// A copy cached over other nights (as a refresh on another horizon may leave) is never
/// answered from for nights it does not cover: the listing exists, so the read finds it.
async fn a_copy_that_does_not_cover_the_nights_is_not_answered_from(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let reads = ReadPath::new(store.clone(), None, CacheConfig::default());
    let short = store
        .snapshot(&id, nights(0, 3), now())
        .await
        .expect("read")
        .expect("listing");
    reads.prime(short).await;
    let view = reads
        .view(&id, nights(100, 2), now(), ReadOptions::default())
        .await
        .expect("read");
    let view = view.expect("an existing listing is found");
    assert_eq!(view.calendar.nights().count(), 2);
}

async fn an_expired_copy_answers_marked_stale_while_the_database_is_down(backend: Backend) {
    let store = store(backend).await;
    let (cached, never_read, written) = (
        listing(&store, 1).await,
        listing(&store, 1).await,
        listing(&store, 1).await,
    );
    let config = CacheConfig {
        ttl: Duration::from_millis(100),
        fresh_for: Duration::from_millis(100),
        ..CacheConfig::default()
    };
    let reads = ReadPath::new(store.clone(), None, config);
    let range = nights(10, 3);
    let opts = ReadOptions::default();
    for id in [&cached, &written] {
        let view = reads.view(id, range, now(), opts).await.expect("read");
        assert!(view.expect("listing").stale.is_none());
    }
    // A later version is announced for one listing: its old copy must not be answered.
    reads.note(&written, 2);
    tokio::time::sleep(Duration::from_millis(250)).await;
    store.close().await;

    let view = reads
        .view(&cached, range, now(), opts)
        .await
        .expect("an expired copy answers while the database is down")
        .expect("listing");
    let age = view.stale.expect("marked stale");
    assert!(age >= Duration::from_millis(100), "{age:?}");
    assert_eq!(view.calendar.nights().count(), 3);
    // Batches too, as long as every listing has a usable copy.
    let views = reads
        .views(std::slice::from_ref(&cached), range, now(), opts)
        .await
        .expect("batch from stale copies");
    assert!(views[0].stale.is_some());
    assert_eq!(reads.stats().stale_served, 2);
    // No copy, or only one older than an announced version, or min_version asked above it:
    // the error stands.
    for (id, opts) in [
        (&never_read, opts),
        (&written, opts),
        (
            &cached,
            ReadOptions {
                min_version: Some(2),
                ..opts
            },
        ),
    ] {
        let err = reads
            .view(id, range, now(), opts)
            .await
            .expect_err("nothing usable to answer from");
        assert!(err.is_unavailable(), "{err}");
    }
    let err = reads
        .views(&[cached.clone(), never_read.clone()], range, now(), opts)
        .await
        .expect_err("a batch with one unanswerable listing fails as a whole");
    assert!(err.is_unavailable());
}

#[test]
fn eighteen_months_of_a_one_unit_listing_weigh_a_few_hundred_bytes() {
    // The L1 budget in PRODUCT.md: 1 million listings' 18-month calendars in 400 MiB, i.e.
    // about 419 bytes each, everything included.
    let _ = Arc::new(());
    let cal = vacancy_core::Calendar::empty(nights(-2, 550), 1);
    assert!(cal.heap_bytes() <= 80, "{}", cal.heap_bytes());
}

/// Copies that grow old together are all reloaded, also those read while earlier ones are
/// being reloaded, and each exactly once; every read meanwhile is answered from L1 at once.
async fn many_old_copies_are_all_refreshed_once(backend: Backend) {
    let store = store(backend).await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        ids.push(listing(&store, 1).await);
    }
    let config = CacheConfig {
        // Long enough that a reloaded copy is still young (at least 3 s) at the last check.
        fresh_for: Duration::from_secs(4),
        ..CacheConfig::default()
    };
    let reads = ReadPath::new(store.clone(), None, config);
    let range = nights(5, 1);
    let opts = ReadOptions::default();
    reads.views(&ids, range, now(), opts).await.expect("warm");
    tokio::time::sleep(Duration::from_millis(4050)).await;
    // Past their soft age: read one by one, spread over several gathering windows, and once
    // more in a batch.
    for id in &ids {
        let view = reads.view(id, range, now(), opts).await.expect("read");
        assert_eq!(view.expect("listing").source, Source::L1);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let batch = reads.views(&ids, range, now(), opts).await.expect("batch");
    assert!(batch.iter().all(|v| v.source == Source::L1));
    for _ in 0..200 {
        if reads.stats().refreshes >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(reads.stats().refreshes, 60, "{:?}", reads.stats());
    // Young again: reading them all refreshes nothing more.
    reads.views(&ids, range, now(), opts).await.expect("batch");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(reads.stats().refreshes, 60, "{:?}", reads.stats());
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(vacancy_store::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(vacancy_store::Backend::Postgres).await })* }
    };
}

on_both_backends!(
    many_old_copies_are_all_refreshed_once,
    a_refreshed_copy_counts_as_fresh_again,
    a_copy_that_does_not_cover_the_nights_is_not_answered_from,
    hot_listings_are_refreshed_without_being_read,
    fifty_concurrent_misses_load_once,
    a_newer_version_is_never_answered_from_an_older_copy,
    an_expired_hold_stops_counting_in_a_cached_calendar,
    an_old_copy_is_served_while_one_refresh_runs,
    a_batch_loads_its_misses_in_one_go_and_keeps_them,
    an_expired_copy_answers_marked_stale_while_the_database_is_down,
);
