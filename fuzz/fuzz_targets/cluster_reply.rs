//! cargo-fuzz target: the input goes to `entries/cluster_reply.rs` (shared with the crate tests).
#![no_main]

#[path = "../entries/cluster_reply.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::run(data));
