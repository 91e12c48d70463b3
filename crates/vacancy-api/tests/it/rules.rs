//! Stay rules: every broken rule is refused with its machine-readable reason, for holds and
//! bookings alike, and the availability endpoint reports the same reasons. "Now" is the
//! ManualClock, judged in the listing's time zone.

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_store::Backend;

use crate::helpers::{TestApp, spawn};

/// A UTC listing with every rule set: 2 units, 2–5 nights, 48 h notice, a 30-day window.
/// At the start instant (2030-01-01T12:00Z) the earliest check-in is 2030-01-03 and the last
/// bookable night 2030-01-30.
async fn strict_listing(app: &TestApp) -> String {
    app.listing(
        2,
        json!({ "time_zone": "UTC", "min_nights": 2, "max_nights": 5,
            "advance_notice_hours": 48, "booking_window_days": 30 }),
    )
    .await
}

fn stay(listing: &str, check_in: &str, check_out: &str, units: u32) -> Value {
    json!({ "listing_id": listing, "check_in": check_in, "check_out": check_out,
        "units": units, "guest_id": "guest-1" })
}

fn hold(listing: &str, check_in: &str, check_out: &str, units: u32) -> Value {
    let mut body = stay(listing, check_in, check_out, units);
    body["ttl_seconds"] = json!(600);
    body
}

/// The availability endpoint's answer for a stay.
async fn availability(
    app: &TestApp,
    listing: &str,
    check_in: &str,
    check_out: &str,
    units: u32,
) -> Value {
    let path = format!(
        "/v1/listings/{listing}/availability?check_in={check_in}&check_out={check_out}&units={units}"
    );
    let reply = app.get(&path).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["listing_id"], listing);
    reply.body
}

/// Asserts the stay is refused for `reasons`, exactly, by the availability check, by a hold and
/// by a booking, and that nothing was written.
async fn assert_refused(
    app: &TestApp,
    listing: &str,
    (check_in, check_out, units): (&str, &str, u32),
    reasons: &Value,
) {
    let events = app.events().await;
    let answer = availability(app, listing, check_in, check_out, units).await;
    assert_eq!(answer["available"], false, "{answer}");
    assert_eq!(
        &answer["reasons"], reasons,
        "availability of {check_in}..{check_out} x{units}"
    );
    for (path, body) in [
        ("/v1/holds", hold(listing, check_in, check_out, units)),
        ("/v1/bookings", stay(listing, check_in, check_out, units)),
    ] {
        let reply = app.post(path, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.problem(), "stay-rules-broken", "{}", reply.body);
        assert_eq!(
            &reply.body["reasons"], reasons,
            "{path} {check_in}..{check_out} x{units}"
        );
    }
    assert_eq!(app.events().await, events, "a refused stay wrote something");
}

async fn assert_available(
    app: &TestApp,
    listing: &str,
    check_in: &str,
    check_out: &str,
    units: u32,
) {
    let answer = availability(app, listing, check_in, check_out, units).await;
    assert_eq!(
        answer["available"], true,
        "{check_in}..{check_out} x{units}: {answer}"
    );
    assert_eq!(answer["reasons"], json!([]), "{answer}");
}

/// The earliest check-in the listing allows now, read from the reason a past stay is refused.
async fn earliest_check_in(app: &TestApp, listing: &str) -> String {
    let answer = availability(app, listing, "2029-12-30", "2029-12-31", 1).await;
    let reasons = answer["reasons"].as_array().expect("reasons");
    let notice = reasons
        .iter()
        .find(|r| r["reason"] == "advance_notice")
        .expect("an advance_notice reason");
    notice["earliest_check_in"]
        .as_str()
        .expect("earliest_check_in")
        .to_owned()
}

fn at(instant: &str) -> Timestamp {
    instant.parse().expect("test instant")
}

async fn each_rule_is_refused_with_its_reason(backend: Backend) {
    let app = spawn(backend).await;
    let listing = strict_listing(&app).await;
    let cases = [
        (
            ("2030-01-10", "2030-01-11", 1),
            json!([{ "reason": "below_min_nights", "min_nights": 2 }]),
        ),
        (
            ("2030-01-10", "2030-01-16", 1),
            json!([{ "reason": "above_max_nights", "max_nights": 5 }]),
        ),
        (
            ("2030-01-02", "2030-01-04", 1),
            json!([{ "reason": "advance_notice", "earliest_check_in": "2030-01-03" }]),
        ),
        (
            ("2029-12-20", "2029-12-22", 1),
            json!([{ "reason": "advance_notice", "earliest_check_in": "2030-01-03" }]),
        ),
        (
            ("2030-01-29", "2030-02-01", 1),
            json!([{ "reason": "beyond_booking_window", "last_bookable_night": "2030-01-30" }]),
        ),
        (
            ("2030-01-10", "2030-01-12", 3),
            json!([{ "reason": "too_many_units", "requested": 3, "units": 2 }]),
        ),
    ];
    for (stay, reasons) in &cases {
        assert_refused(&app, &listing, *stay, reasons).await;
    }
}

