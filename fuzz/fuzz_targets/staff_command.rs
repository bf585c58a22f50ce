//! libFuzzer target `staff_command`: the property checks of [`harness::staff_command`] on each input.
#![no_main]

#[allow(dead_code)] // each target uses one of the harness functions
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::staff_command(data));
