//! Host blocks: close and reopen ranges of nights.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use vacancy_store::Claim;

use crate::auth::Caller;
use crate::dto::{AddBlock, BlockBody, BlocksBody, RangeQuery, RemovedBody, night_range, units};
use crate::error::{ApiError, Problem};
use crate::extract::{Id, IdempotencyKey, StrictJson, StrictQuery};
use crate::idempotency;
use crate::routes::listings::managed_listing;
use crate::state::AppState;

/// Longest note a block may carry.
const MAX_NOTE_CHARS: usize = 500;

/// Close nights `[start, end)` (all units unless `units` says fewer). The listing's host or an
/// admin.
#[utoipa::path(post, path = "/v1/listings/{id}/blocks", tag = "blocks", request_body = AddBlock,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = BlockBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "nights already taken; the problem names them"),
        (status = 422, body = Problem)))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    IdempotencyKey(key): IdempotencyKey,
    body: StrictJson<AddBlock>,
) -> Result<Response, ApiError> {
    let req = &body.value;
    let nights = night_range(req.start, req.end, ("start", "end"))?;
    let block_units = req.units.map(|u| units(Some(u))).transpose()?;
    if req
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::invalid(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    managed_listing(&state, &caller, &id).await?;
    let now = state.clock.now();
    let store = state.store.acting_as(caller.actor());
    let path = format!("/v1/listings/{id}/blocks");
    idempotency::run(
        &state,
        caller.idempotency_client(),
        key,
        (Method::POST, &path, &body.digest),
        StatusCode::CREATED,
        |c: &Claim| BlockBody::from(c),
        async |commit| {
            store
                .add_block(
                    &id,
                    nights,
                    block_units,
                    body.value.note.clone(),
                    now,
                    commit,
                )
                .await
        },
    )
    .await
}

/// The blocks overlapping `[start, end)`. The listing's host or an admin.
#[utoipa::path(get, path = "/v1/listings/{id}/blocks", tag = "blocks", params(RangeQuery),
    responses((status = 200, body = BlocksBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    StrictQuery(query): StrictQuery<RangeQuery>,
) -> Result<Json<BlocksBody>, ApiError> {
    let range = query.range()?;
    managed_listing(&state, &caller, &id).await?;
    let blocks = state.store.blocks(&id, range).await?;
    Ok(Json(BlocksBody {
        blocks: blocks.iter().map(BlockBody::from).collect(),
    }))
}

/// Reopen nights `[start, end)`: blocks covering them are trimmed or split. The listing's host
/// or an admin.
#[utoipa::path(delete, path = "/v1/listings/{id}/blocks", tag = "blocks", params(RangeQuery),
    responses((status = 200, body = RemovedBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    StrictQuery(query): StrictQuery<RangeQuery>,
) -> Result<Json<RemovedBody>, ApiError> {
    let range = query.range()?;
    managed_listing(&state, &caller, &id).await?;
    let blocks_changed = state
        .store
        .acting_as(caller.actor())
        .remove_blocks(&id, range, state.clock.now())
        .await?;
    Ok(Json(RemovedBody { blocks_changed }))
}
