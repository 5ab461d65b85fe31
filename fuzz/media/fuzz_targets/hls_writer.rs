//! cargo-fuzz target: the input goes to `entries/hls_writer.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/hls_writer.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
