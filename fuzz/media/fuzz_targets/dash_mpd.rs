//! cargo-fuzz target: the input goes to `entries/dash_mpd.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/dash_mpd.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
