//! Fuzz target: `vacancy_core::fuzzing::stay_decision` (dates, ranges, rules, calendars).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vacancy_core::fuzzing::stay_decision(data);
});
