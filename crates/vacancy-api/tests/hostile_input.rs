//! Property tests over the request parsers, driving the same entry points as the fuzz targets
//! under `fuzz/` (`vacancy_api::fuzzing`): random bytes and near-JSON never panic and never
//! turn into anything but a 4xx problem. They run in the normal suite, bounded by case count.

use proptest::prelude::*;
use vacancy_api::fuzzing::{bearer_token, query_string, request_body};

/// Text shaped like the API's JSON bodies, with plausible field names and awkward values.
fn near_json() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("id"),
        Just("host_id"),
        Just("time_zone"),
        Just("units"),
        Just("min_nights"),
        Just("max_nights"),
        Just("advance_notice_hours"),
        Just("booking_window_days"),
        Just("start"),
        Just("end"),
        Just("note"),
        Just("listing_id"),
        Just("listing_ids"),
        Just("check_in"),
        Just("check_out"),
        Just("guest_id"),
        Just("ttl_seconds"),
        Just("x"),
    ];
    let value = prop_oneof![
        "\"[0-9]{4}-[0-9]{2}-[0-9]{2}\"",
        "\"[A-Za-z/_:.-]{0,20}\"",
        "-?[0-9]{1,12}(\\.[0-9])?",
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[\"a\", 1, null]".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just("\"2030-02-30\"".to_owned()),
        Just("\"9999-12-31\"".to_owned()),
    ];
    (any::<u8>(), proptest::collection::vec((key, value), 0..8)).prop_map(|(selector, fields)| {
        let body = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut out = vec![selector];
        out.extend(format!("{{{body}}}").into_bytes());
        out
    })
}

fn near_query() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        "((start|end|check_in|check_out|units|limit|listing_id|x)=[0-9A-Za-z%+&=-]{0,12}&?){0,5}",
    )
        .prop_map(|(selector, q)| {
            let mut out = vec![selector];
            out.extend(q.into_bytes());
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn random_bodies_are_refused_cleanly(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        request_body(&data);
    }

    #[test]
    fn near_json_bodies_are_parsed_or_refused_cleanly(data in near_json()) {
        request_body(&data);
    }

    #[test]
    fn random_queries_and_ids_are_refused_cleanly(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        query_string(&data);
    }

    #[test]
    fn near_queries_are_parsed_or_refused_cleanly(data in near_query()) {
        query_string(&data);
    }

    #[test]
    fn random_tokens_are_never_accepted(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        bearer_token(&data);
    }

    #[test]
    fn token_shaped_text_is_never_accepted(token in "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,90}") {
        bearer_token(token.as_bytes());
    }
}
