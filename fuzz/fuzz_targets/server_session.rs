//! cargo-fuzz target: the input goes to `entries/server_session.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/server_session.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
