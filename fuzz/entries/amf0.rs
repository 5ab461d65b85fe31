//! AMF0 bodies (command and data messages) come straight from the peer.
//!
//! The body of the `amf0` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/amf0/` and `fuzz/regressions/amf0/` under plain `cargo test`.

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let _ = amf::decode_all(data);
    // The single-value entry point must leave the cursor untouched on error.
    let mut cur = data;
    if amf::decode(&mut cur).is_err() {
        assert_eq!(cur.len(), data.len());
    }
}
