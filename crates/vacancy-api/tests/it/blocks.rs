//! Host blocks: closing nights (whole or partial units), listing them, and reopening ranges,
//! which trims or splits blocks.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_store::Backend;

use crate::helpers::{Reply, TestApp, spawn};

async fn add_block(app: &TestApp, listing: &str, body: Value) -> Reply {
    app.post(&format!("/v1/listings/{listing}/blocks"), &body)
        .await
}

async fn list_blocks(app: &TestApp, listing: &str, start: &str, end: &str) -> Vec<Value> {
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/blocks?start={start}&end={end}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["blocks"].as_array().expect("blocks").clone()
}

/// The `[start, end)` of each block, in order.
fn spans(blocks: &[Value]) -> Vec<(String, String)> {
    blocks
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap_or_default().to_owned(),
                b["end"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn span(start: &str, end: &str) -> (String, String) {
    (start.to_owned(), end.to_owned())
}

async fn version(app: &TestApp, listing: &str) -> i64 {
    let reply = app.get(&format!("/v1/listings/{listing}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["version"].as_i64().expect("version")
}

async fn statuses(app: &TestApp, listing: &str, start: &str, end: &str) -> Vec<String> {
    let reply = app
        .get(&format!(
            "/v1/listings/{listing}/calendar?start={start}&end={end}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let nights = reply.body["nights"].as_array().expect("nights");
    nights
        .iter()
        .map(|n| n["status"].as_str().unwrap_or_default().to_owned())
        .collect()
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

async fn a_block_closes_its_nights(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let version_before = version(&app, &listing).await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-04", "note": "painting" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/json");
    let block = &reply.body;
    assert!(
        block["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{block}"
    );
    assert_eq!(block["listing_id"], listing.as_str());
    assert_eq!(
        (block["start"].clone(), block["end"].clone()),
        (json!("2030-03-01"), json!("2030-03-04"))
    );
    assert_eq!(
        block["units"], 1,
        "a block without units closes all of them"
    );
    assert_eq!(block["note"], "painting");
    assert_eq!(block["created_at"], "2030-01-01T12:00:00Z");
    assert_eq!(version(&app, &listing).await, version_before + 1);
    assert_eq!(
        app.remaining(&listing, "2030-02-28", "2030-03-05").await,
        vec![1, 0, 0, 0, 1]
    );
    let expected = [
        "available",
        "unavailable",
        "unavailable",
        "unavailable",
        "available",
    ];
    assert_eq!(
        statuses(&app, &listing, "2030-02-28", "2030-03-05").await,
        expected
    );
    // A stay over a blocked night is a conflict naming it, and so is a hold.
    let reply = app.book(&listing, "2030-03-03", "2030-03-06", 1).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-03"]));
    let reply = app.hold(&listing, "2030-02-27", "2030-03-02", 600).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-01"]));
    let path =
        format!("/v1/listings/{listing}/availability?check_in=2030-02-28&check_out=2030-03-03");
    let answer = app.get(&path).await.body;
    assert_eq!(
        answer["reasons"],
        json!([{ "reason": "nights_unavailable", "nights": ["2030-03-01", "2030-03-02"] }])
    );
    // Around it the listing is bookable: check-out on the block's first night, check-in on its end.
    assert_eq!(
        app.book(&listing, "2030-02-27", "2030-03-01", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.book(&listing, "2030-03-04", "2030-03-06", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    app.assert_no_overbooking().await;
}

async fn a_partial_block_leaves_the_other_units(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(5, json!({})).await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-03", "units": 2 }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["units"], 2);
    assert_eq!(reply.body["note"], Value::Null);
    assert_eq!(
        app.remaining(&listing, "2030-02-28", "2030-03-04").await,
        vec![5, 3, 3, 5]
    );
    // Blocks stack: another unit closed on one night.
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-02", "end": "2030-03-03", "units": 1 }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-03").await,
        vec![3, 2]
    );
    // Bookings take what is left and no more.
    let reply = app.book(&listing, "2030-03-01", "2030-03-03", 3).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-02"]));
    assert_eq!(
        app.book(&listing, "2030-03-01", "2030-03-03", 2)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-03").await,
        vec![1, 0]
    );
    let reply = app.book(&listing, "2030-03-02", "2030-03-03", 1).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    // More units than the listing has is a rules problem, and writes nothing.
    let events = app.events().await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-04-01", "end": "2030-04-03", "units": 6 }),
    )
    .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "stay-rules-broken",
    );
    assert_eq!(
        reply.body["reasons"],
        json!([{ "reason": "too_many_units", "requested": 6, "units": 5 }])
    );
    assert_eq!(app.events().await, events);
    app.assert_no_overbooking().await;
}

async fn a_block_over_taken_nights_is_a_409(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(2, json!({})).await;
    assert_eq!(
        app.book(&listing, "2030-03-02", "2030-03-04", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.hold(&listing, "2030-03-03", "2030-03-05", 600)
            .await
            .status,
        StatusCode::CREATED
    );
    let version_before = version(&app, &listing).await;
    let events = app.events().await;
    // All units (the default) cannot be closed where anything is taken.
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-06" }),
    )
    .await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(
        reply.body["nights"],
        json!(["2030-03-02", "2030-03-03", "2030-03-04"])
    );
    // One unit cannot be closed where both are taken (03-03: a booking and a hold).
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-06", "units": 1 }),
    )
    .await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    assert_eq!(reply.body["nights"], json!(["2030-03-03"]));
    assert_eq!(version(&app, &listing).await, version_before);
    assert_eq!(app.events().await, events);
    assert!(
        list_blocks(&app, &listing, "2030-03-01", "2030-03-06")
            .await
            .is_empty()
    );
    // Where one unit is free, one unit can be closed.
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-03", "units": 1 }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-06").await,
        vec![1, 0, 0, 1, 2]
    );
    app.assert_no_overbooking().await;
}

async fn listing_blocks_returns_those_overlapping_the_range(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let other = app.listing(1, json!({})).await;
    for (start, end) in [
        ("2030-04-01", "2030-04-05"),
        ("2030-03-01", "2030-03-03"),
        ("2030-03-10", "2030-03-12"),
    ] {
        let reply = add_block(&app, &listing, json!({ "start": start, "end": end })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let reply = add_block(
        &app,
        &other,
        json!({ "start": "2030-03-01", "end": "2030-03-30" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // In night order, only this listing's, only those sharing a night with the range.
    let blocks = list_blocks(&app, &listing, "2030-03-02", "2030-03-11").await;
    assert_eq!(
        spans(&blocks),
        vec![
            span("2030-03-01", "2030-03-03"),
            span("2030-03-10", "2030-03-12")
        ]
    );
    assert!(blocks.iter().all(|b| b["listing_id"] == listing.as_str()));
    let all = list_blocks(&app, &listing, "2030-01-01", "2030-12-31").await;
    assert_eq!(spans(&all).len(), 3);
    assert_eq!(spans(&all)[2], span("2030-04-01", "2030-04-05"));
    // The range is half-open: a range ending on a block's start, or starting on its end, misses it.
    assert!(
        list_blocks(&app, &listing, "2030-02-20", "2030-03-01")
            .await
            .is_empty()
    );
    assert!(
        list_blocks(&app, &listing, "2030-03-03", "2030-03-10")
            .await
            .is_empty()
    );
    assert_eq!(
        list_blocks(&app, &listing, "2030-03-11", "2030-03-12")
            .await
            .len(),
        1
    );
    // An unblocked listing has none.
    let empty = app.listing(1, json!({})).await;
    assert!(
        list_blocks(&app, &empty, "2030-01-01", "2030-12-31")
            .await
            .is_empty()
    );
}

async fn reopening_the_middle_splits_a_block(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-10", "note": "renovation" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let version_before = version(&app, &listing).await;
    let events = app.events().await;
    let reply = app
        .delete(&format!(
            "/v1/listings/{listing}/blocks?start=2030-03-04&end=2030-03-06"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, json!({ "blocks_changed": 1 }));
    assert_eq!(version(&app, &listing).await, version_before + 1);
    assert_eq!(app.events().await, events + 1);
    let blocks = list_blocks(&app, &listing, "2030-03-01", "2030-03-10").await;
    assert_eq!(
        spans(&blocks),
        vec![
            span("2030-03-01", "2030-03-04"),
            span("2030-03-06", "2030-03-10")
        ]
    );
    assert!(
        blocks
            .iter()
            .all(|b| b["note"] == "renovation" && b["units"] == 1),
        "{blocks:?}"
    );
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-10").await,
        vec![0, 0, 0, 1, 1, 0, 0, 0, 0]
    );
    // The reopened nights are bookable, their neighbours still are not.
    assert_eq!(
        app.book(&listing, "2030-03-04", "2030-03-06", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    let reply = app.book(&listing, "2030-03-06", "2030-03-07", 1).await;
    assert_problem(&reply, StatusCode::CONFLICT, "nights-unavailable");
    // Trimming an edge of each piece at once changes both.
    let reply = app
        .delete(&format!(
            "/v1/listings/{listing}/blocks?start=2030-03-03&end=2030-03-07"
        ))
        .await;
    assert_eq!(reply.body, json!({ "blocks_changed": 2 }));
    let blocks = list_blocks(&app, &listing, "2030-03-01", "2030-03-10").await;
    assert_eq!(
        spans(&blocks),
        vec![
            span("2030-03-01", "2030-03-03"),
            span("2030-03-07", "2030-03-10")
        ]
    );
    // Reopening everything removes them.
    let reply = app
        .delete(&format!(
            "/v1/listings/{listing}/blocks?start=2030-02-01&end=2030-04-01"
        ))
        .await;
    assert_eq!(reply.body, json!({ "blocks_changed": 2 }));
    assert!(
        list_blocks(&app, &listing, "2030-01-01", "2030-12-31")
            .await
            .is_empty()
    );
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-10").await,
        vec![1, 1, 1, 0, 0, 1, 1, 1, 1]
    );
    app.assert_no_overbooking().await;
}

async fn reopening_only_frees_the_blocked_units(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(3, json!({})).await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-04", "units": 2 }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        app.book(&listing, "2030-03-01", "2030-03-04", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-04").await,
        vec![0, 0, 0]
    );
    let reply = app
        .delete(&format!(
            "/v1/listings/{listing}/blocks?start=2030-03-02&end=2030-03-03"
        ))
        .await;
    assert_eq!(reply.body, json!({ "blocks_changed": 1 }));
    // The booking keeps its unit; the block's two come back on the reopened night only.
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-04").await,
        vec![0, 2, 0]
    );
    let blocks = list_blocks(&app, &listing, "2030-03-01", "2030-03-04").await;
    assert!(blocks.iter().all(|b| b["units"] == 2), "{blocks:?}");
    app.assert_no_overbooking().await;
}

async fn reopening_nothing_changes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-03" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        app.book(&listing, "2030-03-05", "2030-03-07", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    let version_before = version(&app, &listing).await;
    let events = app.events().await;
    // Next to the block, and over a booking (which a block removal must not touch).
    for (start, end) in [("2030-03-03", "2030-03-08"), ("2030-02-01", "2030-03-01")] {
        let reply = app
            .delete(&format!(
                "/v1/listings/{listing}/blocks?start={start}&end={end}"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body, json!({ "blocks_changed": 0 }));
    }
    assert_eq!(version(&app, &listing).await, version_before);
    assert_eq!(app.events().await, events);
    assert_eq!(
        app.remaining(&listing, "2030-03-01", "2030-03-07").await,
        vec![0, 0, 1, 1, 0, 0]
    );
}

async fn blocks_of_an_unknown_listing_are_404s(backend: Backend) {
    let app = spawn(backend).await;
    let events = app.events().await;
    let reply = add_block(
        &app,
        "ghost",
        json!({ "start": "2030-03-01", "end": "2030-03-03" }),
    )
    .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    let range = "start=2030-03-01&end=2030-03-03";
    assert_problem(
        &app.get(&format!("/v1/listings/ghost/blocks?{range}")).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &app.delete(&format!("/v1/listings/ghost/blocks?{range}"))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_eq!(app.events().await, events);
}

async fn a_block_note_is_at_most_500_characters(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let events = app.events().await;
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-03", "note": "é".repeat(501) }),
    )
    .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(reply.body["errors"][0]["field"], "note");
    assert_eq!(app.events().await, events);
    // 500 characters count as characters, not bytes.
    let note = "é".repeat(500);
    let reply = add_block(
        &app,
        &listing,
        json!({ "start": "2030-03-01", "end": "2030-03-03", "note": note }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        list_blocks(&app, &listing, "2030-03-01", "2030-03-03").await[0]["note"],
        note.as_str()
    );
}

crate::backend_tests!(
    a_block_closes_its_nights,
    a_partial_block_leaves_the_other_units,
    a_block_over_taken_nights_is_a_409,
    listing_blocks_returns_those_overlapping_the_range,
    reopening_the_middle_splits_a_block,
    reopening_only_frees_the_blocked_units,
    reopening_nothing_changes_nothing,
    blocks_of_an_unknown_listing_are_404s,
    a_block_note_is_at_most_500_characters,
);
