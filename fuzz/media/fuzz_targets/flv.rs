//! cargo-fuzz target: the input goes to `entries/flv.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/flv.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
