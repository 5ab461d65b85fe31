//! cargo-fuzz target: the input goes to `entries/amf0.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/amf0.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
