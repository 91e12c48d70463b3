//! Store-level tests of the invariant on both backends: the ledger refuses overbooking even
//! when the application's own check is bypassed, and claims/ledger stay consistent.

use jiff::Timestamp;
use vacancy_core::{ListingRules, NightRange, RulesInput, StayRequest, Zone};
use vacancy_store::testing::fresh_database_url;
use vacancy_store::{Backend, NewListing, StayClaim, Store, StoreError, StoreOptions};

async fn store_at(backend: Backend) -> (Store, String) {
    let url = fresh_database_url(backend).await.expect("test database");
    let store = Store::connect(&StoreOptions::new(url.clone()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, url)
}

async fn store(backend: Backend) -> Store {
    store_at(backend).await.0
}

fn now() -> Timestamp {
    "2030-01-01T12:00:00Z".parse().expect("timestamp")
}

fn range(a: &str, b: &str) -> NightRange {
    NightRange::new(a.parse().expect("date"), b.parse().expect("date")).expect("range")
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
    let new = NewListing {
        id: None,
        host_id: "host-1".into(),
        zone: Zone::new("Europe/Lisbon").expect("zone"),
        rules,
    };
    store
        .create_listing(new, now(), None)
        .await
        .expect("create listing")
        .id
}

fn stay(nights: NightRange, units: u16) -> StayClaim {
    StayClaim {
        request: StayRequest {
            stay: nights,
            units,
        },
        guest_id: "guest-1".into(),
    }
}

async fn ledger_refuses_usage_beyond_units(backend: Backend) {
    let (store, url) = store_at(backend).await;
    let id = listing(&store, 2).await;
    store
        .book(
            &id,
            &stay(range("2030-02-01", "2030-02-03"), 2),
            now(),
            None,
        )
        .await
        .expect("book");
    let third = store
        .book(
            &id,
            &stay(range("2030-02-02", "2030-02-04"), 1),
            now(),
            None,
        )
        .await;
    assert!(
        matches!(third, Err(StoreError::Conflict { ref nights }) if nights.len() == 1),
        "{third:?}"
    );
    // Bypass every application check and write straight into the ledger: the database refuses.
    let raw_pool = sqlx::AnyPool::connect(&url).await.expect("raw connection");
    let raw = sqlx::query("UPDATE night_usage SET used = used + 1 WHERE listing_id = $1")
        .bind(&id)
        .execute(&raw_pool)
        .await;
    assert!(
        raw.is_err(),
        "the CHECK constraint must refuse used > capacity"
    );
    assert!(store.audit(now()).await.expect("audit").is_empty());
}

async fn expired_holds_free_their_nights(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let nights = range("2030-03-01", "2030-03-04");
    let expires = now()
        .checked_add(jiff::SignedDuration::from_mins(15))
        .expect("time");
    let hold = store
        .place_hold(&id, &stay(nights, 1), expires, now(), None)
        .await
        .expect("hold");
    let during = now()
        .checked_add(jiff::SignedDuration::from_mins(14))
        .expect("time");
    assert!(matches!(
        store.book(&id, &stay(nights, 1), during, None).await,
        Err(StoreError::Conflict { .. })
    ));
    let after = now()
        .checked_add(jiff::SignedDuration::from_mins(15))
        .expect("time");
    let booking = store
        .book(&id, &stay(nights, 1), after, None)
        .await
        .expect("expired hold frees nights");
    assert_eq!(booking.nights, nights);
    let confirm = store.confirm_hold(&hold.id, after, None).await;
    assert!(
        matches!(
            confirm,
            Err(StoreError::WrongState {
                state: vacancy_store::ClaimState::Expired,
                ..
            })
        ),
        "{confirm:?}"
    );
    assert!(store.audit(after).await.expect("audit").is_empty());
}

async fn sweeper_releases_expired_holds(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 1).await;
    let expires = now()
        .checked_add(jiff::SignedDuration::from_mins(1))
        .expect("time");
    store
        .place_hold(
            &id,
            &stay(range("2030-03-01", "2030-03-04"), 1),
            expires,
            now(),
            None,
        )
        .await
        .expect("hold");
    assert_eq!(store.expire_holds(now(), 100).await.expect("sweep"), 0);
    assert_eq!(store.expire_holds(expires, 100).await.expect("sweep"), 1);
    assert_eq!(store.expire_holds(expires, 100).await.expect("sweep"), 0);
    let events = store.outbox_after(0, 100).await.expect("outbox");
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["listing.created", "hold.placed", "holds.expired"]
    );
    let versions: Vec<i64> = events.iter().map(|(_, e)| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
}

/// One relay at a time: the lease is exclusive until it lapses, renewable by its holder, and
/// free again once released.
async fn the_relay_lease_has_one_holder(backend: Backend) {
    let store = store(backend).await;
    let ttl = std::time::Duration::from_secs(5);
    let t0 = now();
    assert!(store.try_lease("relay", "a", t0, ttl).await.expect("lease"));
    assert!(
        !store.try_lease("relay", "b", t0, ttl).await.expect("lease"),
        "b must wait"
    );
    let t1 = t0
        .checked_add(jiff::SignedDuration::from_secs(4))
        .expect("time");
    assert!(
        store.try_lease("relay", "a", t1, ttl).await.expect("lease"),
        "a renews"
    );
    let t2 = t0
        .checked_add(jiff::SignedDuration::from_secs(8))
        .expect("time");
    assert!(
        !store.try_lease("relay", "b", t2, ttl).await.expect("lease"),
        "a's renewal still runs"
    );
    let t3 = t1
        .checked_add(jiff::SignedDuration::from_secs(6))
        .expect("time");
    assert!(
        store.try_lease("relay", "b", t3, ttl).await.expect("lease"),
        "a lapsed: b takes over"
    );
    store.release_lease("relay", "b").await.expect("release");
    assert!(
        store.try_lease("relay", "a", t3, ttl).await.expect("lease"),
        "released: free again"
    );
}

/// Outbox rows come out in commit order, and only those marked are gone from the backlog.
async fn unpublished_events_come_in_order_until_marked(backend: Backend) {
    let store = store(backend).await;
    let id = listing(&store, 3).await;
    for day in 1..=3 {
        let nights = range(&format!("2030-06-0{day}"), &format!("2030-06-0{}", day + 1));
        store
            .book(&id, &stay(nights, 1), now(), None)
            .await
            .expect("book");
    }
    let rows = store.unpublished(10).await.expect("outbox");
    let versions: Vec<i64> = rows.iter().map(|r| r.event.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    store
        .mark_published(&[rows[0].id, rows[1].id], now())
        .await
        .expect("mark");
    assert_eq!(store.outbox_backlog().await.expect("backlog"), 2);
    let rest: Vec<i64> = store
        .unpublished(10)
        .await
        .expect("outbox")
        .iter()
        .map(|r| r.event.version)
        .collect();
    assert_eq!(rest, vec![3, 4]);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::$name(vacancy_store::Backend::Sqlite).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::$name(vacancy_store::Backend::Postgres).await })* }
    };
}

on_both_backends!(
    the_relay_lease_has_one_holder,
    unpublished_events_come_in_order_until_marked,
    ledger_refuses_usage_beyond_units,
    expired_holds_free_their_nights,
    sweeper_releases_expired_holds
);
