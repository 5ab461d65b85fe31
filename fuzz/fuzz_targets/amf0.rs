//! AMF0 bodies (command and data messages) come straight from the peer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = amf::decode_all(data);
    // The single-value entry point must leave the cursor untouched on error.
    let mut cur = data;
    if amf::decode(&mut cur).is_err() {
        assert_eq!(cur.len(), data.len());
    }
});
