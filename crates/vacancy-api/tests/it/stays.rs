//! Holds and bookings through their whole life, with time controlled by the test clock.

use std::time::Duration;

use jiff::SignedDuration;
use reqwest::StatusCode;
use vacancy_store::{Backend, ClaimState};

use crate::helpers::spawn;

async fn a_live_hold_blocks_and_an_expired_one_does_not(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, serde_json::json!({})).await;
    let hold = app.hold(&listing, "2030-02-01", "2030-02-04", 600).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(hold.body["state"], "active");
    assert_eq!(hold.body["expires_at"], "2030-01-01T12:10:00Z");
    assert_eq!(
        app.remaining(&listing, "2030-02-01", "2030-02-05").await,
        vec![0, 0, 0, 1]
    );

    app.clock.advance(SignedDuration::from_secs(599));
    let blocked = app.book(&listing, "2030-02-03", "2030-02-05", 1).await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{}", blocked.body);
    assert_eq!(blocked.problem(), "nights-unavailable");
    assert_eq!(blocked.body["nights"], serde_json::json!(["2030-02-03"]));

    app.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(
        app.remaining(&listing, "2030-02-01", "2030-02-05").await,
        vec![1, 1, 1, 1]
    );
    let booked = app.book(&listing, "2030-02-03", "2030-02-05", 1).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let hold_id = hold.body["id"].as_str().expect("hold id");
    let read = app.get(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!(read.body["state"], "expired");
    app.assert_no_overbooking().await;
}

