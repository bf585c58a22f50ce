//! libFuzzer target `pec_classify`: the property checks of [`harness::pec_classify`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::pec_classify(data));