async fn every_broken_rule_is_listed(backend: Backend) {
    let app = spawn(backend).await;
    let listing = strict_listing(&app).await;
    // One night, tomorrow, three units: too short, too soon and too many.
    let reasons = json!([
        { "reason": "below_min_nights", "min_nights": 2 },
        { "reason": "advance_notice", "earliest_check_in": "2030-01-03" },
        { "reason": "too_many_units", "requested": 3, "units": 2 },
    ]);
    assert_refused(&app, &listing, ("2030-01-02", "2030-01-03", 3), &reasons).await;
    // Six nights reaching past the window.
    let reasons = json!([
        { "reason": "above_max_nights", "max_nights": 5 },
        { "reason": "beyond_booking_window", "last_bookable_night": "2030-01-30" },
    ]);
    assert_refused(&app, &listing, ("2030-01-27", "2030-02-02", 1), &reasons).await;
}

async fn the_limits_themselves_are_allowed(backend: Backend) {
    let app = spawn(backend).await;
    let listing = strict_listing(&app).await;
    // Earliest check-in, shortest stay, every unit; longest stay; last bookable night.
    let stays = [
        ("2030-01-03", "2030-01-05", 2),
        ("2030-01-10", "2030-01-15", 1),
        ("2030-01-28", "2030-01-31", 1),
    ];
    for (check_in, check_out, units) in stays {
        assert_available(&app, &listing, check_in, check_out, units).await;
        let reply = app.book(&listing, check_in, check_out, units).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{check_in}..{check_out}: {}",
            reply.body
        );
    }
    let reply = app
        .post("/v1/holds", &hold(&listing, "2030-01-10", "2030-01-12", 1))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    app.assert_no_overbooking().await;
}

async fn taken_and_rule_breaking_lists_both(backend: Backend) {
    let app = spawn(backend).await;
    let listing = strict_listing(&app).await;
    let reply = app.book(&listing, "2030-01-10", "2030-01-12", 2).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // Only taken: a 409 naming the nights, and the one reason on the availability endpoint.
    let answer = availability(&app, &listing, "2030-01-09", "2030-01-12", 1).await;
    assert_eq!(answer["available"], false);
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "nights_unavailable", "nights": ["2030-01-10", "2030-01-11"] }])
    );
    let reply = app.book(&listing, "2030-01-09", "2030-01-12", 1).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.problem(), "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-01-10", "2030-01-11"]));
    // Taken and too short: both reasons, and the write is a rules problem that still names the night.
    let reasons = json!([
        { "reason": "nights_unavailable", "nights": ["2030-01-11"] },
        { "reason": "below_min_nights", "min_nights": 2 },
    ]);
    assert_refused(&app, &listing, ("2030-01-11", "2030-01-12", 1), &reasons).await;
    let reply = app.book(&listing, "2030-01-11", "2030-01-12", 1).await;
    assert_eq!(
        reply.body["nights"],
        json!(["2030-01-11"]),
        "{}",
        reply.body
    );
    // Taken and beyond the window.
    let reply = app.book(&listing, "2030-01-28", "2030-01-31", 2).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reasons = json!([
        { "reason": "nights_unavailable", "nights": ["2030-01-29", "2030-01-30"] },
        { "reason": "beyond_booking_window", "last_bookable_night": "2030-01-30" },
    ]);
    assert_refused(&app, &listing, ("2030-01-29", "2030-02-01", 1), &reasons).await;
}

