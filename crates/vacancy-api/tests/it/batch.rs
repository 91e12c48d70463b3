//! Batch checks: one stay against up to 1,000 listings, as a search results page asks.

use reqwest::StatusCode;
use serde_json::{Value, json};
use vacancy_store::Backend;

use crate::helpers::{Reply, TestApp, spawn};

const CHECK_IN: &str = "2030-03-01";
const CHECK_OUT: &str = "2030-03-04";

async fn batch(app: &TestApp, ids: &[&str], units: Option<u32>) -> Reply {
    let mut body = json!({ "listing_ids": ids, "check_in": CHECK_IN, "check_out": CHECK_OUT });
    if let Some(units) = units {
        body["units"] = json!(units);
    }
    app.post("/v1/availability/batch", &body).await
}

/// The batch answer, asserting a 200.
async fn check(app: &TestApp, ids: &[&str], units: Option<u32>) -> Value {
    let reply = batch(app, ids, units).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/json");
    reply.body
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

fn unavailable_ids(answer: &Value) -> Vec<String> {
    let unavailable = answer["unavailable"].as_array().expect("unavailable");
    unavailable
        .iter()
        .map(|u| u["listing_id"].as_str().expect("listing_id").to_owned())
        .collect()
}

fn reasons_of<'a>(answer: &'a Value, id: &str) -> &'a Value {
    let unavailable = answer["unavailable"].as_array().expect("unavailable");
    &unavailable
        .iter()
        .find(|u| u["listing_id"] == id)
        .expect("listed as unavailable")["reasons"]
}

