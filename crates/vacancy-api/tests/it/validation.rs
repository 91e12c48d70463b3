//! Bad input: every rejection is the right 4xx `application/problem+json`, names the offending
//! field for validation errors, and writes nothing (no outbox event, no version change).

use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_store::Backend;

use crate::helpers::{MAX_BODY_BYTES, Reply, TestApp, post_oversized, send, spawn};

/// A stay every default listing accepts at the start instant.
const CHECK_IN: &str = "2030-03-01";
const CHECK_OUT: &str = "2030-03-04";

/// What a rejected request must leave as it found it: the outbox and the listing's version.
struct Unchanged {
    listing: String,
    events: usize,
    version: i64,
}

impl Unchanged {
    async fn capture(app: &TestApp, listing: &str) -> Self {
        Self {
            listing: listing.to_owned(),
            events: app.events().await,
            version: version(app, listing).await,
        }
    }

    async fn check(&self, app: &TestApp) {
        assert_eq!(
            app.events().await,
            self.events,
            "a rejected request appended an outbox event"
        );
        assert_eq!(
            version(app, &self.listing).await,
            self.version,
            "a rejected request raised the listing version"
        );
    }
}

async fn version(app: &TestApp, listing: &str) -> i64 {
    let reply = app.get(&format!("/v1/listings/{listing}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["version"].as_i64().expect("version")
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
    assert_eq!(reply.body["status"], status.as_u16(), "{}", reply.body);
    assert!(
        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "no detail: {}",
        reply.body
    );
}

#[track_caller]
fn assert_invalid(reply: &Reply, field: &str) {
    assert_problem(reply, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
}

/// `base` with the keys of `patch` set, or removed where `patch` has null.
fn with(base: Value, patch: Value) -> Value {
    let mut body = base;
    if let (Some(body), Some(patch)) = (body.as_object_mut(), patch.as_object()) {
        for (key, value) in patch {
            if value.is_null() {
                body.remove(key);
            } else {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    body
}

fn booking(listing: &str, patch: Value) -> Value {
    let base = json!({ "listing_id": listing, "check_in": CHECK_IN, "check_out": CHECK_OUT,
        "units": 1, "guest_id": "guest-1" });
    with(base, patch)
}

fn hold(listing: &str, patch: Value) -> Value {
    let base = json!({ "listing_id": listing, "check_in": CHECK_IN, "check_out": CHECK_OUT,
        "guest_id": "guest-1", "ttl_seconds": 600 });
    with(base, patch)
}

fn block(patch: Value) -> Value {
    with(json!({ "start": CHECK_IN, "end": CHECK_OUT }), patch)
}

fn batch(listing: &str, patch: Value) -> Value {
    with(
        json!({ "listing_ids": [listing], "check_in": CHECK_IN, "check_out": CHECK_OUT }),
        patch,
    )
}

fn new_listing(patch: Value) -> Value {
    with(
        json!({ "host_id": "host-1", "time_zone": "Europe/Lisbon", "units": 1 }),
        patch,
    )
}

/// Every endpoint that takes a JSON body, with a valid body for `listing`.
fn json_endpoints(listing: &str) -> Vec<(String, Value)> {
    vec![
        ("/v1/bookings".into(), booking(listing, json!({}))),
        ("/v1/holds".into(), hold(listing, json!({}))),
        ("/v1/listings".into(), new_listing(json!({}))),
        (format!("/v1/listings/{listing}/blocks"), block(json!({}))),
        ("/v1/availability/batch".into(), batch(listing, json!({}))),
    ]
}

async fn malformed_json_is_a_400(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    for (path, _) in json_endpoints(&listing) {
        for body in [
            "{",
            "{\"listing_id\": }",
            "",
            "[1, 2",
            "nul",
            "{\"units\": 1,}",
            "\u{feff}{}",
        ] {
            let reply = app.post_raw(&path, "application/json", body).await;
            assert_problem(&reply, StatusCode::BAD_REQUEST, "malformed-request");
        }
    }
    let patch = app
        .http
        .patch(format!("{}/v1/listings/{listing}", app.base))
        .header("content-type", "application/json")
        .body("{\"min_nights\": ");
    assert_problem(
        &send(patch).await,
        StatusCode::BAD_REQUEST,
        "malformed-request",
    );
    before.check(&app).await;
}

async fn a_body_that_is_not_json_is_a_415(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    for (path, body) in json_endpoints(&listing) {
        let text = body.to_string();
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "text/json",
        ] {
            let reply = app.post_raw(&path, content_type, text.clone()).await;
            assert_problem(
                &reply,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            );
        }
        let no_type = app
            .http
            .post(format!("{}{path}", app.base))
            .body(text.clone());
        assert_problem(
            &send(no_type).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        );
    }
    let patch = app
        .http
        .patch(format!("{}/v1/listings/{listing}", app.base))
        .header("content-type", "text/plain")
        .body(json!({ "min_nights": 2 }).to_string());
    assert_problem(
        &send(patch).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
    before.check(&app).await;

    // A JSON media type with parameters, in any case, is JSON.
    let body = booking(&listing, json!({})).to_string();
    let reply = app
        .post_raw("/v1/bookings", "Application/JSON; charset=utf-8", body)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn a_body_over_the_limit_is_a_413(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let huge = "x".repeat(MAX_BODY_BYTES + 1);
    let bodies = [
        (
            format!("/v1/listings/{listing}/blocks"),
            block(json!({ "note": huge })),
        ),
        (
            "/v1/bookings".to_owned(),
            booking(&listing, json!({ "guest_id": huge })),
        ),
        (
            "/v1/listings".to_owned(),
            new_listing(json!({ "host_id": huge })),
        ),
    ];
    for (path, body) in &bodies {
        let reply = post_oversized(&app, path, body.to_string().as_bytes()).await;
        assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    }
    // Far over the limit, too: the body is refused, not buffered.
    let reply = post_oversized(&app, "/v1/bookings", &vec![b' '; 4 * MAX_BODY_BYTES]).await;
    assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    // Just under the limit the body is read and judged on its content.
    let note = "y".repeat(MAX_BODY_BYTES - 1024);
    let reply = app
        .post(
            &format!("/v1/listings/{listing}/blocks"),
            &block(json!({ "note": note })),
        )
        .await;
    assert_invalid(&reply, "note");
    before.check(&app).await;
}

async fn an_unknown_body_field_is_named(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let cases = [
        (
            "/v1/bookings".to_owned(),
            booking(&listing, json!({ "colour": "red" })),
            "colour",
        ),
        (
            "/v1/holds".to_owned(),
            hold(&listing, json!({ "expires_at": "2030-01-01T13:00:00Z" })),
            "expires_at",
        ),
        (
            "/v1/listings".to_owned(),
            new_listing(json!({ "name": "Villa" })),
            "name",
        ),
        (
            format!("/v1/listings/{listing}/blocks"),
            block(json!({ "reason": "paint" })),
            "reason",
        ),
        (
            "/v1/availability/batch".to_owned(),
            batch(&listing, json!({ "guests": 2 })),
            "guests",
        ),
    ];
    for (path, body, field) in &cases {
        assert_invalid(&app.post(path, body).await, field);
    }
    // host_id is fixed at creation: PATCH does not take it.
    let reply = app
        .patch(
            &format!("/v1/listings/{listing}"),
            &json!({ "host_id": "host-2" }),
        )
        .await;
    assert_invalid(&reply, "host_id");
    before.check(&app).await;
}

async fn a_field_of_the_wrong_type_is_named(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let cases = [
        (
            "/v1/bookings",
            booking(&listing, json!({ "units": "2" })),
            "units",
        ),
        (
            "/v1/bookings",
            booking(&listing, json!({ "units": -1 })),
            "units",
        ),
        (
            "/v1/bookings",
            booking(&listing, json!({ "units": 1.5 })),
            "units",
        ),
        (
            "/v1/bookings",
            booking(&listing, json!({ "units": 4_294_967_296_u64 })),
            "units",
        ),
        (
            "/v1/bookings",
            booking(&listing, json!({ "listing_id": 42 })),
            "listing_id",
        ),
        (
            "/v1/bookings",
            booking(&listing, json!({ "check_in": 20_300_301 })),
            "check_in",
        ),
        (
            "/v1/holds",
            hold(&listing, json!({ "ttl_seconds": "600" })),
            "ttl_seconds",
        ),
        (
            "/v1/holds",
            hold(&listing, json!({ "guest_id": ["guest-1"] })),
            "guest_id",
        ),
        (
            "/v1/listings",
            new_listing(json!({ "units": "one" })),
            "units",
        ),
        (
            "/v1/listings",
            new_listing(json!({ "min_nights": true })),
            "min_nights",
        ),
        (
            "/v1/availability/batch",
            batch(&listing, json!({ "listing_ids": "a" })),
            "listing_ids",
        ),
        (
            "/v1/availability/batch",
            batch(&listing, json!({ "listing_ids": [&listing, 7] })),
            "listing_ids[1]",
        ),
    ];
    for (path, body, field) in &cases {
        assert_invalid(&app.post(path, body).await, field);
    }
    let reply = app
        .patch(&format!("/v1/listings/{listing}"), &json!({ "units": "3" }))
        .await;
    assert_invalid(&reply, "units");
    before.check(&app).await;
}

async fn a_missing_body_field_is_named(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let cases = [
        (
            "/v1/bookings".to_owned(),
            // guest_id may be left out (it defaults to the caller); the listing may not.
            booking(&listing, json!({ "listing_id": null })),
            "listing_id",
        ),
        (
            "/v1/holds".to_owned(),
            hold(&listing, json!({ "check_in": null })),
            "check_in",
        ),
        (
            "/v1/listings".to_owned(),
            new_listing(json!({ "time_zone": null })),
            "time_zone",
        ),
        (
            format!("/v1/listings/{listing}/blocks"),
            block(json!({ "end": null })),
            "end",
        ),
        (
            "/v1/availability/batch".to_owned(),
            batch(&listing, json!({ "listing_ids": null })),
            "listing_ids",
        ),
    ];
    for (path, body, field) in &cases {
        assert_invalid(&app.post(path, body).await, field);
    }
    before.check(&app).await;
}

async fn impossible_dates_are_named(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let bodies = [
        (
            "/v1/bookings".to_owned(),
            booking(&listing, json!({ "check_in": "2030-02-30" })),
            "check_in",
        ),
        (
            "/v1/bookings".to_owned(),
            booking(&listing, json!({ "check_out": "not-a-date" })),
            "check_out",
        ),
        (
            "/v1/holds".to_owned(),
            hold(&listing, json!({ "check_in": "2030-02-30" })),
            "check_in",
        ),
        (
            "/v1/holds".to_owned(),
            hold(&listing, json!({ "check_out": "2030-3-4" })),
            "check_out",
        ),
        (
            format!("/v1/listings/{listing}/blocks"),
            block(json!({ "start": "2030-13-01" })),
            "start",
        ),
        (
            format!("/v1/listings/{listing}/blocks"),
            block(json!({ "end": "" })),
            "end",
        ),
        (
            "/v1/availability/batch".to_owned(),
            batch(&listing, json!({ "check_in": "2030-02-30" })),
            "check_in",
        ),
    ];
    for (path, body, field) in &bodies {
        assert_invalid(&app.post(path, body).await, field);
    }
    let queries = [
        (
            format!("/v1/listings/{listing}/calendar?start=2030-02-30&end=2030-03-05"),
            "start",
        ),
        (
            format!("/v1/listings/{listing}/calendar?start=2030-03-01&end=not-a-date"),
            "end",
        ),
        (
            format!("/v1/listings/{listing}/availability?check_in=2030-02-30&check_out=2030-03-05"),
            "check_in",
        ),
        (
            format!("/v1/listings/{listing}/availability?check_in=2030-03-01&check_out=not-a-date"),
            "check_out",
        ),
        (
            format!("/v1/listings/{listing}/blocks?start=2030-02-29&end=2030-03-05"),
            "start",
        ),
    ];
    for (path, field) in &queries {
        assert_invalid(&app.get(path).await, field);
    }
    let reply = app
        .delete(&format!(
            "/v1/listings/{listing}/blocks?start=2030-03-01&end=2030-02-31"
        ))
        .await;
    assert_invalid(&reply, "end");
    before.check(&app).await;
}

/// Posts `body` to each stay-taking endpoint and asserts the problem names `field`.
async fn assert_stay_bodies_invalid(app: &TestApp, listing: &str, dates: Value, field: &str) {
    assert_invalid(
        &app.post("/v1/bookings", &booking(listing, dates.clone()))
            .await,
        field,
    );
    assert_invalid(
        &app.post("/v1/holds", &hold(listing, dates.clone())).await,
        field,
    );
    assert_invalid(
        &app.post("/v1/availability/batch", &batch(listing, dates))
            .await,
        field,
    );
}

async fn inverted_and_empty_ranges_blame_the_end(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    for (start, end) in [
        ("2030-03-05", "2030-03-01"),
        ("2030-03-01", "2030-03-01"),
        ("2030-03-02", "2030-03-01"),
    ] {
        let dates = json!({ "check_in": start, "check_out": end });
        assert_stay_bodies_invalid(&app, &listing, dates, "check_out").await;
        let reply = app
            .get(&format!(
                "/v1/listings/{listing}/availability?check_in={start}&check_out={end}"
            ))
            .await;
        assert_invalid(&reply, "check_out");
        let range = format!("start={start}&end={end}");
        assert_invalid(
            &app.get(&format!("/v1/listings/{listing}/calendar?{range}"))
                .await,
            "end",
        );
        assert_invalid(
            &app.get(&format!("/v1/listings/{listing}/blocks?{range}"))
                .await,
            "end",
        );
        assert_invalid(
            &app.delete(&format!("/v1/listings/{listing}/blocks?{range}"))
                .await,
            "end",
        );
        let body = json!({ "start": start, "end": end });
        assert_invalid(
            &app.post(&format!("/v1/listings/{listing}/blocks"), &body)
                .await,
            "end",
        );
    }
    before.check(&app).await;
}

async fn a_range_over_731_nights_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    // 2030-01-01 + 732 nights = 2032-01-03 (2031 is not a leap year, 2032 is but after Feb).
    let (start, too_far, just_right) = ("2030-01-01", "2032-01-03", "2032-01-02");
    assert_invalid(
        &app.get(&format!(
            "/v1/listings/{listing}/calendar?start={start}&end={too_far}"
        ))
        .await,
        "end",
    );
    let far = "2099-12-31";
    assert_invalid(
        &app.get(&format!(
            "/v1/listings/{listing}/calendar?start={start}&end={far}"
        ))
        .await,
        "end",
    );
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/availability?check_in={start}&check_out={too_far}"
        ))
        .await;
    assert_invalid(&reply, "check_out");
    assert_invalid(
        &app.get(&format!(
            "/v1/listings/{listing}/blocks?start={start}&end={too_far}"
        ))
        .await,
        "end",
    );
    let body = json!({ "start": start, "end": too_far });
    assert_invalid(
        &app.post(&format!("/v1/listings/{listing}/blocks"), &body)
            .await,
        "end",
    );
    let dates = json!({ "check_in": start, "check_out": too_far });
    assert_stay_bodies_invalid(&app, &listing, dates, "check_out").await;
    before.check(&app).await;
    // 731 nights is the longest range a calendar answers.
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/calendar?start={start}&end={just_right}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["nights"].as_array().map(Vec::len), Some(731));
}

async fn dates_out_of_bounds_are_refused(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let either = ["check_in", "check_out"];
    for (start, end) in [("1999-06-01", "1999-06-05"), ("2201-01-01", "2201-01-03")] {
        let dates = json!({ "check_in": start, "check_out": end });
        for path in ["/v1/bookings", "/v1/holds", "/v1/availability/batch"] {
            let body = match path {
                "/v1/bookings" => booking(&listing, dates.clone()),
                "/v1/holds" => hold(&listing, dates.clone()),
                _ => batch(&listing, dates.clone()),
            };
            let reply = app.post(path, &body).await;
            assert_problem(
                &reply,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
            );
            let field = reply.body["errors"][0]["field"]
                .as_str()
                .unwrap_or_default();
            assert!(either.contains(&field), "{}", reply.body);
        }
        let reply = app
            .get(&format!(
                "/v1/listings/{listing}/availability?check_in={start}&check_out={end}"
            ))
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        let reply = app
            .get(&format!(
                "/v1/listings/{listing}/calendar?start={start}&end={end}"
            ))
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        let body = json!({ "start": start, "end": end });
        let reply = app
            .post(&format!("/v1/listings/{listing}/blocks"), &body)
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
    }
    // Only the end is out of bounds: the end is to blame.
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/calendar?start=2199-12-30&end=2200-01-02"
        ))
        .await;
    assert_invalid(&reply, "end");
    before.check(&app).await;
}

async fn an_out_of_bounds_start_blames_the_start(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    // The check-out date is fine; only the check-in date lies before 2000-01-01.
    let dates = json!({ "check_in": "1999-12-31", "check_out": "2000-01-02" });
    assert_stay_bodies_invalid(&app, &listing, dates, "check_in").await;
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/availability?check_in=1999-12-31&check_out=2000-01-02"
        ))
        .await;
    assert_invalid(&reply, "check_in");
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/calendar?start=1999-12-31&end=2000-01-02"
        ))
        .await;
    assert_invalid(&reply, "start");
    before.check(&app).await;
}

