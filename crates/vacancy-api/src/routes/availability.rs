//! Reads: calendars, single availability checks and batch checks.

use axum::Json;
use axum::extract::State;
use vacancy_core::{StayRequest, check_stay};

use crate::auth::Caller;
use crate::dto::{
    AvailabilityBody, BatchBody, BatchCheck, CalendarBody, MAX_BATCH, RangeQuery, StayQuery,
    Unavailable, night_range, opaque_id, units,
};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, StrictJson, StrictQuery};
use crate::state::AppState;

/// Calendar of a listing: remaining units per night over `[start, end)` (at most 731 nights).
#[utoipa::path(get, path = "/v1/listings/{id}/calendar", tag = "availability", params(RangeQuery),
    responses((status = 200, body = CalendarBody), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn calendar(
    State(state): State<AppState>,
    _caller: Caller,
    Id(id): Id,
    StrictQuery(query): StrictQuery<RangeQuery>,
) -> Result<Json<CalendarBody>, ApiError> {
    let range = query.range()?;
    let snapshot = state
        .store
        .snapshot(&id, range, state.clock.now())
        .await?
        .ok_or(ApiError::NotFound("listing"))?;
    Ok(Json(CalendarBody::new(
        &snapshot.listing,
        &snapshot.calendar,
    )))
}

/// Can this stay be booked now? When not, why not.
#[utoipa::path(get, path = "/v1/listings/{id}/availability", tag = "availability", params(StayQuery),
    responses((status = 200, body = AvailabilityBody), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    _caller: Caller,
    Id(id): Id,
    StrictQuery(query): StrictQuery<StayQuery>,
) -> Result<Json<AvailabilityBody>, ApiError> {
    let request = StayRequest {
        stay: night_range(query.check_in, query.check_out, ("check_in", "check_out"))?,
        units: units(query.units)?,
    };
    let now = state.clock.now();
    let snapshot = state
        .store
        .snapshot(&id, request.stay, now)
        .await?
        .ok_or(ApiError::NotFound("listing"))?;
    let listing = &snapshot.listing;
    let decision = check_stay(
        &listing.rules,
        &listing.zone,
        &snapshot.calendar,
        &request,
        now,
    );
    Ok(Json(AvailabilityBody {
        listing_id: listing.id.clone(),
        version: listing.version,
        available: decision.is_available(),
        reasons: decision.reasons,
    }))
}

/// Which of up to 1000 listings can take this stay — the call behind a search results page.
#[utoipa::path(post, path = "/v1/availability/batch", tag = "availability", request_body = BatchCheck,
    responses((status = 200, body = BatchBody), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn batch(
    State(state): State<AppState>,
    _caller: Caller,
    body: StrictJson<BatchCheck>,
) -> Result<Json<BatchBody>, ApiError> {
    let req = body.value;
    if req.listing_ids.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "listing_ids",
            format!(
                "at most {MAX_BATCH} listing ids per batch, got {}",
                req.listing_ids.len()
            ),
        ));
    }
    let request = StayRequest {
        stay: night_range(req.check_in, req.check_out, ("check_in", "check_out"))?,
        units: units(req.units)?,
    };
    let now = state.clock.now();
    if let Some(i) = req
        .listing_ids
        .iter()
        .position(|id| opaque_id("id", id).is_err())
    {
        return Err(ApiError::invalid(
            format!("listing_ids[{i}]"),
            "must be 1 to 64 letters, digits, '-', '_', '.' or ':'",
        ));
    }
    let snapshots = state
        .store
        .snapshots(&req.listing_ids, request.stay, now)
        .await?;
    let mut out = BatchBody {
        available: Vec::new(),
        unavailable: Vec::new(),
        not_found: Vec::new(),
    };
    let mut found = std::collections::HashSet::with_capacity(snapshots.len());
    for snapshot in &snapshots {
        let listing = &snapshot.listing;
        found.insert(listing.id.as_str());
        let decision = check_stay(
            &listing.rules,
            &listing.zone,
            &snapshot.calendar,
            &request,
            now,
        );
        if decision.is_available() {
            out.available.push(listing.id.clone());
        } else {
            out.unavailable.push(Unavailable {
                listing_id: listing.id.clone(),
                reasons: decision.reasons,
            });
        }
    }
    let mut missing = std::collections::HashSet::new();
    out.not_found = req
        .listing_ids
        .iter()
        .filter(|id| !found.contains(id.as_str()) && missing.insert(id.as_str()))
        .cloned()
        .collect();
    Ok(Json(out))
}
