//! libFuzzer target `fiscal_code`: the property checks of [`harness::fiscal_code`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fiscal_code(data));
