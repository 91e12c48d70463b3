//! Holds and bookings: place, confirm, release, book, cancel, read.
//!
//! Who may do what: guests place holds and bookings for themselves (an absent `guest_id` means
//! the caller; another guest's id is a 403), and read, confirm, release and cancel only their
//! own; hosts read the holds and bookings on their listings; admins do everything; the service
//! role none of it. A hold or booking the caller may not see is answered exactly like a
//! missing one (404), so no one learns another tenant's ids.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use jiff::SignedDuration;
use vacancy_core::StayRequest;
use vacancy_store::{Claim, Kind, StayClaim};

use crate::auth::{Caller, Role};
use crate::dto::{CreateBooking, PlaceHold, StayBody, night_range, opaque_id, units};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, IdempotencyKey, StrictJson};
use crate::idempotency;
use crate::state::AppState;

/// Who may place holds and bookings, and confirm, release or cancel them.
const STAY_WRITERS: [Role; 2] = [Role::Guest, Role::Admin];
/// Who may read holds and bookings (each only those they may see).
const STAY_READERS: [Role; 3] = [Role::Guest, Role::Host, Role::Admin];

fn stay_claim(
    caller: &Caller,
    listing_id: &str,
    (check_in, check_out): (jiff::civil::Date, jiff::civil::Date),
    wanted: Option<u32>,
    guest_id: Option<&str>,
) -> Result<StayClaim, ApiError> {
    opaque_id("listing_id", listing_id)?;
    if let Some(guest_id) = guest_id {
        opaque_id("guest_id", guest_id)?;
    }
    let request = StayRequest {
        stay: night_range(check_in, check_out, ("check_in", "check_out"))?,
        units: units(wanted)?,
    };
    Ok(StayClaim {
        request,
        guest_id: caller.on_behalf_of(guest_id)?,
    })
}

/// Place a hold on a stay during checkout (guests, for themselves; admins). It frees its
/// nights at `expires_at` unless confirmed.
#[utoipa::path(post, path = "/v1/holds", tag = "holds", request_body = PlaceHold,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "nights taken; the problem names them"),
        (status = 422, body = Problem, description = "invalid input or stay rules broken")))]
pub async fn place_hold(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: StrictJson<PlaceHold>,
) -> Result<Response, ApiError> {
    caller.require(&STAY_WRITERS)?;
    let req = &body.value;
    let stay = stay_claim(
        &caller,
        &req.listing_id,
        (req.check_in, req.check_out),
        req.units,
        req.guest_id.as_deref(),
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
    let store = state.store.acting_as(caller.actor());
    let response = idempotency::run(
        &state,
        caller.idempotency_client(),
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

/// Read a hold (its guest, the listing's host, admins).
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds",
    responses((status = 200, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn read_hold(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    let claim = visible_claim(&state, &caller, &id, Kind::Hold, "hold").await?;
    Ok(Json(StayBody::new(&claim, state.clock.now())))
}

/// Confirm a live hold (its guest, admins): it becomes a booking on the same nights.
#[utoipa::path(post, path = "/v1/holds/{id}/confirm", tag = "holds",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the hold expired, was released or is already confirmed")))]
pub async fn confirm_hold(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    owned_claim(&state, &caller, &id, Kind::Hold, "hold").await?;
    let now = state.clock.now();
    let store = state.store.acting_as(caller.actor());
    let path = format!("/v1/holds/{id}/confirm");
    let response = idempotency::run(
        &state,
        caller.idempotency_client(),
        key,
        (Method::POST, &path, ""),
        StatusCode::CREATED,
        |c: &Claim| StayBody::new(c, now),
        async |commit| store.confirm_hold(&id, now, commit).await,
    )
    .await;
    idempotency::count_created(response, "vacancy_bookings_total")
}

/// Release a hold (its guest, admins), freeing its nights. Releasing twice is harmless.
#[utoipa::path(post, path = "/v1/holds/{id}/release", tag = "holds",
    responses((status = 200, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the hold was already confirmed")))]
pub async fn release_hold(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    owned_claim(&state, &caller, &id, Kind::Hold, "hold").await?;
    let now = state.clock.now();
    let hold = state
        .store
        .acting_as(caller.actor())
        .release_hold(&id, now)
        .await?;
    Ok(Json(StayBody::new(&hold, now)))
}

/// Book a stay directly, without a hold (guests, for themselves; admins).
#[utoipa::path(post, path = "/v1/bookings", tag = "bookings", request_body = CreateBooking,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "nights taken; the problem names them"),
        (status = 422, body = Problem, description = "invalid input or stay rules broken")))]
pub async fn book(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: StrictJson<CreateBooking>,
) -> Result<Response, ApiError> {
    caller.require(&STAY_WRITERS)?;
    let req = &body.value;
    let stay = stay_claim(
        &caller,
        &req.listing_id,
        (req.check_in, req.check_out),
        req.units,
        req.guest_id.as_deref(),
    )?;
    let now = state.clock.now();
    let store = state.store.acting_as(caller.actor());
    let response = idempotency::run(
        &state,
        caller.idempotency_client(),
        key,
        (Method::POST, "/v1/bookings", &body.digest),
        StatusCode::CREATED,
        |c: &Claim| StayBody::new(c, now),
        async |commit| store.book(&body.value.listing_id, &stay, now, commit).await,
    )
    .await;
    idempotency::count_created(response, "vacancy_bookings_total")
}

/// Read a booking (its guest, the listing's host, admins).
#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings",
    responses((status = 200, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn read_booking(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    let claim = visible_claim(&state, &caller, &id, Kind::Booking, "booking").await?;
    Ok(Json(StayBody::new(&claim, state.clock.now())))
}

/// Cancel a booking (its guest, admins), freeing its nights. Cancelling twice is harmless.
#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "bookings",
    responses((status = 200, body = StayBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn cancel_booking(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<StayBody>, ApiError> {
    owned_claim(&state, &caller, &id, Kind::Booking, "booking").await?;
    let now = state.clock.now();
    let booking = state
        .store
        .acting_as(caller.actor())
        .cancel_booking(&id, now)
        .await?;
    Ok(Json(StayBody::new(&booking, now)))
}

async fn find_claim(
    state: &AppState,
    id: &str,
    kind: Kind,
    what: &'static str,
) -> Result<Claim, ApiError> {
    state
        .store
        .claim(id)
        .await?
        .filter(|c| c.kind == kind)
        .ok_or(ApiError::NotFound(what))
}

/// The claim if the caller may see it; "not found" when it is missing or not theirs.
async fn visible_claim(
    state: &AppState,
    caller: &Caller,
    id: &str,
    kind: Kind,
    what: &'static str,
) -> Result<Claim, ApiError> {
    caller.require(&STAY_READERS)?;
    let claim = find_claim(state, id, kind, what).await?;
    let host = if caller.role == Role::Host {
        state
            .store
            .listing(&claim.listing_id)
            .await?
            .map(|l| l.host_id)
    } else {
        None
    };
    if caller.sees(&claim, host.as_deref()) {
        Ok(claim)
    } else {
        Err(ApiError::NotFound(what))
    }
}

/// Checks the caller may change the claim; "not found" when it is missing or not theirs.
async fn owned_claim(
    state: &AppState,
    caller: &Caller,
    id: &str,
    kind: Kind,
    what: &'static str,
) -> Result<(), ApiError> {
    caller.require(&STAY_WRITERS)?;
    let claim = find_claim(state, id, kind, what).await?;
    if caller.owns(&claim) {
        Ok(())
    } else {
        Err(ApiError::NotFound(what))
    }
}
