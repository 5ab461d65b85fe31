//! SRT stream ids (`#!::r=...,m=...` and `APP/STREAM?...`), as callers send them.
//!
//! The body of the `srt_stream_id` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/srt_stream_id/` and `fuzz/regressions/srt_stream_id/` under plain `cargo test`.

use sluice::srt::stream_id;

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(req) = stream_id::parse(&text) {
        // What parses names a stream: non-empty app and stream, no control characters.
        assert!(!req.app.is_empty() && !req.stream.is_empty());
        assert!(!req.stream.contains('/'));
        assert!(!req.app.chars().any(char::is_control));
    }
}
