//! cargo-fuzz target: the input goes to `entries/bandcheck.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/bandcheck.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
