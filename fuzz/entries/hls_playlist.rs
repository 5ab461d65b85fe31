//! Media playlists pulled from an origin.
//!
//! The body of the `hls_playlist` fuzz target, shared with the crate test that replays
//! `fuzz/corpus/hls_playlist/` and `fuzz/regressions/hls_playlist/` under plain `cargo test`.

/// One fuzz input; panics only on a bug.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pl) = media::hls::parse_media_playlist(text) {
        let _ = pl.effective_target_duration();
        let _ = pl.render();
    }
    let _ = media::hls::parse_date_time(text);
}
