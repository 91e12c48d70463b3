//! The contend scenario's overbooking check really detects an overbooking: one is injected by
//! writing a second active booking straight into the claims table (bypassing the ledger and
//! its constraint, as a bug would), and the audit must report every night of it.

use jiff::Timestamp;
use vacancy_bench::audit::audit_overbookings;
use vacancy_bench::service::drop_database;
use vacancy_core::{ListingRules, NightRange, RulesInput, StayRequest, Zone, day_number};
use vacancy_store::testing::fresh_database_url;
use vacancy_store::{Backend, NewListing, StayClaim, Store, StoreOptions};

fn now() -> Timestamp {
    "2030-01-01T12:00:00Z".parse().expect("timestamp")
}

async fn audit_detects_an_injected_overbooking(backend: Backend) {
    let url = fresh_database_url(backend).await.expect("database");
    let store = Store::connect(&StoreOptions::new(url.clone()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let rules = ListingRules::new(RulesInput {
        units: 1,
        min_nights: 1,
        max_nights: 30,
        advance_notice_hours: 0,
        booking_window_days: 365,
    })
    .expect("rules");
    let listing = NewListing {
        id: Some("one-unit".into()),
        host_id: "host".into(),
        zone: Zone::new("Europe/Lisbon").expect("zone"),
        rules,
    };
    store
        .create_listing(listing, now(), None)
        .await
        .expect("listing");
    let nights = NightRange::new(
        "2030-02-01".parse().expect("date"),
        "2030-02-04".parse().expect("date"),
    )
    .expect("nights");
    let stay = StayClaim {
        request: StayRequest {
            stay: nights,
            units: 1,
        },
        guest_id: "guest".into(),
    };
    store
        .book("one-unit", &stay, now(), None)
        .await
        .expect("book");
    let clean = audit_overbookings(&store, now()).await.expect("audit");
    assert_eq!(clean.overbooked_nights, 0, "{:?}", clean.examples);

    let raw = sqlx::AnyPool::connect(&url).await.expect("raw connection");
    sqlx::query(
        "INSERT INTO claims (id, listing_id, kind, state, check_in, check_out, units, guest_id, created_at, updated_at) \
         VALUES ('injected', 'one-unit', 'booking', 'active', $1, $2, 1, 'intruder', $3, $3)",
    )
    .bind(day_number(nights.start()))
    .bind(day_number(nights.end()))
    .bind(now().as_millisecond())
    .execute(&raw)
    .await
    .expect("inject a second booking on the same nights");
    raw.close().await;

    let found = audit_overbookings(&store, now()).await.expect("audit");
    assert_eq!(found.overbooked_nights, 3, "{:?}", found.examples);
    assert!(
        found.examples[0].contains("one-unit") && found.examples[0].contains("take 2 units of 1"),
        "{:?}",
        found.examples
    );
    store.close().await;
    drop_database(&url).await.expect("drop the database");
}

#[tokio::test]
async fn sqlite_audit_detects_an_injected_overbooking() {
    audit_detects_an_injected_overbooking(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_audit_detects_an_injected_overbooking() {
    audit_detects_an_injected_overbooking(Backend::Postgres).await;
}
