//! Fuzz target: `vacancy_api::fuzzing::query_string`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vacancy_api::fuzzing::query_string(data);
});
