//! dash.js and Shaka Player, in headless Chromium, each play sluice's live DASH (the MPD
//! over HLS's fMP4 segments) for 15 s: playback starts, video frames are decoded, the play
//! head advances, no stall, no player error, and no request leaves the host. Driven by
//! tests/web/play_llhls.mjs (it reads the page's `window.__ll`, which tests/web/dash.html
//! and shaka.html fill the same way) with playwright-core and the system's chromium.
//!
//! Needs: chromium, node and npm (`apt-get install chromium nodejs npm`); dash.js, Shaka
//! Player and playwright-core, pinned in tests/web/package-lock.json, are installed with
//! `npm ci` when missing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{
    browser_slot, driver_json, ensure_node_modules, find_chromium, node_driver, WEB_DIR,
};
use common::*;

const PLAY_SECONDS: u64 = 15;
const DASH_JS: &str = "dashjs/dist/modern/umd/dash.all.min.js";
const SHAKA: &str = "shaka-player/dist/shaka-player.compiled.js";

#[test]
fn chromium_plays_the_live_mpd_with_dash_js() {
    play_live_mpd("dash.js", DASH_JS, "dash.html");
}

/// Shaka reads the MPD its own way (its own clock sync, presentation delay and timeline
/// handling): a second, independent player of the same MPD.
#[test]
fn chromium_plays_the_live_mpd_with_shaka() {
    play_live_mpd("Shaka", SHAKA, "shaka.html");
}

/// Serves `page` and the player's script (`module`, under tests/web/node_modules) from the
/// HLS root, publishes the fixture with DASH on, and plays the MPD in Chromium.
fn play_live_mpd(player: &str, module: &str, page: &str) {
    let _slot = browser_slot();
    require_ffmpeg();
    let chromium = find_chromium();
    ensure_node_modules(&["playwright-core", module]);
    let root = unique_dir("web-dash-root").join("hls");
    fs::create_dir_all(&root).expect("root");
    let web = Path::new(WEB_DIR);
    let script = Path::new(module).file_name().expect("a file name");
    fs::copy(web.join("node_modules").join(module), root.join(script))
        .unwrap_or_else(|e| panic!("copy {module}: {e}"));
    fs::copy(web.join(page), root.join(page)).expect("copy page");
    let http = free_port();
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_use_fmp4 on; hls_path {root}; hls_fragment 2; hls_window 20; }}
    dash {{ enabled on; dash_path {root}; dash_fragment 2; dash_update_period 2; dash_timeshift 30; }}
}}
",
        root = root.display()
    );
    let server = Server::start_with("web-dash", &body);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/test"));
    let mut publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));
    let mpd = root.join("live/test.mpd");
    // The player joins a stream that has run a while: four segments (8 s) listed, more
    // than dash.js's target delay (6 s here), so it starts behind the live edge. Joining
    // at the first segment, it would sit at the edge and wait at every boundary (it did,
    // when this wait counted `id="0"` attributes as segments and let it in after one).
    let live = wait_for(Duration::from_secs(60), || {
        let text = fs::read_to_string(&mpd).ok()?;
        (text.matches("<S ").count() >= 4).then_some(text)
    });
    assert!(live.is_some(), "no live MPD with four segments");
    let mut driver = node_driver("play_llhls.mjs");
    driver
        .arg(format!("http://127.0.0.1:{http}/{page}"))
        .arg(&chromium)
        .arg(PLAY_SECONDS.to_string());
    let v = driver_json(&mut driver);
    let live_mpd = fs::read_to_string(&mpd).unwrap_or_default();
    publisher.kill();
    eprintln!("{player}: {v}");
    assert!(v["error"].is_null(), "{player} error: {v}\n{live_mpd}");
    assert_eq!(
        v["playing"].as_bool(),
        Some(true),
        "never started: {v}\n{live_mpd}"
    );
    let frames = v["framesDecoded"].as_u64().unwrap_or(0);
    // 25 fps for 15 s is 375 frames; half of that leaves room for a slow start.
    assert!(frames > 150, "only {frames} frames decoded: {v}");
    let played = v["playedMs"].as_f64().unwrap_or(0.0) / 1000.0;
    assert!(
        played > (PLAY_SECONDS as f64) * 0.8,
        "played for only {played} s: {v}"
    );
    assert_eq!(v["stalls"].as_u64(), Some(0), "stalls: {v}\n{live_mpd}");
    // The MPD's UTCTiming gives the player its clock: nothing asked of another host.
    assert_eq!(
        v["offHost"].as_array().map(Vec::len),
        Some(0),
        "requests off the host: {v}"
    );
    assert!(live_mpd.contains("<UTCTiming "), "{live_mpd}");
    drop(server);
    if let Some(parent) = root.parent() {
        let _ = fs::remove_dir_all(parent);
    }
}
