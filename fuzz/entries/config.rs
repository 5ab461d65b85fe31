//! The config file parser and builder on arbitrary text. Includes are not resolved against the
//! file system meaningfully here (they fail), which is fine: that path is bounded by its own
//! depth limit.
//!
//! The body of the `config` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/config/` and `fuzz/regressions/config/` under plain `cargo test`.

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("include") {
        // Reading arbitrary paths from the fuzzer's cwd would make runs non-deterministic.
        return;
    }
    let _ = sluice::config::Config::parse(text, "fuzz.conf");
}
