//! The router: every route of API v1 (behind authentication) and the open operations
//! endpoints.

pub mod audit;
pub mod availability;
pub mod blocks;
pub mod listings;
pub mod ops;
pub mod stays;

use axum::Router;
use axum::routing::{get, post};

use crate::MetricsRoute;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState, metrics: MetricsRoute) -> Router {
    let v1 = Router::new()
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
        .route("/v1/audit", get(audit::list))
        // Only matched routes authenticate: an unknown path stays a 404 for everyone.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ));
    let mut open = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi));
    if metrics == MetricsRoute::Included {
        open = open.route("/metrics", get(ops::metrics));
    }
    v1.merge(open)
        .fallback(async || ApiError::NoRoute)
        .method_not_allowed_fallback(async || ApiError::MethodNotAllowed)
        .with_state(state)
}

/// The router of the separate metrics listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(async || ApiError::NoRoute)
        .with_state(state)
}