async fn units_must_be_1_to_10000(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    for units in [0, 10_001, 65_536] {
        let units_patch = json!({ "units": units });
        let cases = [
            (
                "/v1/bookings".to_owned(),
                booking(&listing, units_patch.clone()),
            ),
            ("/v1/holds".to_owned(), hold(&listing, units_patch.clone())),
            (
                "/v1/availability/batch".to_owned(),
                batch(&listing, units_patch.clone()),
            ),
            (
                format!("/v1/listings/{listing}/blocks"),
                block(units_patch.clone()),
            ),
            ("/v1/listings".to_owned(), new_listing(units_patch.clone())),
        ];
        for (path, body) in &cases {
            assert_invalid(&app.post(path, body).await, "units");
        }
        let path = format!(
            "/v1/listings/{listing}/availability?check_in={CHECK_IN}&check_out={CHECK_OUT}&units={units}"
        );
        assert_invalid(&app.get(&path).await, "units");
        assert_invalid(
            &app.patch(&format!("/v1/listings/{listing}"), &units_patch)
                .await,
            "units",
        );
    }
    let path = format!(
        "/v1/listings/{listing}/availability?check_in={CHECK_IN}&check_out={CHECK_OUT}&units=two"
    );
    assert_invalid(&app.get(&path).await, "units");
    before.check(&app).await;
    // The largest listing there may be is accepted.
    let reply = app
        .post("/v1/listings", &new_listing(json!({ "units": 10_000 })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["units"], 10_000);
}

async fn hold_ttl_must_be_60_to_86400_seconds(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(2, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    for ttl in [0, 10, 59, 86_401, 100_000] {
        assert_invalid(
            &app.post("/v1/holds", &hold(&listing, json!({ "ttl_seconds": ttl })))
                .await,
            "ttl_seconds",
        );
    }
    before.check(&app).await;
    // The bounds themselves are allowed.
    for (ttl, expires_at) in [
        (60, "2030-01-01T12:01:00Z"),
        (86_400, "2030-01-02T12:00:00Z"),
    ] {
        let reply = app
            .post("/v1/holds", &hold(&listing, json!({ "ttl_seconds": ttl })))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["expires_at"], expires_at, "{}", reply.body);
    }
}

async fn malformed_ids_are_refused(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let longest = "a".repeat(64);
    let too_long = "a".repeat(65);
    for bad in [
        "",
        too_long.as_str(),
        "has space",
        "naïve",
        "a/b",
        "a\u{0}b",
        " lead",
    ] {
        let reply = app
            .post(
                "/v1/bookings",
                &booking(&listing, json!({ "listing_id": bad })),
            )
            .await;
        assert_invalid(&reply, "listing_id");
        let reply = app
            .post(
                "/v1/bookings",
                &booking(&listing, json!({ "guest_id": bad })),
            )
            .await;
        assert_invalid(&reply, "guest_id");
        let reply = app
            .post("/v1/holds", &hold(&listing, json!({ "listing_id": bad })))
            .await;
        assert_invalid(&reply, "listing_id");
        let reply = app
            .post("/v1/holds", &hold(&listing, json!({ "guest_id": bad })))
            .await;
        assert_invalid(&reply, "guest_id");
        assert_invalid(
            &app.post("/v1/listings", &new_listing(json!({ "id": bad })))
                .await,
            "id",
        );
        assert_invalid(
            &app.post("/v1/listings", &new_listing(json!({ "host_id": bad })))
                .await,
            "host_id",
        );
    }
    for (i, bad) in [(0, ""), (1, too_long.as_str())] {
        let mut ids = vec![listing.clone(); 3];
        ids[i] = bad.to_owned();
        let reply = app
            .post(
                "/v1/availability/batch",
                &batch(&listing, json!({ "listing_ids": ids })),
            )
            .await;
        assert_invalid(&reply, &format!("listing_ids[{i}]"));
    }
    before.check(&app).await;
    // 64 characters of the allowed alphabet is a fine id.
    let reply = app
        .post("/v1/listings", &new_listing(json!({ "id": longest })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = app
        .post("/v1/listings", &new_listing(json!({ "id": "Ab-9_x.y:z" })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn unknown_and_missing_query_parameters_are_named(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let range = format!("start={CHECK_IN}&end={CHECK_OUT}");
    let stay = format!("check_in={CHECK_IN}&check_out={CHECK_OUT}");
    let cases = [
        (
            format!("/v1/listings/{listing}/calendar?{range}&foo=1"),
            "foo",
        ),
        (
            format!("/v1/listings/{listing}/calendar?{range}&version=3"),
            "version",
        ),
        (
            format!("/v1/listings/{listing}/availability?{stay}&guests=2"),
            "guests",
        ),
        (
            format!("/v1/listings/{listing}/availability?{stay}&start=2030-03-01"),
            "start",
        ),
        (
            format!("/v1/listings/{listing}/blocks?{range}&all=true"),
            "all",
        ),
        (
            format!("/v1/listings/{listing}/calendar?start={CHECK_IN}"),
            "end",
        ),
        (
            format!("/v1/listings/{listing}/calendar?end={CHECK_OUT}"),
            "start",
        ),
        (
            format!("/v1/listings/{listing}/availability?check_in={CHECK_IN}"),
            "check_out",
        ),
        (
            format!("/v1/listings/{listing}/availability?check_out={CHECK_OUT}&units=1"),
            "check_in",
        ),
        (
            format!("/v1/listings/{listing}/blocks?start={CHECK_IN}"),
            "end",
        ),
    ];
    for (path, field) in &cases {
        assert_invalid(&app.get(path).await, field);
    }
    for (path, field) in [
        (
            format!("/v1/listings/{listing}/blocks?{range}&units=1"),
            "units",
        ),
        (
            format!("/v1/listings/{listing}/blocks?end={CHECK_OUT}"),
            "start",
        ),
    ] {
        assert_invalid(&app.delete(&path).await, field);
    }
    // No query string at all names one of the missing parameters.
    let reply = app.get(&format!("/v1/listings/{listing}/calendar")).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let field = reply.body["errors"][0]["field"]
        .as_str()
        .unwrap_or_default();
    assert!(["start", "end"].contains(&field), "{}", reply.body);
    before.check(&app).await;
}

async fn a_batch_over_1000_ids_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let ids: Vec<String> = (0..1001).map(|i| format!("listing-{i}")).collect();
    let reply = app
        .post(
            "/v1/availability/batch",
            &batch(&listing, json!({ "listing_ids": ids })),
        )
        .await;
    assert_invalid(&reply, "listing_ids");
    before.check(&app).await;
}

async fn an_unknown_listing_is_a_404(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let ghost = "no-such-listing";
    assert_problem(
        &app.post("/v1/holds", &hold(ghost, json!({}))).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &app.post("/v1/bookings", &booking(ghost, json!({}))).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let reads = [
        format!("/v1/listings/{ghost}"),
        format!("/v1/listings/{ghost}/calendar?start={CHECK_IN}&end={CHECK_OUT}"),
        format!("/v1/listings/{ghost}/availability?check_in={CHECK_IN}&check_out={CHECK_OUT}"),
    ];
    for path in &reads {
        assert_problem(&app.get(path).await, StatusCode::NOT_FOUND, "not-found");
    }
    let reply = app
        .patch(
            &format!("/v1/listings/{ghost}"),
            &json!({ "min_nights": 2 }),
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    // Input is validated before the listing is looked up: bad input on an unknown listing is 422.
    let reply = app
        .post("/v1/bookings", &booking(ghost, json!({ "units": 0 })))
        .await;
    assert_invalid(&reply, "units");
    before.check(&app).await;
}

async fn unknown_holds_and_bookings_are_404s(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(2, json!({})).await;
    let hold_reply = app.hold(&listing, "2030-03-01", "2030-03-03", 600).await;
    assert_eq!(
        hold_reply.status,
        StatusCode::CREATED,
        "{}",
        hold_reply.body
    );
    let hold_id = hold_reply.body["id"].as_str().expect("hold id").to_owned();
    let booking_reply = app.book(&listing, "2030-03-05", "2030-03-07", 1).await;
    assert_eq!(
        booking_reply.status,
        StatusCode::CREATED,
        "{}",
        booking_reply.body
    );
    let booking_id = booking_reply.body["id"]
        .as_str()
        .expect("booking id")
        .to_owned();
    let before = Unchanged::capture(&app, &listing).await;
    // Unknown ids, and a hold's id where a booking is expected (and the reverse).
    for (hold, booking) in [
        ("no-such-hold", "no-such-booking"),
        (booking_id.as_str(), hold_id.as_str()),
    ] {
        assert_problem(
            &app.get(&format!("/v1/holds/{hold}")).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
        let reply = app
            .post(&format!("/v1/holds/{hold}/confirm"), &json!({}))
            .await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
        let reply = app
            .post(&format!("/v1/holds/{hold}/release"), &json!({}))
            .await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
        assert_problem(
            &app.get(&format!("/v1/bookings/{booking}")).await,
            StatusCode::NOT_FOUND,
            "not-found",
        );
        let reply = app
            .post(&format!("/v1/bookings/{booking}/cancel"), &json!({}))
            .await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    }
    before.check(&app).await;
    assert_eq!(
        app.get(&format!("/v1/holds/{hold_id}")).await.body["state"],
        "active"
    );
    assert_eq!(
        app.get(&format!("/v1/bookings/{booking_id}")).await.body["state"],
        "active"
    );
}

async fn unknown_routes_and_methods_are_problems(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let url = |path: &str| format!("{}{path}", app.base);
    for path in [
        "/",
        "/v1",
        "/v1/nope",
        "/v2/bookings",
        "/v1/listings/x/y/z",
        "/healthz/extra",
    ] {
        assert_problem(&app.get(path).await, StatusCode::NOT_FOUND, "not-found");
    }
    let reply = app.post("/v1/booking", &booking(&listing, json!({}))).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    let wrong_methods = [
        app.http.delete(url("/v1/bookings")),
        app.http.get(url("/v1/holds")),
        app.http.put(url(&format!("/v1/listings/{listing}"))),
        app.http.delete(url(&format!("/v1/listings/{listing}"))),
        app.http
            .post(url(&format!("/v1/listings/{listing}/calendar"))),
        app.http.get(url("/v1/availability/batch")),
        app.http.get(url("/v1/holds/x/confirm")),
        app.http.patch(url("/healthz")),
        app.http.post(url("/metrics")),
    ];
    for request in wrong_methods {
        assert_problem(
            &send(request).await,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        );
    }
    before.check(&app).await;
}

async fn a_405_names_the_allowed_methods(backend: Backend) {
    let app = spawn(backend).await;
    let url = |path: &str| format!("{}{path}", app.base);
    let cases = [
        (app.http.delete(url("/v1/bookings")), vec!["POST"]),
        (app.http.put(url("/v1/listings/x")), vec!["GET", "PATCH"]),
        (
            app.http.put(url("/v1/listings/x/blocks")),
            vec!["DELETE", "GET", "POST"],
        ),
    ];
    for (request, methods) in cases {
        let reply = send(request).await;
        assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
        let allow = reply
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut allowed: Vec<&str> = allow
            .split(',')
            .map(str::trim)
            .filter(|m| *m != "HEAD")
            .collect();
        allowed.sort_unstable();
        assert_eq!(allowed, methods, "Allow: {allow:?}");
    }
}

async fn a_date_must_be_a_plain_calendar_date(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    // Dates are documented as YYYY-MM-DD: an instant or another ISO 8601 form is refused, not
    // silently cut down to its date (which is another day for the client's own offset).
    for date in [
        "2030-03-01T23:00:00-10:00",
        "2030-03-01T23:00:00",
        "20300301",
        "+002030-03-01",
        "2030-03-01[Pacific/Honolulu]",
    ] {
        let reply = app
            .post(
                "/v1/bookings",
                &booking(&listing, json!({ "check_in": date })),
            )
            .await;
        assert_invalid(&reply, "check_in");
        let query = format!(
            "check_in={}&check_out={CHECK_OUT}",
            date.replace('+', "%2B")
                .replace('[', "%5B")
                .replace(']', "%5D")
        );
        assert_invalid(
            &app.get(&format!("/v1/listings/{listing}/availability?{query}"))
                .await,
            "check_in",
        );
    }
    before.check(&app).await;
}

async fn an_idempotency_key_must_be_1_to_255_visible_characters(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let too_long = "k".repeat(256);
    for key in [too_long.as_str(), "", "with space", "tab\there"] {
        for (path, body) in json_endpoints(&listing)
            .into_iter()
            .filter(|(p, _)| !p.ends_with("batch"))
        {
            let reply = app.post_with_key(&path, &body, Some(key)).await;
            assert_invalid(&reply, "Idempotency-Key");
        }
        let request = app
            .http
            .post(format!("{}/v1/holds/x/confirm", app.base))
            .header("Idempotency-Key", key);
        assert_invalid(&send(request).await, "Idempotency-Key");
    }
    before.check(&app).await;
    let longest = "k".repeat(255);
    let reply = app
        .post_with_key(
            "/v1/bookings",
            &booking(&listing, json!({})),
            Some(&longest),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

async fn garbage_never_yields_a_5xx(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let long = "z".repeat(5_000);
    let paths = [
        format!("/v1/listings/{long}"),
        format!("/v1/listings/{long}/calendar?start={CHECK_IN}&end={CHECK_OUT}"),
        "/v1/listings/%ZZ".to_owned(),
        "/v1/listings/%F0%9F%8F%A0/calendar?start=2030-03-01&end=2030-03-04".to_owned(),
        format!("/v1/listings/{listing}/calendar?start=%FF&end=2030-03-04"),
        format!("/v1/listings/{listing}/calendar?start=2030-03-01&start=2030-03-02&end=2030-03-04"),
        format!(
            "/v1/listings/{listing}/availability?check_in={CHECK_IN}&check_out={CHECK_OUT}&units=99999999999"
        ),
        format!(
            "/v1/listings/{listing}/availability?check_in={CHECK_IN}&check_out={CHECK_OUT}&units=-1"
        ),
        format!("/v1/bookings/{long}"),
    ];
    for path in &paths {
        let reply = app.get(path).await;
        assert!(
            reply.status.is_client_error(),
            "GET {path}: {} {}",
            reply.status,
            reply.body
        );
        assert_eq!(
            reply.content_type(),
            "application/problem+json",
            "GET {path}"
        );
    }
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies = [
        ("/v1/bookings", nested.clone()),
        ("/v1/bookings", "42".to_owned()),
        ("/v1/bookings", "null".to_owned()),
        ("/v1/bookings", "\"a string\"".to_owned()),
        ("/v1/bookings", "[]".to_owned()),
        ("/v1/availability/batch", nested),
        (
            "/v1/listings",
            new_listing(json!({ "time_zone": "\u{0}" })).to_string(),
        ),
        (
            "/v1/listings",
            new_listing(json!({ "time_zone": long })).to_string(),
        ),
    ];
    for (path, body) in &bodies {
        let reply = app.post_raw(path, "application/json", body.clone()).await;
        assert!(
            reply.status.is_client_error(),
            "POST {path} {body:.80}: {} {}",
            reply.status,
            reply.body
        );
        assert_eq!(
            reply.content_type(),
            "application/problem+json",
            "POST {path}"
        );
    }
    let batch_ids = json!({ "listing_ids": ["🏠", "%00", "' OR 1=1 --"], "check_in": CHECK_IN, "check_out": CHECK_OUT });
    // Ids outside the id grammar cannot name a listing: the caller has a bug, and hears so.
    let reply = app.post("/v1/availability/batch", &batch_ids).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body["errors"][0]["field"], "listing_ids[0]",
        "{}",
        reply.body
    );
    before.check(&app).await;
}

async fn a_path_that_is_not_utf8_is_a_problem(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    for path in [
        "/v1/listings/%FF",
        "/v1/holds/%C3%28",
        "/v1/bookings/%FE%FF/cancel",
    ] {
        let reply = if path.ends_with("cancel") {
            app.post(path, &json!({})).await
        } else {
            app.get(path).await
        };
        assert!(
            reply.status.is_client_error(),
            "{path}: {} {}",
            reply.status,
            reply.body
        );
        assert_eq!(
            reply.content_type(),
            "application/problem+json",
            "{path}: {}",
            reply.body
        );
    }
    before.check(&app).await;
}

async fn a_nul_byte_in_an_id_never_yields_a_5xx(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let before = Unchanged::capture(&app, &listing).await;
    let range = format!("start={CHECK_IN}&end={CHECK_OUT}");
    let stay = format!("check_in={CHECK_IN}&check_out={CHECK_OUT}");
    let mut replies = Vec::new();
    for path in [
        "/v1/listings/a%00b".to_owned(),
        format!("/v1/listings/a%00b/calendar?{range}"),
        format!("/v1/listings/a%00b/availability?{stay}"),
        format!("/v1/listings/a%00b/blocks?{range}"),
        "/v1/holds/a%00b".to_owned(),
        "/v1/bookings/a%00b".to_owned(),
    ] {
        replies.push((format!("GET {path}"), app.get(&path).await));
    }
    for path in [
        "/v1/holds/a%00b/confirm",
        "/v1/holds/a%00b/release",
        "/v1/bookings/a%00b/cancel",
    ] {
        replies.push((format!("POST {path}"), app.post(path, &json!({})).await));
    }
    replies.push((
        "POST blocks".into(),
        app.post("/v1/listings/a%00b/blocks", &block(json!({})))
            .await,
    ));
    replies.push((
        "PATCH listing".into(),
        app.patch("/v1/listings/a%00b", &json!({ "min_nights": 2 }))
            .await,
    ));
    replies.push((
        "DELETE blocks".into(),
        app.delete(&format!("/v1/listings/a%00b/blocks?{range}"))
            .await,
    ));
    let body = batch(&listing, json!({ "listing_ids": [&listing, "a\u{0}b"] }));
    replies.push((
        "POST batch".into(),
        app.post("/v1/availability/batch", &body).await,
    ));
    let failed: Vec<String> = replies
        .iter()
        .filter(|(_, r)| {
            r.status.is_server_error()
                || (!r.status.is_success() && r.content_type() != "application/problem+json")
        })
        .map(|(what, r)| format!("{what} -> {}", r.status))
        .collect();
    assert!(failed.is_empty(), "answered with a 5xx: {failed:#?}");
    before.check(&app).await;
}

crate::backend_tests!(
    malformed_json_is_a_400,
    a_body_that_is_not_json_is_a_415,
    a_body_over_the_limit_is_a_413,
    an_unknown_body_field_is_named,
    a_field_of_the_wrong_type_is_named,
    impossible_dates_are_named,
    inverted_and_empty_ranges_blame_the_end,
    a_range_over_731_nights_is_refused,
    dates_out_of_bounds_are_refused,
    units_must_be_1_to_10000,
    hold_ttl_must_be_60_to_86400_seconds,
    malformed_ids_are_refused,
    unknown_and_missing_query_parameters_are_named,
    a_batch_over_1000_ids_is_refused,
    an_unknown_listing_is_a_404,
    unknown_holds_and_bookings_are_404s,
    unknown_routes_and_methods_are_problems,
    a_405_names_the_allowed_methods,
    an_idempotency_key_must_be_1_to_255_visible_characters,
    garbage_never_yields_a_5xx,
    a_missing_body_field_is_named,
    a_date_must_be_a_plain_calendar_date,
    an_out_of_bounds_start_blames_the_start,
    a_path_that_is_not_utf8_is_a_problem,
    a_nul_byte_in_an_id_never_yields_a_5xx,
);
