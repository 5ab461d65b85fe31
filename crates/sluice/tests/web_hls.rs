//! A real browser plays sluice's live HLS: headless Chromium runs hls.js from a page served by
//! sluice's http_server, while ffmpeg publishes over RTMP. Driven by a small node script with
//! playwright-core (tests/web/play_hls.mjs) using the system's chromium.
//!
//! Needs: chromium, node and npm (`apt-get install chromium nodejs npm`); the npm packages
//! pinned in tests/web/package-lock.json are installed here with `npm ci` when missing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{
    browser_slot, driver_json, ensure_node_modules, find_chromium, node_driver, WEB_DIR,
};
use common::*;

#[test]
fn chromium_plays_live_hls_with_hls_js() {
    let v = play_in_chromium("web-hls", "", false);
    assert_eq!(
        v["keysLoaded"].as_u64(),
        Some(0),
        "no key in plain HLS: {v}"
    );
}

/// hls_keys: hls.js fetches the AES-128 keys and buffers (and, where the browser decodes
/// H.264, plays) the media of the segments, which it can only demux once decrypted.
#[test]
fn chromium_plays_encrypted_hls_with_hls_js() {
    let v = play_in_chromium(
        "web-hls-keys",
        "hls_keys on; hls_fragments_per_key 2;",
        false,
    );
    assert!(
        v["keysLoaded"].as_u64().unwrap_or(0) > 0,
        "no key loaded: {v}"
    );
}

/// HLS over HTTPS (`http_server { https { } }`): the page, playlist and segments come over
/// TLS, and Chromium trusts nothing but the test's own key
/// (`--ignore-certificate-errors-spki-list`), so a handshake or certificate problem fails.
#[test]
fn chromium_plays_hls_over_https() {
    let v = play_in_chromium("web-hls-tls", "", true);
    assert!(v["fragsLoaded"].as_u64().unwrap_or(0) > 0, "{v}");
}

/// Publishes the fixture to a server with HLS (`extra_hls` added to its `hls { }`) and plays
/// it in Chromium with hls.js: fragments loaded and media buffered, and playback advancing
/// where the browser decodes H.264. With `tls`, the page is loaded over HTTPS. Returns the
/// page's final state.
fn play_in_chromium(tag: &str, extra_hls: &str, tls: bool) -> serde_json::Value {
    let _slot = browser_slot();
    require_ffmpeg();
    let chromium = find_chromium();
    ensure_node_modules(&["playwright-core", "hls.js/dist/hls.min.js"]);

    let root = unique_dir(&format!("{tag}-root")).join("hls");
    fs::create_dir_all(&root).expect("hls root");
    let web = Path::new(WEB_DIR);
    fs::copy(
        web.join("node_modules/hls.js/dist/hls.min.js"),
        root.join("hls.min.js"),
    )
    .expect("copy hls.js");
    fs::copy(web.join("hls.html"), root.join("hls.html")).expect("copy page");

    let http = free_port();
    let https = free_port();
    let pki = common::pki::Pki::new(&root.join("pki"), "web");
    let https_block = if tls {
        format!(
            "https {{ enabled on; listen 127.0.0.1:{https}; key {}; cert {}; }}",
            pki.key.display(),
            pki.cert.display()
        )
    } else {
        String::new()
    };
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; {https_block} }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_path {root}; hls_fragment 2; hls_window 10; {extra_hls} }}
}}
",
        root = root.display()
    );
    let server = Server::start_with(tag, &body);

    // 30 s of media so the playlist stays live during the whole browser session.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "2", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/test"));
    let _publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));

    // A live player starts a few segments from the end: wait for three.
    let playlist = root.join("live/test.m3u8");
    let ready = wait_for(Duration::from_secs(20), || {
        let text = fs::read_to_string(&playlist).ok()?;
        let pl = media::hls::parse_media_playlist(&text).ok()?;
        (pl.segments.len() >= 3).then_some(())
    });
    assert!(ready.is_some(), "no live playlist with 3 segments");

    let page = if tls {
        format!("https://127.0.0.1:{https}/hls.html")
    } else {
        format!("http://127.0.0.1:{http}/hls.html")
    };
    let mut driver = node_driver("play_hls.mjs");
    driver
        .arg(page)
        .env(
            "CHROMIUM_EXTRA_ARGS",
            if tls {
                format!("--ignore-certificate-errors-spki-list={}", pki.spki_sha256)
            } else {
                String::new()
            },
        )
        .arg(&chromium)
        .arg("20");
    let v = driver_json(&mut driver);
    eprintln!("browser state: {v}");
    assert!(v["error"].is_null(), "hls.js error: {v}");
    assert!(
        v["supported"].as_bool() == Some(true),
        "hls.js unsupported: {v}"
    );
    let frags = v["fragsLoaded"].as_u64().unwrap_or(0);
    let buffered = v["buffered"].as_f64().unwrap_or(0.0);
    assert!(frags > 0, "no fragment loaded: {v}");
    assert!(buffered > 0.0, "nothing buffered: {v}");
    if v["h264"].as_bool() == Some(true) {
        let start = v["startTime"].as_f64().unwrap_or(0.0);
        let now = v["currentTime"].as_f64().unwrap_or(0.0);
        assert!(now > start + 1.0, "playback did not advance: {v}");
    } else {
        // Debian's chromium may ship without proprietary codecs: then hls.js can load and
        // buffer the segments but the browser cannot decode H.264, and time cannot advance.
        eprintln!("this chromium cannot decode H.264: checked fragments and buffer only");
    }
    drop(server);
    if let Some(parent) = root.parent() {
        let _ = fs::remove_dir_all(parent);
    }
    v
}
