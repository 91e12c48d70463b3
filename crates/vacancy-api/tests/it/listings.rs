//! Listings: create, read, update rules, and how rule changes meet the calendar.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_store::Backend;

use crate::helpers::{Reply, TestApp, spawn};

async fn read(app: &TestApp, id: &str) -> Value {
    let reply = app.get(&format!("/v1/listings/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[track_caller]
fn assert_problem(reply: &Reply, status: StatusCode, slug: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(
        reply.content_type(),
        "application/problem+json",
        "{}",
        reply.body
    );
    assert_eq!(reply.problem(), slug, "{}", reply.body);
}

#[track_caller]
fn assert_invalid(reply: &Reply, field: &str) {
    assert_problem(reply, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
}

async fn availability(app: &TestApp, listing: &str, check_in: &str, check_out: &str) -> Value {
    let path =
        format!("/v1/listings/{listing}/availability?check_in={check_in}&check_out={check_out}");
    let reply = app.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn create_echoes_fields_and_starts_at_version_1(backend: Backend) {
    let app = spawn(backend).await;
    let body = json!({ "host_id": "host-7", "time_zone": "America/New_York", "units": 12,
        "min_nights": 2, "max_nights": 14, "advance_notice_hours": 36, "booking_window_days": 500 });
    let reply = app.post("/v1/listings", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/json");
    let created = &reply.body;
    for field in [
        "host_id",
        "time_zone",
        "units",
        "min_nights",
        "max_nights",
        "advance_notice_hours",
        "booking_window_days",
    ] {
        assert_eq!(created[field], body[field], "{field}: {created}");
    }
    assert_eq!(created["version"], 1);
    assert_eq!(created["created_at"], "2030-01-01T12:00:00Z");
    assert_eq!(created["updated_at"], "2030-01-01T12:00:00Z");
    let id = created["id"].as_str().expect("generated id");
    assert!(!id.is_empty() && id.len() <= 64, "{id}");
    // Reading it back gives the same document.
    assert_eq!(&read(&app, id).await, created);
    // Generated ids are unique.
    let other = app.post("/v1/listings", &body).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    assert_ne!(other.body["id"], created["id"]);
}

async fn create_applies_defaults(backend: Backend) {
    let app = spawn(backend).await;
    let reply = app
        .post(
            "/v1/listings",
            &json!({ "host_id": "host-1", "time_zone": "UTC", "units": 1 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let listing = &reply.body;
    assert_eq!(listing["min_nights"], 1);
    assert_eq!(listing["max_nights"], 365);
    assert_eq!(listing["advance_notice_hours"], 0);
    assert_eq!(listing["booking_window_days"], 365);
    assert_eq!(listing["version"], 1);
    // The defaults are the rules enforced: same-day check-in, one night, a 365-day window.
    let id = listing["id"].as_str().expect("id");
    let reply = app.book(id, "2030-01-01", "2030-01-02", 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let answer = availability(&app, id, "2030-12-31", "2031-01-01").await;
    assert_eq!(answer["available"], true, "{answer}");
    let answer = availability(&app, id, "2031-01-01", "2031-01-02").await;
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "beyond_booking_window", "last_bookable_night": "2030-12-31" }])
    );
}

async fn a_client_chosen_id_is_kept_and_unique(backend: Backend) {
    let app = spawn(backend).await;
    let body =
        json!({ "id": "villa-42", "host_id": "host-1", "time_zone": "Europe/Lisbon", "units": 1 });
    let reply = app.post("/v1/listings", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["id"], "villa-42");
    assert_eq!(read(&app, "villa-42").await["host_id"], "host-1");
    let events = app.events().await;
    // The same id again, even with other fields, is a conflict that changes nothing.
    let again =
        json!({ "id": "villa-42", "host_id": "host-2", "time_zone": "Asia/Tokyo", "units": 3 });
    let reply = app.post("/v1/listings", &again).await;
    assert_problem(&reply, StatusCode::CONFLICT, "already-exists");
    let stored = read(&app, "villa-42").await;
    assert_eq!(
        (
            stored["host_id"].clone(),
            stored["units"].clone(),
            stored["version"].clone()
        ),
        (json!("host-1"), json!(1), json!(1))
    );
    assert_eq!(app.events().await, events);
    // Ids are case-sensitive: another case is another listing.
    let reply = app
        .post(
            "/v1/listings",
            &json!({ "id": "Villa-42", "host_id": "host-1", "time_zone": "UTC", "units": 1 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn reading_an_unknown_listing_is_a_404(backend: Backend) {
    let app = spawn(backend).await;
    let _ = app.listing(1, json!({ "id": "known" })).await;
    for id in ["unknown", "KNOWN", "known-"] {
        assert_problem(
            &app.get(&format!("/v1/listings/{id}")).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
    }
    assert_eq!(read(&app, "known").await["id"], "known");
}

async fn patching_rules_raises_the_version_and_enforces_them(backend: Backend) {
    let app = spawn(backend).await;
    let id = app.listing(2, json!({ "time_zone": "UTC" })).await;
    let before = read(&app, &id).await;
    app.clock.advance(jiff::SignedDuration::from_mins(5));
    let reply = app
        .patch(
            &format!("/v1/listings/{id}"),
            &json!({ "min_nights": 3, "max_nights": 7 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = &reply.body;
    assert_eq!(
        after["version"],
        before["version"].as_i64().expect("version") + 1
    );
    assert_eq!(
        (after["min_nights"].clone(), after["max_nights"].clone()),
        (json!(3), json!(7))
    );
    // Fields not named keep their values.
    for field in [
        "host_id",
        "time_zone",
        "units",
        "advance_notice_hours",
        "booking_window_days",
        "created_at",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(after["updated_at"], "2030-01-01T12:05:00Z");
    assert_eq!(&read(&app, &id).await, after);
    // The new rules are the ones checked.
    let answer = availability(&app, &id, "2030-02-01", "2030-02-03").await;
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "below_min_nights", "min_nights": 3 }])
    );
    assert_eq!(answer["version"], after["version"]);
    let reply = app.book(&id, "2030-02-01", "2030-02-09", 1).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "stay-rules-broken",
    );
    assert_eq!(
        reply.body["reasons"],
        json!([{ "reason": "above_max_nights", "max_nights": 7 }])
    );
    assert_eq!(
        app.book(&id, "2030-02-01", "2030-02-04", 1).await.status,
        StatusCode::CREATED
    );
    // Notice and window too.
    let reply = app
        .patch(
            &format!("/v1/listings/{id}"),
            &json!({ "advance_notice_hours": 72, "booking_window_days": 10 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let answer = availability(&app, &id, "2030-01-03", "2030-01-06").await;
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "advance_notice", "earliest_check_in": "2030-01-04" }])
    );
    let answer = availability(&app, &id, "2030-01-08", "2030-01-12").await;
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "beyond_booking_window", "last_bookable_night": "2030-01-10" }])
    );
    // A new zone moves "today": at 12:05Z it is already 01-02 in Kiritimati.
    let reply = app
        .patch(
            &format!("/v1/listings/{id}"),
            &json!({ "time_zone": "Pacific/Kiritimati", "advance_notice_hours": 0 }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["time_zone"], "Pacific/Kiritimati");
    let answer = availability(&app, &id, "2030-01-01", "2030-01-04").await;
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "advance_notice", "earliest_check_in": "2030-01-02" }])
    );
    // An empty patch is allowed and changes no rule.
    let reply = app.patch(&format!("/v1/listings/{id}"), &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["min_nights"], 3);
}

async fn patching_min_above_max_names_max_nights(backend: Backend) {
    let app = spawn(backend).await;
    let id = app
        .listing(1, json!({ "min_nights": 2, "max_nights": 4 }))
        .await;
    let before = read(&app, &id).await;
    let events = app.events().await;
    for patch in [
        json!({ "min_nights": 5 }),
        json!({ "max_nights": 1 }),
        json!({ "min_nights": 9, "max_nights": 8 }),
    ] {
        let reply = app.patch(&format!("/v1/listings/{id}"), &patch).await;
        assert_invalid(&reply, "max_nights");
    }
    for (patch, field) in [
        (json!({ "min_nights": 0 }), "min_nights"),
        (json!({ "max_nights": 366 }), "max_nights"),
        (
            json!({ "advance_notice_hours": 9000 }),
            "advance_notice_hours",
        ),
        (json!({ "booking_window_days": 0 }), "booking_window_days"),
        (json!({ "units": 0 }), "units"),
    ] {
        assert_invalid(
            &app.patch(&format!("/v1/listings/{id}"), &patch).await,
            field,
        );
    }
    assert_eq!(
        read(&app, &id).await,
        before,
        "a refused patch changed the listing"
    );
    assert_eq!(app.events().await, events);
    // The same checks guard creation.
    let body = json!({ "host_id": "host-1", "time_zone": "UTC", "units": 1, "min_nights": 5, "max_nights": 4 });
    assert_invalid(&app.post("/v1/listings", &body).await, "max_nights");
}

async fn patching_units_below_booked_nights_names_them(backend: Backend) {
    let app = spawn(backend).await;
    let id = app.listing(3, json!({})).await;
    // Nights used: 03-01: 2, 03-02: 3, 03-03: 1.
    assert_eq!(
        app.book(&id, "2030-03-01", "2030-03-03", 2).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.book(&id, "2030-03-02", "2030-03-04", 1).await.status,
        StatusCode::CREATED
    );
    let before = read(&app, &id).await;
    let events = app.events().await;
    let reply = app
        .patch(&format!("/v1/listings/{id}"), &json!({ "units": 2 }))
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-02"]));
    let reply = app
        .patch(
            &format!("/v1/listings/{id}"),
            &json!({ "units": 1, "min_nights": 2 }),
        )
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-01", "2030-03-02"]));
    assert_eq!(
        read(&app, &id).await,
        before,
        "a refused patch changed the listing"
    );
    assert_eq!(app.events().await, events);
    assert_eq!(
        app.remaining(&id, "2030-03-01", "2030-03-05").await,
        vec![1, 0, 2, 3]
    );
    // Live holds count too: 03-03 goes to 2 used.
    let reply = app.hold(&id, "2030-03-03", "2030-03-04", 600).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app
        .patch(&format!("/v1/listings/{id}"), &json!({ "units": 1 }))
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(
        reply.body["nights"],
        json!(["2030-03-01", "2030-03-02", "2030-03-03"])
    );
    // Once the hold has expired it no longer counts.
    app.clock.advance(jiff::SignedDuration::from_mins(11));
    let reply = app
        .patch(&format!("/v1/listings/{id}"), &json!({ "units": 1 }))
        .await;
    assert_eq!(
        reply.body["nights"],
        json!(["2030-03-01", "2030-03-02"]),
        "{}",
        reply.body
    );
    // Exactly what is used is fine.
    let reply = app
        .patch(&format!("/v1/listings/{id}"), &json!({ "units": 3 }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    app.assert_no_overbooking().await;
}

async fn raising_units_makes_room_for_another_booking(backend: Backend) {
    let app = spawn(backend).await;
    let id = app.listing(1, json!({})).await;
    assert_eq!(
        app.book(&id, "2030-03-01", "2030-03-03", 1).await.status,
        StatusCode::CREATED
    );
    let reply = app.book(&id, "2030-03-01", "2030-03-03", 1).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    let version = read(&app, &id).await["version"].as_i64().expect("version");
    let reply = app
        .patch(&format!("/v1/listings/{id}"), &json!({ "units": 2 }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["units"], 2);
    assert_eq!(reply.body["version"], version + 1);
    assert_eq!(
        app.remaining(&id, "2030-03-01", "2030-03-04").await,
        vec![1, 1, 2]
    );
    let reply = app.book(&id, "2030-03-01", "2030-03-03", 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        app.remaining(&id, "2030-03-01", "2030-03-04").await,
        vec![0, 0, 2]
    );
    let reply = app.book(&id, "2030-03-02", "2030-03-04", 1).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-02"]));
    app.assert_no_overbooking().await;
}

async fn an_invalid_time_zone_names_time_zone(backend: Backend) {
    let app = spawn(backend).await;
    let id = app.listing(1, json!({})).await;
    let before = read(&app, &id).await;
    let events = app.events().await;
    for zone in [
        "Mars/Olympus",
        "+02:00",
        "EST5EDT,M3.2.0,M11.1.0",
        "",
        "europe/lisbon ",
        "Europe/Lisbon/Extra",
    ] {
        let body = json!({ "host_id": "host-1", "time_zone": zone, "units": 1 });
        assert_invalid(&app.post("/v1/listings", &body).await, "time_zone");
        let reply = app
            .patch(&format!("/v1/listings/{id}"), &json!({ "time_zone": zone }))
            .await;
        assert_invalid(&reply, "time_zone");
    }
    assert_eq!(read(&app, &id).await, before);
    assert_eq!(app.events().await, events);
}

async fn patching_an_unknown_listing_is_a_404(backend: Backend) {
    let app = spawn(backend).await;
    let events = app.events().await;
    let reply = app
        .patch("/v1/listings/ghost", &json!({ "min_nights": 2 }))
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(app.events().await, events);
    assert_problem(
        &app.get("/v1/listings/ghost").await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}

crate::backend_tests!(
    create_echoes_fields_and_starts_at_version_1,
    create_applies_defaults,
    a_client_chosen_id_is_kept_and_unique,
    reading_an_unknown_listing_is_a_404,
    patching_rules_raises_the_version_and_enforces_them,
    patching_min_above_max_names_max_nights,
    patching_units_below_booked_nights_names_them,
    raising_units_makes_room_for_another_booking,
    an_invalid_time_zone_names_time_zone,
    patching_an_unknown_listing_is_a_404,
);
