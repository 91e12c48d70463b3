//! Reads: calendars, single availability checks and batch checks. All go through the read
//! path (L1 → L2 → database); `Cache-Control: no-cache` skips the caches, `min_version` asks
//! for at least that listing version (read-your-writes). Responses say where they came from in
//! `X-Vacancy-Source` (`l1`, `l2` or `database`). While the database cannot be reached, a
//! listing whose cached copy has passed its TTL is still answered from that copy, marked
//! `X-Vacancy-Stale: true` with its `Age` in seconds.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use vacancy_cache::{ReadOptions, Source};
use vacancy_core::{StayRequest, check_stay};

use crate::auth::Caller;
use crate::dto::{
    AvailabilityBody, BatchBody, BatchCheck, CalendarBody, MAX_BATCH, RangeQuery, StayQuery,
    Unavailable, night_range, opaque_id, units,
};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, StrictJson, StrictQuery};
use crate::state::AppState;

/// How the request wants its read done.
fn read_options(headers: &HeaderMap, min_version: Option<i64>) -> ReadOptions {
    let bypass_cache = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
        });
    ReadOptions {
        min_version,
        bypass_cache,
    }
}

fn with_source(source: Source, stale: Option<Duration>, body: impl IntoResponse) -> Response {
    let mut response = with_staleness(stale, body);
    response.headers_mut().insert(
        "x-vacancy-source",
        HeaderValue::from_static(source.as_str()),
    );
    response
}

/// Marks an answer given from an expired copy (the oldest one, for a batch).
fn with_staleness(stale: Option<Duration>, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Some(age) = stale {
        let headers = response.headers_mut();
        headers.insert("x-vacancy-stale", HeaderValue::from_static("true"));
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    }
    response
}

/// Calendar of a listing: remaining units per night over `[start, end)` (at most 731 nights).
#[utoipa::path(get, path = "/v1/listings/{id}/calendar", tag = "availability", params(RangeQuery,
        ("Cache-Control" = Option<String>, Header, description = "`no-cache` reads the database directly")),
    responses((status = 200, body = CalendarBody, headers(("X-Vacancy-Source" = String, description = "where the answer came from: `l1`, `l2` or `database`"),
            ("X-Vacancy-Stale" = Option<String>, description = "`true` when the database was unreachable and an expired cached copy answered"),
            ("Age" = Option<u64>, description = "with `X-Vacancy-Stale`: the copy's age in seconds"))),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem, description = "the database is unavailable and no usable cached copy exists")))]
pub async fn calendar(
    State(state): State<AppState>,
    _caller: Caller,
    Id(id): Id,
    headers: HeaderMap,
    StrictQuery(query): StrictQuery<RangeQuery>,
) -> Result<Response, ApiError> {
    let range = query.range()?;
    let options = read_options(&headers, query.min_version);
    let view = state
        .reads
        .view(&id, range, state.clock.now(), options)
        .await?
        .ok_or(ApiError::NotFound("listing"))?;
    Ok(with_source(
        view.source,
        view.stale,
        Json(CalendarBody::new(&view.listing, &view.calendar)),
    ))
}

/// Can this stay be booked now? When not, why not.
#[utoipa::path(get, path = "/v1/listings/{id}/availability", tag = "availability", params(StayQuery,
        ("Cache-Control" = Option<String>, Header, description = "`no-cache` reads the database directly")),
    responses((status = 200, body = AvailabilityBody, headers(("X-Vacancy-Source" = String, description = "where the answer came from: `l1`, `l2` or `database`"),
            ("X-Vacancy-Stale" = Option<String>, description = "`true` when the database was unreachable and an expired cached copy answered"),
            ("Age" = Option<u64>, description = "with `X-Vacancy-Stale`: the copy's age in seconds"))),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem, description = "the database is unavailable and no usable cached copy exists")))]
pub async fn check(
    State(state): State<AppState>,
    _caller: Caller,
    Id(id): Id,
    headers: HeaderMap,
    StrictQuery(query): StrictQuery<StayQuery>,
) -> Result<Response, ApiError> {
    let request = StayRequest {
        stay: night_range(query.check_in, query.check_out, ("check_in", "check_out"))?,
        units: units(query.units)?,
    };
    let now = state.clock.now();
    let options = read_options(&headers, query.min_version);
    let view = state
        .reads
        .view(&id, request.stay, now, options)
        .await?
        .ok_or(ApiError::NotFound("listing"))?;
    let listing = &view.listing;
    let decision = check_stay(&listing.rules, &listing.zone, &view.calendar, &request, now);
    let body = AvailabilityBody {
        listing_id: listing.id.clone(),
        version: listing.version,
        available: decision.is_available(),
        reasons: decision.reasons,
    };
    Ok(with_source(view.source, view.stale, Json(body)))
}

/// Which of up to 1000 listings can take this stay — the call behind a search results page.
#[utoipa::path(post, path = "/v1/availability/batch", tag = "availability", request_body = BatchCheck,
    params(("Cache-Control" = Option<String>, Header, description = "`no-cache` reads the database directly")),
    responses((status = 200, body = BatchBody, headers(
            ("X-Vacancy-Stale" = Option<String>, description = "`true` when the database was unreachable and expired cached copies answered"),
            ("Age" = Option<u64>, description = "with `X-Vacancy-Stale`: the oldest copy's age in seconds"))),
        (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem, description = "the database is unavailable and some listing has no usable cached copy")))]
pub async fn batch(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    body: StrictJson<BatchCheck>,
) -> Result<Response, ApiError> {
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
    let request = StayRequest {
        stay: night_range(req.check_in, req.check_out, ("check_in", "check_out"))?,
        units: units(req.units)?,
    };
    let now = state.clock.now();
    let options = read_options(&headers, None);
    let views = state
        .reads
        .views(&req.listing_ids, request.stay, now, options)
        .await?;
    let mut out = BatchBody {
        available: Vec::new(),
        unavailable: Vec::new(),
        not_found: Vec::new(),
    };
    // A fast hash: this set sees every listing of the batch.
    let mut found = std::collections::HashSet::with_capacity_and_hasher(
        views.len(),
        foldhash::fast::RandomState::default(),
    );
    for view in &views {
        let listing = &view.listing;
        if !found.insert(listing.id.as_str()) {
            continue;
        }
        let decision = check_stay(&listing.rules, &listing.zone, &view.calendar, &request, now);
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
    let stale = views.iter().filter_map(|v| v.stale).max();
    Ok(with_staleness(stale, Json(out)))
}