async fn confirming_turns_a_live_hold_into_a_booking(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(2, serde_json::json!({})).await;
    let hold = app.hold(&listing, "2030-03-01", "2030-03-03", 900).await;
    let hold_id = hold.body["id"].as_str().expect("hold id");
    app.clock.advance(SignedDuration::from_mins(14));
    let booking = app
        .post(
            &format!("/v1/holds/{hold_id}/confirm"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
    assert_eq!(booking.body["hold_id"], hold_id);
    assert_eq!(booking.body["state"], "active");
    assert_eq!(booking.body["check_in"], "2030-03-01");
    // The booking outlives the hold's expiry: the nights stay taken.
    app.clock.advance(SignedDuration::from_hours(1));
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-03").await,
        vec![1, 1]
    );
    let read_hold = app.get(&format!("/v1/holds/{hold_id}")).await;
    assert_eq!(read_hold.body["state"], "confirmed");
    let booking_id = booking.body["id"].as_str().expect("booking id");
    let read = app.get(&format!("/v1/bookings/{booking_id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["id"], booking_id);
    // A second confirm is refused clearly.
    let again = app
        .post(
            &format!("/v1/holds/{hold_id}/confirm"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem(), "hold-confirmed");
}

async fn confirming_an_expired_hold_fails_clearly(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, serde_json::json!({})).await;
    let hold = app.hold(&listing, "2030-03-01", "2030-03-03", 60).await;
    let hold_id = hold.body["id"].as_str().expect("hold id");
    app.clock.advance(SignedDuration::from_secs(60));
    let events_before = app.events().await;
    let confirm = app
        .post(
            &format!("/v1/holds/{hold_id}/confirm"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::CONFLICT, "{}", confirm.body);
    assert_eq!(confirm.problem(), "hold-expired");
    assert!(
        confirm.body["detail"]
            .as_str()
            .expect("detail")
            .contains("expired")
    );
    assert!(
        app.events().await <= events_before + 1,
        "a failed confirm books nothing"
    );
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-03").await,
        vec![1, 1]
    );
}

async fn releasing_and_cancelling_free_the_nights(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, serde_json::json!({})).await;
    let hold = app.hold(&listing, "2030-04-01", "2030-04-03", 900).await;
    let hold_id = hold.body["id"].as_str().expect("hold id");
    let released = app
        .post(
            &format!("/v1/holds/{hold_id}/release"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    assert_eq!(released.body["state"], "released");
    let twice = app
        .post(
            &format!("/v1/holds/{hold_id}/release"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(twice.status, StatusCode::OK, "releasing twice is harmless");
    assert_eq!(
        app.remaining(&listing, "2030-04-01", "2030-04-03").await,
        vec![1, 1]
    );
    let confirm = app
        .post(
            &format!("/v1/holds/{hold_id}/confirm"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(confirm.problem(), "hold-released");

    let booking = app.book(&listing, "2030-04-01", "2030-04-03", 1).await;
    let booking_id = booking.body["id"].as_str().expect("booking id");
    assert_eq!(
        app.remaining(&listing, "2030-04-01", "2030-04-03").await,
        vec![0, 0]
    );
    let cancelled = app
        .post(
            &format!("/v1/bookings/{booking_id}/cancel"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["state"], "cancelled");
    assert_eq!(
        app.remaining(&listing, "2030-04-01", "2030-04-03").await,
        vec![1, 1]
    );
    let again = app
        .post(
            &format!("/v1/bookings/{booking_id}/cancel"),
            &serde_json::json!(null),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "cancelling twice is harmless");
    assert_eq!(
        app.remaining(&listing, "2030-04-01", "2030-04-03").await,
        vec![1, 1]
    );
    app.assert_no_overbooking().await;
}

async fn the_sweeper_releases_expired_holds_and_announces_it(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, serde_json::json!({})).await;
    let hold = app.hold(&listing, "2030-05-01", "2030-05-02", 60).await;
    let hold_id = hold.body["id"].as_str().expect("hold id").to_owned();
    app.clock.advance(SignedDuration::from_secs(61));
    // The sweeper runs every 50 ms in tests; give it up to 5 s.
    let mut state = None;
    for _ in 0..100 {
        state = app
            .store
            .claim(&hold_id)
            .await
            .expect("claim")
            .map(|c| c.state);
        if state == Some(ClaimState::Expired) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, Some(ClaimState::Expired));
    let events = app.store.outbox_after(0, 100).await.expect("outbox");
    let last = &events.last().expect("events").1;
    assert_eq!(last.kind, "holds.expired");
    assert_eq!(last.expired_holds, vec![hold_id]);
    app.assert_no_overbooking().await;
}

async fn every_write_raises_the_version_and_appends_one_event(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(3, serde_json::json!({})).await;
    let booking = app.book(&listing, "2030-06-01", "2030-06-03", 2).await;
    let hold = app.hold(&listing, "2030-06-02", "2030-06-04", 300).await;
    let booking_id = booking.body["id"].as_str().expect("id");
    app.post(
        &format!("/v1/bookings/{booking_id}/cancel"),
        &serde_json::json!(null),
    )
    .await;
    let hold_id = hold.body["id"].as_str().expect("id");
    app.post(
        &format!("/v1/holds/{hold_id}/release"),
        &serde_json::json!(null),
    )
    .await;
    let events = app.store.outbox_after(0, 100).await.expect("outbox");
    let kinds: Vec<_> = events.iter().map(|(_, e)| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "listing.created",
            "booking.created",
            "hold.placed",
            "booking.cancelled",
            "hold.released"
        ]
    );
    let versions: Vec<_> = events.iter().map(|(_, e)| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let read = app.get(&format!("/v1/listings/{listing}")).await;
    assert_eq!(read.body["version"], 5);
    // A refused write changes neither.
    let refused = app.book(&listing, "2030-06-01", "2030-06-03", 4).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.events().await, 5);
    assert_eq!(
        app.get(&format!("/v1/listings/{listing}")).await.body["version"],
        5
    );
}

crate::backend_tests!(
    a_live_hold_blocks_and_an_expired_one_does_not,
    confirming_turns_a_live_hold_into_a_booking,
    confirming_an_expired_hold_fails_clearly,
    releasing_and_cancelling_free_the_nights,
    the_sweeper_releases_expired_holds_and_announces_it,
    every_write_raises_the_version_and_appends_one_event,
);
