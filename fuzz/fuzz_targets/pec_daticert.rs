//! libFuzzer target `pec_daticert`: the property checks of [`harness::pec_daticert`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::pec_daticert(data));
