//! The OpenAPI document, assembled from the handlers' annotations so it cannot drift from them.

use utoipa::OpenApi;

use crate::routes::{availability, blocks, listings, ops, stays};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vacancy",
        description = "Real-time availability and booking for marketplaces that sell nights. \
            Errors are RFC 9457 application/problem+json documents with a stable `type`.",
    ),
    paths(
        listings::create, listings::read, listings::update,
        blocks::add, blocks::list, blocks::remove,
        availability::calendar, availability::check, availability::batch,
        stays::place_hold, stays::read_hold, stays::confirm_hold, stays::release_hold,
        stays::book, stays::read_booking, stays::cancel_booking,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    tags(
        (name = "listings", description = "Bookable things and their stay rules"),
        (name = "blocks", description = "Nights a host closed"),
        (name = "availability", description = "Calendars and availability checks"),
        (name = "holds", description = "Temporary claims during checkout"),
        (name = "bookings", description = "Confirmed claims"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;
