//! cargo-fuzz target: the input goes to `entries/srt_stream_id.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/srt_stream_id.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
