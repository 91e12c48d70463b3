//! The router: every route of API v1 and the operations endpoints.

pub mod availability;
pub mod blocks;
pub mod listings;
pub mod ops;
pub mod stays;

use axum::Router;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/listings", post(listings::create))
        .route(
            "/v1/listings/{id}",
            get(listings::read).patch(listings::update),
        )
        .route(
            "/v1/listings/{id}/blocks",
            post(blocks::add).get(blocks::list).delete(blocks::remove),
        )
        .route("/v1/listings/{id}/calendar", get(availability::calendar))
        .route("/v1/listings/{id}/availability", get(availability::check))
        .route("/v1/availability/batch", post(availability::batch))
        .route("/v1/holds", post(stays::place_hold))
        .route("/v1/holds/{id}", get(stays::read_hold))
        .route("/v1/holds/{id}/confirm", post(stays::confirm_hold))
        .route("/v1/holds/{id}/release", post(stays::release_hold))
        .route("/v1/bookings", post(stays::book))
        .route("/v1/bookings/{id}", get(stays::read_booking))
        .route("/v1/bookings/{id}/cancel", post(stays::cancel_booking))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(async || ApiError::NoRoute)
        .method_not_allowed_fallback(async || ApiError::MethodNotAllowed)
        .with_state(state)
}
