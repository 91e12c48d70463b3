//! Entry points for fuzzers and property tests over the request parsers: each takes arbitrary
//! bytes, runs them through the same code a request goes through, and checks that bad input is
//! refused with a 4xx problem — never a panic, never a 5xx. The service never calls these.

use std::sync::OnceLock;

use jiff::Timestamp;
use serde::de::DeserializeOwned;

use crate::auth::dev::{DEV_AUDIENCE, DEV_ISSUER, DevKeys};
use crate::auth::{AuthConfig, Verifier};
use crate::dto::{
    AddBlock, BatchCheck, CreateBooking, CreateListing, PlaceHold, RangeQuery, StayQuery,
    UpdateListing, could_exist, night_range, opaque_id, units,
};
use crate::error::ApiError;
use crate::extract::{parse_json, parse_query};
use crate::routes::audit::AuditQuery;

/// A refusal must be a client error.
fn refused(result: Result<(), ApiError>) {
    if let Err(e) = result {
        let status = e.problem().status;
        assert!((400..500).contains(&status), "{e} answered {status}");
    }
}

fn body<T: DeserializeOwned>(data: &[u8], validate: impl Fn(T) -> Result<(), ApiError>) {
    refused(parse_json::<T>(data).and_then(|(value, digest)| {
        assert_eq!(digest.len(), 64);
        validate(value)
    }));
}

/// A JSON request body of one of the API's request types (chosen by the first byte), parsed
/// strictly and validated as the handlers validate it.
pub fn request_body(data: &[u8]) {
    let Some((selector, data)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => body(data, |b: CreateListing| {
            b.id.iter().try_for_each(|id| opaque_id("id", id))?;
            b.host_id.iter().try_for_each(|id| opaque_id("host_id", id))
        }),
        1 => body(data, |_: UpdateListing| Ok(())),
        2 => body(data, |b: AddBlock| {
            night_range(b.start, b.end, ("start", "end"))?;
            b.units.map(|u| units(Some(u))).transpose().map(drop)
        }),
        3 => body(data, |b: PlaceHold| {
            opaque_id("listing_id", &b.listing_id)?;
            night_range(b.check_in, b.check_out, ("check_in", "check_out"))?;
            units(b.units).map(drop)
        }),
        4 => body(data, |b: CreateBooking| {
            opaque_id("listing_id", &b.listing_id)?;
            night_range(b.check_in, b.check_out, ("check_in", "check_out"))?;
            units(b.units).map(drop)
        }),
        _ => body(data, |b: BatchCheck| {
            b.listing_ids
                .iter()
                .try_for_each(|id| opaque_id("listing_ids", id))?;
            night_range(b.check_in, b.check_out, ("check_in", "check_out"))?;
            units(b.units).map(drop)
        }),
    }
}

/// A query string for one of the API's query types (chosen by the first byte), and the same
/// text as a path id.
pub fn query_string(data: &[u8]) {
    let Some((selector, data)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    if could_exist(&text) {
        assert!(!text.is_empty() && text.len() <= crate::dto::MAX_ID_LEN);
    }
    let result = match selector % 3 {
        0 => parse_query::<RangeQuery>(&text).and_then(|q| q.range().map(drop)),
        1 => parse_query::<StayQuery>(&text).and_then(|q| {
            night_range(q.check_in, q.check_out, ("check_in", "check_out"))?;
            units(q.units).map(drop)
        }),
        _ => parse_query::<AuditQuery>(&text).map(drop),
    };
    refused(result);
}

/// An `Authorization: Bearer` token: arbitrary bytes are never accepted and never panic the
/// verifier.
pub fn bearer_token(data: &[u8]) {
    static VERIFIER: OnceLock<Option<Verifier>> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let keys = DevKeys::generate().ok()?;
        Verifier::new(AuthConfig::inline(keys.jwks(), DEV_ISSUER, DEV_AUDIENCE)).ok()
    });
    let Some(verifier) = verifier else {
        panic!("no verifier");
    };
    let token = String::from_utf8_lossy(data);
    let now = Timestamp::from_second(1_900_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    assert!(
        verifier.verify(&token, now).is_err(),
        "a random token was accepted"
    );
}
