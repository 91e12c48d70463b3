//! Listings: create, read, update rules.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use vacancy_core::{ListingRules, RulesInput, Zone};
use vacancy_store::{NewListing, RulesPatch};

use crate::auth::{Caller, Role};
use crate::dto::{CreateListing, ListingBody, UpdateListing, opaque_id};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, IdempotencyKey, StrictJson};
use crate::idempotency;
use crate::state::AppState;

fn zone(field: &str, name: &str) -> Result<Zone, ApiError> {
    Zone::new(name).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn rule_error(e: vacancy_core::RuleError) -> ApiError {
    ApiError::invalid(e.field, e.message)
}

/// Create a listing (hosts and admins). The listing belongs to the caller unless an admin
/// names another `host_id`.
#[utoipa::path(post, path = "/v1/listings", tag = "listings", request_body = CreateListing,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = ListingBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    body: StrictJson<CreateListing>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Host, Role::Admin])?;
    let req = &body.value;
    if let Some(id) = &req.id {
        opaque_id("id", id)?;
    }
    if let Some(host_id) = &req.host_id {
        opaque_id("host_id", host_id)?;
    }
    let host_id = caller.on_behalf_of(req.host_id.as_deref())?;
    let new = NewListing {
        id: req.id.clone(),
        host_id,
        zone: zone("time_zone", &req.time_zone)?,
        rules: ListingRules::new(RulesInput {
            units: req.units,
            min_nights: req.min_nights,
            max_nights: req.max_nights,
            advance_notice_hours: req.advance_notice_hours,
            booking_window_days: req.booking_window_days,
        })
        .map_err(rule_error)?,
    };
    let now = state.clock.now();
    let store = state.store.acting_as(caller.actor());
    idempotency::run(
        &state,
        caller.idempotency_client(),
        key,
        (Method::POST, "/v1/listings", &body.digest),
        StatusCode::CREATED,
        |l: &vacancy_store::Listing| ListingBody::from(l),
        async |commit| store.create_listing(new, now, commit).await,
    )
    .await
}

/// Read a listing (every role).
#[utoipa::path(get, path = "/v1/listings/{id}", tag = "listings",
    responses((status = 200, body = ListingBody), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Id(id): Id,
) -> Result<Json<ListingBody>, ApiError> {
    let listing = state
        .store
        .listing(&id)
        .await?
        .ok_or(ApiError::NotFound("listing"))?;
    Ok(Json(ListingBody::from(&listing)))
}

/// Change a listing's time zone or stay rules (its host, or an admin).
#[utoipa::path(patch, path = "/v1/listings/{id}", tag = "listings", request_body = UpdateListing,
    responses((status = 200, body = ListingBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "units below what some night already uses"),
        (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    body: StrictJson<UpdateListing>,
) -> Result<Json<ListingBody>, ApiError> {
    let req = body.value;
    let patch = RulesPatch {
        zone: req
            .time_zone
            .as_deref()
            .map(|z| zone("time_zone", z))
            .transpose()?,
        units: req.units,
        min_nights: req.min_nights,
        max_nights: req.max_nights,
        advance_notice_hours: req.advance_notice_hours,
        booking_window_days: req.booking_window_days,
    };
    managed_listing(&state, &caller, &id).await?;
    let listing = state
        .store
        .acting_as(caller.actor())
        .update_listing(&id, patch, state.clock.now())
        .await?;
    Ok(Json(ListingBody::from(&listing)))
}

/// The listing `id` if the caller manages it: 404 when there is none, 403 when it is
/// someone else's (listings are public, so saying it exists leaks nothing).
pub(crate) async fn managed_listing(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<vacancy_store::Listing, ApiError> {
    caller.require(&[Role::Host, Role::Admin])?;
    let listing = state
        .store
        .listing(id)
        .await?
        .ok_or(ApiError::NotFound("listing"))?;
    caller.manages(&listing)?;
    Ok(listing)
}
