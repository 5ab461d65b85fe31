//! cargo-fuzz target: the input goes to `entries/ts_ingest.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/ts_ingest.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
