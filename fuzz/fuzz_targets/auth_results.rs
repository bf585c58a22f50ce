//! libFuzzer target `auth_results`: the property checks of [`harness::auth_results`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::auth_results(data));
