//! The OpenAPI document, assembled from the handlers' annotations so it cannot drift from them.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Required};
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
    modifiers(&BearerAuth, &EdgeResponses),
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

/// What every operation shares, written once instead of on each handler: the `{id}` path
/// parameter, the problem responses the edge itself can give (400 malformed JSON, 401 without
/// a valid token, 413/415 for bodies, 422 for bad input, 431 for oversized heads, 503 when the
/// database is away), and `application/problem+json` as the media type of every problem.
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                complete(path, operation);
            }
        }
    }
}

fn complete(path: &str, operation: &mut Operation) {
    if path.contains("{id}") {
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        if !parameters.iter().any(|p| p.name == "id") {
            let id = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(crate::dto::MAX_ID_LEN));
            parameters.insert(
                0,
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some("The resource's id"))
                    .schema(Some(id))
                    .build(),
            );
        }
    }
    let mut edge: Vec<(&str, &str)> = vec![("431", "Request line and headers too large")];
    if path.starts_with("/v1/") {
        edge.extend([
            ("401", "No valid bearer token"),
            ("422", "Invalid input; `errors` names the fields"),
            (
                "503",
                "The database is unreachable; retry after `Retry-After`",
            ),
        ]);
    }
    if operation.request_body.is_some() {
        edge.extend([
            ("400", "The body is not JSON"),
            ("413", "The body is too large"),
            ("415", "The body is not application/json"),
        ]);
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in edge {
        responses.entry(status.to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        });
    }
    for response in responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let is_problem = response.content.get("application/json").is_some_and(
            |c| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")),
        );
        if is_problem && let Some(content) = response.content.shift_remove("application/json") {
            response
                .content
                .insert("application/problem+json".to_owned(), content);
        }
    }
}
