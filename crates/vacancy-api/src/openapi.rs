//! The OpenAPI document, assembled from the handlers' annotations so it cannot drift from them.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{audit, availability, blocks, listings, ops, stays};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vacancy",
        description = "Real-time availability and booking for marketplaces that sell nights. \
            Errors are RFC 9457 application/problem+json documents with a stable `type`.\n\n\
            Authentication: every `/v1` route needs `Authorization: Bearer <JWT>`, a token signed \
            with an asymmetric key (ES256, EdDSA, RS256…) of the configured JWKS, with the \
            configured `iss` and `aud`, a `sub` (the caller's opaque id) and a `role`: `guest` \
            (holds and bookings for themselves), `host` (their own listings and blocks; reads \
            stays on their listings), `service` (reads listings, calendars, availability, \
            batches) or `admin` (everything, and the audit trail). A missing or invalid token is \
            a 401 `unauthenticated`; a role that may not do something a 403 `forbidden`; a hold \
            or booking the caller may not see is a 404, like a missing one. In dev mode \
            `vacancy token --role host --sub alice` prints a token.",
    ),
    paths(
        listings::create, listings::read, listings::update,
        blocks::add, blocks::list, blocks::remove,
        availability::calendar, availability::check, availability::batch,
        stays::place_hold, stays::read_hold, stays::confirm_hold, stays::release_hold,
        stays::book, stays::read_booking, stays::cancel_booking,
        audit::list,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "listings", description = "Bookable things and their stay rules"),
        (name = "blocks", description = "Nights a host closed"),
        (name = "availability", description = "Calendars and availability checks"),
        (name = "holds", description = "Temporary claims during checkout"),
        (name = "bookings", description = "Confirmed claims"),
        (name = "audit", description = "Who changed what (admins)"),
        (name = "operations", description = "Health, readiness, metrics, this document (no token needed)"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (a JWT) that `/v1` operations require.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT signed with a key of the service's JWKS; claims `sub`, `role`, `iss`, `aud`, `exp`.",
                    ))
                    .build(),
            ),
        );
    }
}
