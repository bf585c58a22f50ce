//! libFuzzer target `mime_parse`: the property checks of [`harness::mime_parse`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::mime_parse(data));
