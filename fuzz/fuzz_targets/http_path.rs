//! cargo-fuzz target: the input goes to `entries/http_path.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/http_path.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
