//! libFuzzer target `subject_tag`: the property checks of [`harness::subject_tag`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::subject_tag(data));
