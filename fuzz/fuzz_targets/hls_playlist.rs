//! Media playlists pulled from an origin.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pl) = media::hls::parse_media_playlist(text) {
        let _ = pl.effective_target_duration();
        let _ = pl.render();
    }
    let _ = media::hls::parse_date_time(text);
});
