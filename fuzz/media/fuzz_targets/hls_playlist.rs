//! cargo-fuzz target: the input goes to `entries/hls_playlist.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/hls_playlist.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
