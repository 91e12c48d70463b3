//! Holds and bookings: place, confirm, release, book, cancel, read.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use jiff::SignedDuration;
use vacancy_core::StayRequest;
use vacancy_store::{Claim, Kind, StayClaim};

use crate::dto::{CreateBooking, PlaceHold, StayBody, night_range, opaque_id, units};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, IdempotencyKey, StrictJson};
use crate::idempotency;
use crate::state::AppState;

fn stay_claim(
    listing_id: &str,
    check_in: jiff::civil::Date,
    check_out: jiff::civil::Date,
    wanted: Option<u32>,
    guest_id: &str,
) -> Result<StayClaim, ApiError> {
    opaque_id("listing_id", listing_id)?;
    opaque_id("guest_id", guest_id)?;
    let request = StayRequest {
        stay: night_range(check_in, check_out, ("check_in", "check_out"))?,
        units: units(wanted)?,
    };
    Ok(StayClaim {
        request,
        guest_id: guest_id.to_owned(),
    })
}

/// Place a hold on a stay during checkout. It frees its nights at `expires_at` unless confirmed.
#[utoipa::path(post, path = "/v1/holds", tag = "holds", request_body = PlaceHold,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = StayBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "nights taken; the problem names them"),
        (status = 422, body = Problem, description = "invalid input or stay rules broken")))]
pub async fn place_hold(
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    body: StrictJson<PlaceHold>,
) -> Result<Response, ApiError> {
    let req = &body.value;
    let stay = stay_claim(
        &req.listing_id,
        req.check_in,
        req.check_out,
        req.units,
        &req.guest_id,
    )?;
    let ttl = match req.ttl_seconds {
        None => state.config.default_hold_ttl,
        Some(s) if (60..=state.config.max_hold_ttl.as_secs()).contains(&u64::from(s)) => {
            Duration::from_secs(s.into())
        }
        Some(s) => {
            let max = state.config.max_hold_ttl.as_secs();
            return Err(ApiError::invalid(
                "ttl_seconds",
                format!("must be between 60 and {max}, got {s}"),
            ));
        }
    };
    let now = state.clock.now();
    let expires_at = now
        .checked_add(SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX))
        .unwrap_or(now);
    let store = state.store.clone();
    let response = idempotency::run(
        &state,
        key,
        (Method::POST, "/v1/holds", &body.digest),
        StatusCode::CREATED,
        |c: &Claim| StayBody::new(c, now),
        async |commit| {
            store
                .place_hold(&body.value.listing_id, &stay, expires_at, now, commit)
                .await
        },
    )
    .await;
    idempotency::count_created(response, "vacancy_holds_placed_total")
}

/// Read a hold.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds",
    responses((status = 200, body = StayBody), (status = 404, body = Problem)))]
pub async fn read_hold(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    read_claim(&state, &id, Kind::Hold, "hold").await
}

/// Confirm a live hold: it becomes a booking on the same nights.
#[utoipa::path(post, path = "/v1/holds/{id}/confirm", tag = "holds",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = StayBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the hold expired, was released or is already confirmed")))]
pub async fn confirm_hold(
    State(state): State<AppState>,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let store = state.store.clone();
    let path = format!("/v1/holds/{id}/confirm");
    let response = idempotency::run(
        &state,
        key,
        (Method::POST, &path, ""),
        StatusCode::CREATED,
        |c: &Claim| StayBody::new(c, now),
        async |commit| store.confirm_hold(&id, now, commit).await,
    )
    .await;
    idempotency::count_created(response, "vacancy_bookings_total")
}

/// Release a hold, freeing its nights. Releasing twice is harmless.
#[utoipa::path(post, path = "/v1/holds/{id}/release", tag = "holds",
    responses((status = 200, body = StayBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the hold was already confirmed")))]
pub async fn release_hold(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    let now = state.clock.now();
    let hold = state.store.release_hold(&id, now).await?;
    Ok(Json(StayBody::new(&hold, now)))
}

/// Book a stay directly, without a hold.
#[utoipa::path(post, path = "/v1/bookings", tag = "bookings", request_body = CreateBooking,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = StayBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "nights taken; the problem names them"),
        (status = 422, body = Problem, description = "invalid input or stay rules broken")))]
pub async fn book(
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    body: StrictJson<CreateBooking>,
) -> Result<Response, ApiError> {
    let req = &body.value;
    let stay = stay_claim(
        &req.listing_id,
        req.check_in,
        req.check_out,
        req.units,
        &req.guest_id,
    )?;
    let now = state.clock.now();
    let store = state.store.clone();
    let response = idempotency::run(
        &state,
        key,
        (Method::POST, "/v1/bookings", &body.digest),
        StatusCode::CREATED,
        |c: &Claim| StayBody::new(c, now),
        async |commit| store.book(&body.value.listing_id, &stay, now, commit).await,
    )
    .await;
    idempotency::count_created(response, "vacancy_bookings_total")
}

/// Read a booking.
#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings",
    responses((status = 200, body = StayBody), (status = 404, body = Problem)))]
pub async fn read_booking(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    read_claim(&state, &id, Kind::Booking, "booking").await
}

/// Cancel a booking, freeing its nights. Cancelling twice is harmless.
#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "bookings",
    responses((status = 200, body = StayBody), (status = 404, body = Problem)))]
pub async fn cancel_booking(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    let now = state.clock.now();
    let booking = state.store.cancel_booking(&id, now).await?;
    Ok(Json(StayBody::new(&booking, now)))
}

async fn read_claim(
    state: &AppState,
    id: &str,
    kind: Kind,
    what: &'static str,
) -> Result<Json<StayBody>, ApiError> {
    let claim = state
        .store
        .claim(id)
        .await?
        .filter(|c| c.kind == kind)
        .ok_or(ApiError::NotFound(what))?;
    Ok(Json(StayBody::new(&claim, state.clock.now())))
}
