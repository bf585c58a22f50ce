//! libFuzzer target `mime_prescan`: the property checks of [`harness::mime_prescan`] on each
//! input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::mime_prescan(data));
