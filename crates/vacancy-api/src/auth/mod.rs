//! Authentication and authorization at the edge.
//!
//! - [`verify`]: JWT bearer tokens with asymmetric signatures (ES256/ES384, EdDSA, RS*/PS*)
//!   checked against JWKS keys (a file, a URL refreshed periodically, or a document given
//!   inline), with issuer, audience, `exp` and `nbf` judged on the service's [`Clock`](crate::Clock).
//! - [`dev`]: the local key pair of dev mode and minting tokens with it.
//! - this module: the [`Caller`] every `/v1` handler receives, the middleware that makes it,
//!   and the authorization rules shared by the handlers.
//!
//! Invariants: no `/v1` route runs without an authenticated [`Caller`] (the middleware answers
//! 401 before any handler or body parsing); a caller never learns whether a hold or booking it
//! may not see exists (foreign and missing are the same 404); a denial by role is a 403 that
//! names no resource. `/healthz`, `/readyz`, `/metrics` and `/openapi.json` stay open.

pub mod dev;
pub mod verify;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vacancy_store::{Actor, Claim, Listing};

use crate::error::ApiError;
use crate::state::AppState;

pub use verify::{AuthConfig, Verifier};

/// What a token's `role` claim may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Places holds and bookings for themselves; sees and cancels only their own.
    Guest,
    /// Creates and manages their own listings and blocks; reads stays on their listings.
    Host,
    /// A platform service (search backend): reads listings, calendars, availability, batches.
    Service,
    /// May do everything, including reading the audit trail.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Guest, Role::Host, Role::Service, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Host => "host",
            Role::Service => "service",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// The authenticated caller of a `/v1` request: the token's subject and role, and the request
/// id the audit trail records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
    pub request_id: Option<String>,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Who the audit trail records for writes made on this caller's behalf.
    pub fn actor(&self) -> Actor {
        Actor {
            subject: self.subject.clone(),
            role: self.role.as_str().to_owned(),
            request_id: self.request_id.clone(),
        }
    }

    /// The key space of this caller's `Idempotency-Key`s.
    pub fn idempotency_client(&self) -> &str {
        &self.subject
    }

    /// 403 unless the caller may manage `listing` (its host, or an admin).
    pub fn manages(&self, listing: &Listing) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Host if listing.host_id == self.subject => Ok(()),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// Whether the caller may see `claim` (a hold or booking) of `listing`: an admin, the guest
    /// who placed it, or the host of its listing. Callers who may not are told "not found".
    pub fn sees(&self, claim: &Claim, listing_host: Option<&str>) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Guest => claim.guest_id.as_deref() == Some(self.subject.as_str()),
            Role::Host => listing_host == Some(self.subject.as_str()),
            Role::Service => false,
        }
    }

    /// Whether the caller may change `claim` (confirm, release, cancel): an admin or its guest.
    pub fn owns(&self, claim: &Claim) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Guest => claim.guest_id.as_deref() == Some(self.subject.as_str()),
            Role::Host | Role::Service => false,
        }
    }

    /// The party a new listing, hold or booking is for: the caller's subject unless an admin
    /// names someone else; anyone else naming another party is refused.
    pub fn on_behalf_of(&self, named: Option<&str>) -> Result<String, ApiError> {
        match named {
            None => Ok(self.subject.clone()),
            Some(id) if id == self.subject || self.is_admin() => Ok(id.to_owned()),
            Some(_) => Err(ApiError::Forbidden),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated(AuthFailure::Missing))
    }
}

/// Why a request is not authenticated (told to the client; never which key or tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("send a bearer token in the Authorization header")]
    Missing,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted (asymmetric signatures only)")]
    Algorithm,
    #[error("no key of this service verifies the token")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("the token is meant for someone else")]
    Audience,
    #[error("the token's subject or role is missing or not recognised")]
    Claims,
}

/// Middleware for the `/v1` routes: verifies the bearer token and attaches the [`Caller`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(header::AUTHORIZATION);
    let caller = match bearer(header).and_then(|token| state.auth.verify(token, state.clock.now()))
    {
        Ok(claims) => Caller {
            subject: claims.subject,
            role: claims.role,
            request_id: request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        Err(failure) => return ApiError::Unauthenticated(failure).into_response(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn bearer(header: Option<&axum::http::HeaderValue>) -> Result<&str, AuthFailure> {
    let value = header.ok_or(AuthFailure::Missing)?;
    let text = value.to_str().map_err(|_| AuthFailure::NotBearer)?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthFailure::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthFailure::Missing);
    }
    Ok(token)
}
