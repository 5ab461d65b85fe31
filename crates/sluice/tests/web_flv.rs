//! A real browser plays sluice's live HTTP-FLV: headless Chromium runs mpegts.js from a page
//! served by sluice's http_server, reading the `http_remux` mount while ffmpeg publishes over
//! RTMP. Driven by a small node script with playwright-core (tests/web/play_flv.mjs) using the
//! system's chromium.
//!
//! Needs: chromium, node and npm (`apt-get install chromium nodejs npm`); the npm packages
//! pinned in tests/web/package-lock.json are installed here with `npm ci` when missing.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{
    browser_slot, driver_json, ensure_node_modules, find_chromium, node_driver, WEB_DIR,
};
use common::*;

/// How long the browser may take to show playback.
const BROWSER_TIMEOUT_SECS: &str = "20";
/// Seconds of playback the video element must advance by.
const ADVANCE_SECS: &str = "2";

/// Status code of a GET, reading only the response head (a live FLV body never ends).
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(buf.get(..n)?).into_owned();
    head.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn chromium_plays_live_http_flv_with_mpegts_js() {
    let _slot = browser_slot();
    require_ffmpeg();
    let chromium = find_chromium();
    ensure_node_modules(&["playwright-core", "mpegts.js/dist/mpegts.js"]);

    let root = unique_dir("web-flv-root").join("html");
    fs::create_dir_all(&root).expect("http root");
    let web = Path::new(WEB_DIR);
    fs::copy(
        web.join("node_modules/mpegts.js/dist/mpegts.js"),
        root.join("mpegts.js"),
    )
    .expect("copy mpegts.js");
    fs::copy(web.join("flv.html"), root.join("flv.html")).expect("copy page");

    let http = free_port();
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    gop_cache on;
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
}}
",
        root = root.display()
    );
    let server = Server::start_with("web-flv", &body);

    // 30 s of media so the stream stays live during the whole browser session.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "2", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/test"));
    let _publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));

    // The mount answers 404 until the stream is published.
    let ready = wait_for(Duration::from_secs(10), || {
        (get_status(http, "/live/test.flv") == Some(200)).then_some(())
    });
    assert!(
        ready.is_some(),
        "live HTTP-FLV mount /live/test.flv not ready (last status {:?})",
        get_status(http, "/live/test.flv")
    );

    let mut driver = node_driver("play_flv.mjs");
    driver
        .arg(format!("http://127.0.0.1:{http}/flv.html"))
        .arg(&chromium)
        .arg(BROWSER_TIMEOUT_SECS)
        .arg(ADVANCE_SECS);
    let v = driver_json(&mut driver);
    eprintln!("browser state: {v}");
    assert!(v["error"].is_null(), "mpegts.js error: {v}");
    assert!(
        v["supported"].as_bool() == Some(true),
        "mpegts.js live playback unsupported: {v}"
    );

    // What mpegts.js demuxed from our FLV must be the fixture's streams.
    let info = &v["mediaInfo"];
    assert!(info.is_object(), "mpegts.js reported no media info: {v}");
    assert_eq!(info["hasVideo"], true, "no video in media info: {v}");
    assert_eq!(info["hasAudio"], true, "no audio in media info: {v}");
    assert_eq!(info["width"], 640, "width: {v}");
    assert_eq!(info["height"], 360, "height: {v}");
    assert!(
        info["videoCodec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.")),
        "video codec: {v}"
    );
    assert!(
        info["audioCodec"]
            .as_str()
            .is_some_and(|c| c.starts_with("mp4a.40")),
        "audio codec: {v}"
    );
    let buffered = v["buffered"].as_f64().unwrap_or(0.0);
    assert!(buffered > 0.0, "nothing buffered: {v}");

    if v["h264"].as_bool() == Some(true) {
        let start = v["startTime"].as_f64().unwrap_or(0.0);
        let now = v["currentTime"].as_f64().unwrap_or(0.0);
        assert!(
            v["advancedAfterMs"].is_u64() && now > start + 2.0,
            "playback did not advance by 2 s: {v}"
        );
        // mpegts.js reports statistics every 600 ms; when it did, frames were decoded.
        if let Some(decoded) = v["statistics"]["decodedFrames"].as_u64() {
            assert!(decoded > 0, "no frame decoded: {v}");
        }
    } else {
        // Debian's chromium may ship without proprietary codecs: then mpegts.js can demux
        // the FLV (media info) and feed MSE (buffered ranges) but the browser cannot decode
        // H.264, and time cannot advance.
        eprintln!("this chromium cannot decode H.264: checked media info and buffer only");
    }
    drop(server);
    if let Some(parent) = root.parent() {
        let _ = fs::remove_dir_all(parent);
    }
}