async fn a_batch_classifies_every_listing(backend: Backend) {
    let app = spawn(backend).await;
    let free = app.listing(1, json!({})).await;
    let booked = app.listing(1, json!({})).await;
    let strict = app.listing(1, json!({ "min_nights": 5 })).await;
    let blocked = app.listing(1, json!({})).await;
    assert_eq!(
        app.book(&booked, "2030-03-02", "2030-03-03", 1)
            .await
            .status,
        StatusCode::CREATED
    );
    let reply = app
        .post(
            &format!("/v1/listings/{blocked}/blocks"),
            &json!({ "start": "2030-02-01", "end": "2030-03-02" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let answer = check(
        &app,
        &[&free, &booked, "no-such-listing", &strict, &blocked],
        None,
    )
    .await;
    assert_eq!(strings(&answer["available"]), vec![free.clone()]);
    assert_eq!(
        unavailable_ids(&answer),
        vec![booked.clone(), strict.clone(), blocked.clone()]
    );
    assert_eq!(
        reasons_of(&answer, &booked),
        &json!([{ "reason": "nights_unavailable", "nights": ["2030-03-02"] }])
    );
    assert_eq!(
        reasons_of(&answer, &strict),
        &json!([{ "reason": "below_min_nights", "min_nights": 5 }])
    );
    assert_eq!(
        reasons_of(&answer, &blocked),
        &json!([{ "reason": "nights_unavailable", "nights": ["2030-03-01"] }])
    );
    assert_eq!(
        strings(&answer["not_found"]),
        vec!["no-such-listing".to_owned()]
    );
    // The batch agrees with the single check.
    for id in [&free, &booked, &strict, &blocked] {
        let path =
            format!("/v1/listings/{id}/availability?check_in={CHECK_IN}&check_out={CHECK_OUT}");
        let single = app.get(&path).await.body;
        let expected = if id == &free {
            json!([])
        } else {
            reasons_of(&answer, id).clone()
        };
        assert_eq!(single["reasons"], expected, "{id}");
    }
}

async fn a_batch_keeps_request_order(backend: Backend) {
    let app = spawn(backend).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            app.listing(1, json!({ "id": format!("listing-{i}") }))
                .await,
        );
    }
    // Booked ones in between must not disturb the order of the others.
    for taken in [&ids[2], &ids[5]] {
        assert_eq!(
            app.book(taken, CHECK_IN, CHECK_OUT, 1).await.status,
            StatusCode::CREATED
        );
    }
    let order = [7, 2, 0, 5, 3, 6, 1, 4];
    let asked: Vec<&str> = order.iter().map(|&i| ids[i].as_str()).collect();
    let answer = check(&app, &asked, None).await;
    let expected: Vec<String> = order
        .iter()
        .filter(|&&i| i != 2 && i != 5)
        .map(|&i| ids[i].clone())
        .collect();
    assert_eq!(strings(&answer["available"]), expected);
    assert_eq!(
        unavailable_ids(&answer),
        vec![ids[2].clone(), ids[5].clone()]
    );
    // Reversed request, reversed answer.
    let reversed: Vec<&str> = asked.iter().rev().copied().collect();
    let answer = check(&app, &reversed, None).await;
    let mut expected_reversed = expected.clone();
    expected_reversed.reverse();
    assert_eq!(strings(&answer["available"]), expected_reversed);
    // Unknown ids keep their order too.
    let answer = check(&app, &["ghost-b", &ids[0], "ghost-a", "ghost-c"], None).await;
    assert_eq!(
        strings(&answer["not_found"]),
        vec!["ghost-b", "ghost-a", "ghost-c"]
    );
}

async fn a_batch_answers_each_id_once(backend: Backend) {
    let app = spawn(backend).await;
    let free = app.listing(1, json!({})).await;
    let booked = app.listing(1, json!({})).await;
    assert_eq!(
        app.book(&booked, CHECK_IN, CHECK_OUT, 1).await.status,
        StatusCode::CREATED
    );
    let answer = check(
        &app,
        &[&free, "ghost", &booked, &free, "ghost", &booked, &free],
        None,
    )
    .await;
    assert_eq!(strings(&answer["available"]), vec![free.clone()]);
    assert_eq!(unavailable_ids(&answer), vec![booked.clone()]);
    assert_eq!(strings(&answer["not_found"]), vec!["ghost".to_owned()]);
}

async fn an_empty_batch_is_an_empty_answer(backend: Backend) {
    let app = spawn(backend).await;
    let _ = app.listing(1, json!({})).await;
    let answer = check(&app, &[], None).await;
    assert_eq!(
        answer,
        json!({ "available": [], "unavailable": [], "not_found": [] })
    );
}

async fn a_batch_takes_up_to_1000_ids(backend: Backend) {
    let app = spawn(backend).await;
    let mut listings = Vec::new();
    for _ in 0..3 {
        listings.push(app.listing(1, json!({})).await);
    }
    assert_eq!(
        app.book(&listings[1], CHECK_IN, CHECK_OUT, 1).await.status,
        StatusCode::CREATED
    );
    // 64-character ids, the longest allowed, with the real listings spread through the batch.
    let mut ids: Vec<String> = (0..1000).map(|i| format!("{i:0>64}")).collect();
    ids[0] = listings[0].clone();
    ids[500] = listings[1].clone();
    ids[999] = listings[2].clone();
    let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
    let answer = check(&app, &asked, None).await;
    assert_eq!(
        strings(&answer["available"]),
        vec![listings[0].clone(), listings[2].clone()]
    );
    assert_eq!(unavailable_ids(&answer), vec![listings[1].clone()]);
    assert_eq!(strings(&answer["not_found"]).len(), 997);
    // One more is too many.
    let events = app.events().await;
    let mut too_many = asked.clone();
    too_many.push("one-too-many");
    let reply = batch(&app, &too_many, None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.problem(), "validation-failed");
    assert_eq!(reply.body["errors"][0]["field"], "listing_ids");
    assert_eq!(app.events().await, events);
}

async fn a_batch_respects_units(backend: Backend) {
    let app = spawn(backend).await;
    let hotel = app.listing(5, json!({})).await;
    let house = app.listing(1, json!({})).await;
    assert_eq!(
        app.book(&hotel, "2030-03-02", "2030-03-03", 3).await.status,
        StatusCode::CREATED
    );
    // Two units fit in the hotel (5 − 3), not in the house.
    let answer = check(&app, &[&hotel, &house], Some(2)).await;
    assert_eq!(strings(&answer["available"]), vec![hotel.clone()]);
    assert_eq!(
        reasons_of(&answer, &house),
        &json!([{ "reason": "too_many_units", "requested": 2, "units": 1 }])
    );
    // Three do not fit on the booked night.
    let answer = check(&app, &[&hotel, &house], Some(3)).await;
    assert!(strings(&answer["available"]).is_empty(), "{answer}");
    assert_eq!(
        reasons_of(&answer, &hotel),
        &json!([{ "reason": "nights_unavailable", "nights": ["2030-03-02"] }])
    );
    // Without units, one is asked for.
    let answer = check(&app, &[&hotel, &house], None).await;
    assert_eq!(
        strings(&answer["available"]),
        vec![hotel.clone(), house.clone()]
    );
    // A live hold counts, an expired one does not.
    let hold = json!({ "listing_id": hotel, "check_in": CHECK_IN, "check_out": CHECK_OUT, "units": 2,
        "guest_id": "guest-1", "ttl_seconds": 60 });
    assert_eq!(
        app.post("/v1/holds", &hold).await.status,
        StatusCode::CREATED
    );
    let answer = check(&app, &[&hotel], Some(1)).await;
    assert_eq!(
        reasons_of(&answer, &hotel),
        &json!([{ "reason": "nights_unavailable", "nights": ["2030-03-02"] }])
    );
    app.clock.advance(jiff::SignedDuration::from_secs(60));
    let answer = check(&app, &[&hotel], Some(2)).await;
    assert_eq!(strings(&answer["available"]), vec![hotel.clone()]);
}

async fn a_batch_validates_the_stay(backend: Backend) {
    let app = spawn(backend).await;
    let listing = app.listing(1, json!({})).await;
    let cases = [
        (
            json!({ "listing_ids": [listing], "check_in": CHECK_OUT, "check_out": CHECK_IN }),
            "check_out",
        ),
        (
            json!({ "listing_ids": [listing], "check_in": CHECK_IN, "check_out": CHECK_OUT, "units": 0 }),
            "units",
        ),
        (
            json!({ "listing_ids": [listing, ""], "check_in": CHECK_IN, "check_out": CHECK_OUT }),
            "listing_ids[1]",
        ),
    ];
    for (body, field) in &cases {
        let reply = app.post("/v1/availability/batch", body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        assert_eq!(reply.problem(), "validation-failed");
        assert_eq!(reply.body["errors"][0]["field"], *field, "{}", reply.body);
    }
}

crate::backend_tests!(
    a_batch_classifies_every_listing,
    a_batch_keeps_request_order,
    a_batch_answers_each_id_once,
    an_empty_batch_is_an_empty_answer,
    a_batch_takes_up_to_1000_ids,
    a_batch_respects_units,
    a_batch_validates_the_stay,
);
