//! cargo-fuzz target: the input goes to `entries/rtp_h264.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/rtp_h264.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
