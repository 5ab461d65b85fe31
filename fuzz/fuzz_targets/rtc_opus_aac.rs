//! cargo-fuzz target: the input goes to `entries/rtc_opus_aac.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/rtc_opus_aac.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
