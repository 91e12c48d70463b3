//! The audit trail, for admins: who changed what, when, under which request.

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vacancy_store::{AuditRecord, MAX_AUDIT_PAGE};

use crate::auth::{Caller, Role};
use crate::dto::opaque_id;
use crate::error::{ApiError, Problem};
use crate::extract::StrictQuery;
use crate::state::AppState;

/// Which audit records to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this listing's records.
    #[param(nullable = false)]
    pub listing_id: Option<String>,
    /// Most records to return, newest first (1–1000, default 100).
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One mutation.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who: the token's subject.
    pub subject: String,
    /// The subject's role.
    pub role: String,
    /// What happened, e.g. `booking.created`, `block.added`, `listing.updated`.
    pub action: String,
    /// The hold, booking or block changed, or the listing itself.
    pub resource_id: String,
    pub listing_id: Option<String>,
    /// The `x-request-id` of the request that made the change.
    pub request_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditBody {
    pub records: Vec<AuditEntry>,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            at: r.at,
            subject: r.subject,
            role: r.role,
            action: r.action,
            resource_id: r.resource_id,
            listing_id: r.listing_id,
            request_id: r.request_id,
        }
    }
}

/// The audit trail, newest first (admins only).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditBody), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(query): StrictQuery<AuditQuery>,
) -> Result<Json<AuditBody>, ApiError> {
    caller.require(&[Role::Admin])?;
    if let Some(listing) = &query.listing_id {
        opaque_id("listing_id", listing)?;
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_AUDIT_PAGE}, got {limit}"),
        ));
    }
    let records = state
        .store
        .audit_log(query.listing_id.as_deref(), limit)
        .await?;
    Ok(Json(AuditBody {
        records: records.into_iter().map(AuditEntry::from).collect(),
    }))
}
