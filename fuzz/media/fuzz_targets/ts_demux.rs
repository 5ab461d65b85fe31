//! cargo-fuzz target: the input goes to `entries/ts_demux.rs` (shared with the crate tests).
#![no_main]

#[path = "../../entries/ts_demux.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
