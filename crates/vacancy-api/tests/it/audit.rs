//! The audit trail: every mutation records who, what, when and the request id, in the same
//! transaction; only admins read it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use vacancy_api::Role;
use vacancy_store::Backend;

use crate::helpers::{TestApp, spawn, token};

async fn post_with_request_id(
    app: &TestApp,
    who: &str,
    role: Role,
    path: &str,
    body: Option<&Value>,
    request_id: &str,
) -> Value {
    let mut request = app
        .http_as(&token(role, who))
        .post(format!("{}{path}", app.base))
        .header("x-request-id", request_id);
    if let Some(body) = body {
        request = request.json(body);
    }
    let reply = request.send().await.expect("request");
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.expect("json")
}

async fn every_mutation_is_recorded_with_who_what_and_request_id(backend: Backend) {
    let app = spawn(backend).await;
    let created = post_with_request_id(
        &app,
        "host-a",
        Role::Host,
        "/v1/listings",
        Some(&json!({ "id": "audited", "time_zone": "Europe/Lisbon", "units": 2 })),
        "req-create",
    )
    .await;
    assert_eq!(created["host_id"], "host-a");
    let reply = app
        .http_as(&token(Role::Host, "host-a"))
        .patch(format!("{}/v1/listings/audited", app.base))
        .header("x-request-id", "req-update")
        .json(&json!({ "min_nights": 1 }))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), StatusCode::OK);
    let block = post_with_request_id(
        &app,
        "host-a",
        Role::Host,
        "/v1/listings/audited/blocks",
        Some(&json!({ "start": "2030-05-01", "end": "2030-05-03", "units": 1 })),
        "req-block",
    )
    .await;
    let stay =
        json!({ "listing_id": "audited", "check_in": "2030-02-01", "check_out": "2030-02-03" });
    let hold = post_with_request_id(
        &app,
        "guest-a",
        Role::Guest,
        "/v1/holds",
        Some(&stay),
        "req-hold",
    )
    .await;
    let hold_id = hold["id"].as_str().expect("hold id");
    let booking = post_with_request_id(
        &app,
        "guest-a",
        Role::Guest,
        &format!("/v1/holds/{hold_id}/confirm"),
        None,
        "req-confirm",
    )
    .await;
    let booking_id = booking["id"].as_str().expect("booking id");
    post_with_request_id(
        &app,
        "root",
        Role::Admin,
        &format!("/v1/bookings/{booking_id}/cancel"),
        None,
        "req-cancel",
    )
    .await;
    // A refused write (nights taken) records nothing.
    let taken = json!({ "listing_id": "audited", "check_in": "2030-05-01", "check_out": "2030-05-02", "units": 2 });
    let reply = app
        .send_as(
            Some(&token(Role::Guest, "guest-a")),
            Method::POST,
            "/v1/bookings",
            Some(&taken),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);

    let reply = app.get("/v1/audit?listing_id=audited").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let records = reply.body["records"].as_array().expect("records");
    let seen: Vec<(&str, &str, &str, &str, &str)> = records
        .iter()
        .rev()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or_default(),
                r["subject"].as_str().unwrap_or_default(),
                r["role"].as_str().unwrap_or_default(),
                r["resource_id"].as_str().unwrap_or_default(),
                r["request_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("listing.created", "host-a", "host", "audited", "req-create"),
            ("listing.updated", "host-a", "host", "audited", "req-update"),
            (
                "block.added",
                "host-a",
                "host",
                block["id"].as_str().expect("id"),
                "req-block"
            ),
            ("hold.placed", "guest-a", "guest", hold_id, "req-hold"),
            (
                "booking.created",
                "guest-a",
                "guest",
                booking_id,
                "req-confirm"
            ),
            (
                "booking.cancelled",
                "root",
                "admin",
                booking_id,
                "req-cancel"
            ),
        ]
    );
    for record in records {
        assert_eq!(record["listing_id"], "audited");
        assert_eq!(record["at"], "2030-01-01T12:00:00Z");
    }
    // Newest first, and limited.
    let reply = app.get("/v1/audit?limit=2").await;
    let latest = reply.body["records"].as_array().expect("records");
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0]["action"], "booking.cancelled");
    // Requests without an id still get one (the service assigns it) and it is recorded.
    app.listing(1, json!({ "id": "second" })).await;
    let reply = app.get("/v1/audit?listing_id=second").await;
    let record = &reply.body["records"][0];
    assert_eq!(record["subject"], crate::helpers::ADMIN);
    assert!(
        record["request_id"]
            .as_str()
            .is_some_and(|id| id.len() >= 32),
        "{record}"
    );
}

async fn the_audit_trail_is_for_admins_and_validated(backend: Backend) {
    let app = spawn(backend).await;
    for role in [Role::Guest, Role::Host, Role::Service] {
        let reply = app
            .send_as(
                Some(&token(role, "someone")),
                Method::GET,
                "/v1/audit",
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.problem(), "forbidden");
    }
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "listing_id=no%20way",
        "nope=1",
    ] {
        let reply = app.get(&format!("/v1/audit?{bad}")).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            reply.body
        );
    }
    let reply = app.get("/v1/audit").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["records"], json!([]));
}

crate::backend_tests!(
    every_mutation_is_recorded_with_who_what_and_request_id,
    the_audit_trail_is_for_admins_and_validated,
);
