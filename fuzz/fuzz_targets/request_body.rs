//! Fuzz target: `vacancy_api::fuzzing::request_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vacancy_api::fuzzing::request_body(data);
});
