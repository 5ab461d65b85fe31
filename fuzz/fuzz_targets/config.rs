//! cargo-fuzz target: the input goes to `entries/config.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/config.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
