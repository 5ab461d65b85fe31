//! cargo-fuzz target: the input goes to `entries/fmp4.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/fmp4.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