async fn advance_notice_is_judged_in_the_listing_zone(backend: Backend) {
    let app = spawn(backend).await;
    // 2030-01-01T12:00Z is 02:00 on 01-02 at Kiritimati (UTC+14), 04:00 on 01-01 in Los Angeles
    // (UTC-8), 21:00 on 01-01 in Tokyo (UTC+9) and 01:00 on 01-01 in Pago Pago (UTC-11).
    let zones = [
        ("Pacific/Kiritimati", "2030-01-02", "2030-01-02"),
        ("America/Los_Angeles", "2030-01-01", "2030-01-01"),
        ("Asia/Tokyo", "2030-01-01", "2030-01-02"),
        ("Europe/Lisbon", "2030-01-01", "2030-01-02"),
        ("Pacific/Pago_Pago", "2030-01-01", "2030-01-01"),
    ];
    for (zone, no_notice, twelve_hours) in zones {
        let listing = app.listing(1, json!({ "time_zone": zone })).await;
        assert_eq!(
            earliest_check_in(&app, &listing).await,
            no_notice,
            "{zone}, no notice"
        );
        let listing = app
            .listing(1, json!({ "time_zone": zone, "advance_notice_hours": 12 }))
            .await;
        assert_eq!(
            earliest_check_in(&app, &listing).await,
            twelve_hours,
            "{zone}, 12 h notice"
        );
    }
    // Same instant, same stay, same rules: Los Angeles takes tonight, Kiritimati's tonight is over.
    let kiritimati = app
        .listing(1, json!({ "time_zone": "Pacific/Kiritimati" }))
        .await;
    let los_angeles = app
        .listing(1, json!({ "time_zone": "America/Los_Angeles" }))
        .await;
    assert_available(&app, &los_angeles, "2030-01-01", "2030-01-03", 1).await;
    let reasons = json!([{ "reason": "advance_notice", "earliest_check_in": "2030-01-02" }]);
    assert_refused(&app, &kiritimati, ("2030-01-01", "2030-01-03", 1), &reasons).await;
    let reply = app.book(&los_angeles, "2030-01-01", "2030-01-03", 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app.book(&kiritimati, "2030-01-02", "2030-01-04", 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn the_booking_window_counts_listing_local_days(backend: Backend) {
    let app = spawn(backend).await;
    // A one-day window allows only tonight, and tonight depends on the zone.
    let kiritimati = app
        .listing(
            1,
            json!({ "time_zone": "Pacific/Kiritimati", "booking_window_days": 1 }),
        )
        .await;
    let los_angeles = app
        .listing(
            1,
            json!({ "time_zone": "America/Los_Angeles", "booking_window_days": 1 }),
        )
        .await;
    assert_available(&app, &kiritimati, "2030-01-02", "2030-01-03", 1).await;
    let reasons =
        json!([{ "reason": "beyond_booking_window", "last_bookable_night": "2030-01-01" }]);
    assert_refused(
        &app,
        &los_angeles,
        ("2030-01-02", "2030-01-03", 1),
        &reasons,
    )
    .await;
    assert_available(&app, &los_angeles, "2030-01-01", "2030-01-02", 1).await;
}

async fn moving_the_clock_changes_what_notice_allows(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app
        .listing(
            1,
            json!({ "time_zone": "UTC", "advance_notice_hours": 24, "booking_window_days": 30 }),
        )
        .await;
    // At 12:00 on 01-01, 24 h of notice lands on 01-02.
    assert_available(&app, &listing, "2030-01-02", "2030-01-04", 1).await;
    // Still on 01-02 a second before midnight...
    app.clock.set(at("2030-01-01T23:59:59Z"));
    assert_available(&app, &listing, "2030-01-02", "2030-01-04", 1).await;
    // ...and no longer a second later.
    app.clock.advance(SignedDuration::from_secs(1));
    let reasons = json!([{ "reason": "advance_notice", "earliest_check_in": "2030-01-03" }]);
    assert_refused(&app, &listing, ("2030-01-02", "2030-01-04", 1), &reasons).await;
    assert_available(&app, &listing, "2030-01-03", "2030-01-05", 1).await;
    // Back in time the notice allows more again.
    app.clock.set(at("2029-12-31T00:00:00Z"));
    assert_available(&app, &listing, "2030-01-01", "2030-01-02", 1).await;
    let reply = app.book(&listing, "2030-01-01", "2030-01-02", 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn moving_the_clock_opens_the_booking_window(backend: Backend) {
    let app = spawn(backend).await;
    let listing = strict_listing(&app).await;
    let reasons =
        json!([{ "reason": "beyond_booking_window", "last_bookable_night": "2030-01-30" }]);
    assert_refused(&app, &listing, ("2030-01-30", "2030-02-01", 1), &reasons).await;
    // A new UTC day moves the last bookable night to 01-31.
    app.clock.set(at("2030-01-02T00:00:00Z"));
    assert_available(&app, &listing, "2030-01-30", "2030-02-01", 1).await;
    let reply = app
        .post("/v1/holds", &hold(&listing, "2030-01-30", "2030-02-01", 1))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app.book(&listing, "2030-01-30", "2030-02-01", 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

crate::backend_tests!(
    each_rule_is_refused_with_its_reason,
    every_broken_rule_is_listed,
    the_limits_themselves_are_allowed,
    taken_and_rule_breaking_lists_both,
    advance_notice_is_judged_in_the_listing_zone,
    the_booking_window_counts_listing_local_days,
    moving_the_clock_changes_what_notice_allows,
    moving_the_clock_opens_the_booking_window,
);
