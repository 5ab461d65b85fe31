//! hls.js in headless Chromium plays sluice's Low-Latency HLS (fMP4 parts, blocking
//! reloads) for 30 s without a stall, and reports its live latency (`hls.latency`); the
//! same page plays classic TS HLS at SRS's default settings beside it, for the record.
//! Driven by tests/web/play_llhls.mjs with playwright-core and the system's chromium.
//!
//! Needs: chromium, node and npm (`apt-get install chromium nodejs npm`); the npm packages
//! pinned in tests/web/package-lock.json are installed with `npm ci` when missing.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::{
    browser_slot, driver_json, ensure_node_modules, find_chromium, node_driver, WEB_DIR,
};
use common::*;

const PLAY_SECONDS: u64 = 30;

/// Publishes a minute of the fixture in real time to a server with `hls_settings`, plays it
/// with hls.js (low-latency mode when `low_latency`) and returns the page's state.
fn play(
    tag: &str,
    hls_settings: &str,
    low_latency: bool,
    ready_segments: usize,
) -> serde_json::Value {
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
    fs::copy(web.join("llhls.html"), root.join("llhls.html")).expect("copy page");
    let http = free_port();
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_path {root}; {hls_settings} }}
}}
",
        root = root.display()
    );
    let server = Server::start_with(tag, &body);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.url("live/test"));
    let mut publisher = Proc::spawn("ffmpeg publisher", cmd, server.tmp("publisher.log"));
    let playlist = root.join("live/test.m3u8");
    let ready = wait_for(Duration::from_secs(60), || {
        let text = fs::read_to_string(&playlist).ok()?;
        let pl = media::hls::parse_media_playlist(&text).ok()?;
        (pl.segments.len() >= ready_segments).then_some(())
    });
    assert!(
        ready.is_some(),
        "no live playlist with {ready_segments} segments"
    );
    let mut driver = node_driver("play_llhls.mjs");
    driver
        .arg(format!(
            "http://127.0.0.1:{http}/llhls.html?ll={}",
            u8::from(low_latency)
        ))
        .arg(&chromium)
        .arg(PLAY_SECONDS.to_string());
    let v = driver_json(&mut driver);
    publisher.kill();
    drop(server);
    if let Some(parent) = root.parent() {
        let _ = fs::remove_dir_all(parent);
    }
    v
}

/// Latency samples of the last two thirds of the session (after hls.js settled).
fn latency_summary(v: &serde_json::Value) -> (f64, f64, f64) {
    let mut l: Vec<f64> = v["latency"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let skip = l.len() / 3;
    l.drain(..skip);
    assert!(!l.is_empty(), "no latency sample: {v}");
    l.sort_by(|a, b| a.total_cmp(b));
    (l[0], l[l.len() / 2], l[l.len() - 1])
}

fn check_played(label: &str, v: &serde_json::Value) -> (f64, f64, f64) {
    assert!(v["error"].is_null(), "{label}: hls.js error: {v}");
    assert_eq!(
        v["playing"].as_bool(),
        Some(true),
        "{label}: never started: {v}"
    );
    let played = v["currentTime"].as_f64().unwrap_or(0.0);
    assert!(
        played > (PLAY_SECONDS as f64) * 0.8,
        "{label}: only {played} s played in {PLAY_SECONDS} s: {v}"
    );
    let (min, median, max) = latency_summary(v);
    eprintln!(
        "{label}: hls.latency min {min:.2} s, median {median:.2} s, max {max:.2} s; stalls {}; parts {} fragments {}",
        v["stalls"], v["partsLoaded"], v["fragsLoaded"]
    );
    (min, median, max)
}

#[test]
fn chromium_plays_ll_hls_in_low_latency_mode_without_stalls() {
    let v = play(
        "web-llhls",
        "hls_use_fmp4 on; hls_ll on; hls_part 200ms; hls_fragment 1; hls_window 10;",
        true,
        2,
    );
    eprintln!(
        "page logs: {} stall events: {}",
        v["logs"], v["stallEvents"]
    );
    let (_, median, _) = check_played("LL-HLS (hls_part 200ms, hls_fragment 1)", &v);
    assert_eq!(v["stalls"].as_u64(), Some(0), "stalls: {v}");
    assert!(
        v["partsLoaded"].as_u64().unwrap_or(0) > 0,
        "hls.js loaded no part: {v}"
    );
    // A generous sanity bound only (a shared machine); the measured number goes in
    // docs/performance.md.
    assert!(median < 6.0, "LL-HLS latency {median} s");
}

#[test]
fn chromium_plays_classic_ts_hls_for_the_record() {
    // SRS's defaults: 10 s fragments, 60 s window.
    let v = play("web-tshls", "", false, 3);
    check_played("classic TS HLS (SRS defaults)", &v);
}
