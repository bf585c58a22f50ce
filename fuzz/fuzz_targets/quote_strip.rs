//! libFuzzer target `quote_strip`: the property checks of [`harness::quote_strip`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::quote_strip(data));
