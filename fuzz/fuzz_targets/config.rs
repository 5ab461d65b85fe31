//! The config file parser and builder on arbitrary text. Includes are not resolved against the
//! file system meaningfully here (they fail), which is fine: that path is bounded by its own
//! depth limit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        // Reading arbitrary paths from the fuzzer's cwd would make runs non-deterministic.
        return;
    }
    let _ = sluice::config::Config::parse(text, "fuzz.conf");
});
