//! Fuzz target: `vacancy_api::fuzzing::bearer_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vacancy_api::fuzzing::bearer_token(data);
});
