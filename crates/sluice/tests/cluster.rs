//! Origin/edge and forward, end to end: several sluice processes on loopback, real ffmpeg
//! publishers and players, recordings checked with our own FLV parser.
//!
//! Needs ffmpeg and ffprobe; panics (never skips) without them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::recording::*;
use common::*;
use media::codec::{AudioCodec, VideoCodec};

/// Seconds of media each player records.
const PLAY_SECONDS: &str = "4";
/// Longest a player may take to record its seconds (start-up, pulls, failovers included).
const PLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// The recording is the clip's codecs, starts decodable, and its timestamps only move
/// forward without holes, over at least `min_ms`.
fn assert_good_recording(label: &str, path: &Path, min_ms: u32, max_gap_ms: u32) {
    let s = flv_stats(path);
    assert_eq!(s.video_codec, Some(VideoCodec::Avc), "{label}: {s:?}");
    assert_eq!(s.audio_codec, Some(AudioCodec::Aac), "{label}: {s:?}");
    assert_eq!(s.width_height, Some((640, 360)), "{label}: {s:?}");
    assert!(
        s.video_seq_before_frames,
        "{label}: no AVC header first: {s:?}"
    );
    assert!(
        s.audio_seq_before_frames,
        "{label}: no AAC header first: {s:?}"
    );
    assert_eq!(s.first_video_frame_key, Some(true), "{label}: {s:?}");
    assert_eq!(s.video_ts_regressions, 0, "{label}: video went back: {s:?}");
    assert_eq!(s.audio_ts_regressions, 0, "{label}: audio went back: {s:?}");
    let span = s
        .last_ts
        .unwrap_or(0)
        .saturating_sub(s.first_ts.unwrap_or(0));
    assert!(span >= min_ms, "{label}: only {span} ms recorded: {s:?}");
    let tl = timeline(path);
    let (gv, ga) = (max_gap(&tl, FLV_VIDEO), max_gap(&tl, FLV_AUDIO));
    assert!(
        gv <= max_gap_ms && ga <= max_gap_ms,
        "{label}: timestamp hole (video {gv} ms, audio {ga} ms, allowed {max_gap_ms})"
    );
}

fn base_body(extra_vhosts: &str) -> String {
    format!("daemon off;\nsrs_log_tank console;\nmax_connections 100;\n{extra_vhosts}")
}

fn edge_body(origins: &[u16], extra: &str) -> String {
    let list: Vec<String> = origins.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let cluster = format!("cluster {{ mode remote; origin {}; }}", list.join(" "));
    base_body(&format!(
        "{extra}vhost __defaultVhost__ {{ {cluster} }}\nvhost v1.test {{ {cluster} }}\n"
    ))
}

/// A plain HTTP/1.0 GET; returns the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr(port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Whether the edge's API lists `stream` as published (by its pull).
fn edge_publishes(api_port: u16, stream: &str) -> bool {
    let Some(body) = http_get(api_port, "/api/v1/streams?count=100") else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["streams"].as_array().is_some_and(|list| {
        list.iter()
            .any(|s| s["name"] == stream && s["publish"]["active"] == true)
    })
}

#[test]
fn edge_and_edge_of_edge_play_what_the_origin_has() {
    require_ffmpeg();
    let origin = Server::start_with("cl-origin", &base_body("vhost v1.test { }\n"));
    let edge = Server::start_with("cl-edge", &edge_body(&[origin.port], ""));
    let edge2 = Server::start_with("cl-edge2", &edge_body(&[edge.port], ""));
    let _publisher = looped_publisher(&origin, &origin.url("live?vhost=v1.test/s"), "o");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p1, f1) = player(
        &edge,
        &edge.url("live?vhost=v1.test/s"),
        "edge",
        PLAY_SECONDS,
    );
    let (mut p2, f2) = player(
        &edge2,
        &edge2.url("live?vhost=v1.test/s"),
        "edge2",
        PLAY_SECONDS,
    );
    // A second player of the first edge shares its pull.
    let (mut p3, f3) = player(
        &edge,
        &edge.url("live?vhost=v1.test/s"),
        "edge-b",
        PLAY_SECONDS,
    );
    p1.expect_success(PLAY_TIMEOUT);
    p2.expect_success(PLAY_TIMEOUT);
    p3.expect_success(PLAY_TIMEOUT);
    assert_good_recording("edge", &f1, 3000, 1000);
    assert_good_recording("edge of edge", &f2, 3000, 1000);
    assert_good_recording("edge, second player", &f3, 3000, 1000);
    let pulls = edge.log().matches("edge v1.test/live/s: playing").count();
    assert_eq!(pulls, 1, "one pull shared by both players:\n{}", edge.log());
}

#[test]
fn publish_to_edge_reaches_the_origin() {
    require_ffmpeg();
    let origin = Server::start_with("cl-porigin", &base_body("vhost v1.test { }\n"));
    let edge = Server::start_with("cl-pedge", &edge_body(&[origin.port], ""));
    let _publisher = looped_publisher(&edge, &edge.url("live/pushed"), "e");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p, f) = player(&origin, &origin.url("live/pushed"), "origin", PLAY_SECONDS);
    p.expect_success(PLAY_TIMEOUT);
    assert_good_recording("origin", &f, 3000, 1000);
    assert!(edge.log().contains("pushing to"), "{}", edge.log());
}

/// Answers one on_forward request with `urls` and hands the request body back.
fn fake_backend(urls: Vec<String>) -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"}") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let body = serde_json::json!({"code": 0, "data": {"urls": urls}}).to_string();
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        String::from_utf8_lossy(&got).to_string()
    });
    (port, h)
}

#[test]
fn forward_to_two_destinations_and_a_backend() {
    require_ffmpeg();
    let d1 = Server::start_with("cl-d1", &base_body("vhost v1.test { }\n"));
    let d2 = Server::start_with("cl-d2", &base_body("vhost v1.test { }\n"));
    let (backend_port, backend) =
        fake_backend(vec![format!("rtmp://127.0.0.1:{}/other/fromback", d1.port)]);
    let body = base_body(&format!(
        "vhost v1.test {{ forward {{ enabled on; destination 127.0.0.1:{} 127.0.0.1:{}; backend http://127.0.0.1:{backend_port}/api/v1/forward; }} }}\n",
        d1.port, d2.port
    ));
    let origin = Server::start_with("cl-fw", &body);
    let _publisher = looped_publisher(&origin, &origin.url("live?vhost=v1.test/fw"), "fw");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p1, f1) = player(&d1, &d1.url("live?vhost=v1.test/fw"), "d1", PLAY_SECONDS);
    let (mut p2, f2) = player(&d2, &d2.url("live?vhost=v1.test/fw"), "d2", PLAY_SECONDS);
    let (mut p3, f3) = player(&d1, &d1.url("other/fromback"), "d1-backend", PLAY_SECONDS);
    p1.expect_success(PLAY_TIMEOUT);
    p2.expect_success(PLAY_TIMEOUT);
    p3.expect_success(PLAY_TIMEOUT);
    assert_good_recording("destination 1", &f1, 3000, 1000);
    assert_good_recording("destination 2", &f2, 3000, 1000);
    assert_good_recording("backend destination", &f3, 3000, 1000);
    let request = backend.join().expect("backend thread");
    assert!(request.contains("\"action\":\"on_forward\""), "{request}");
    assert!(request.contains("\"stream\":\"fw\""), "{request}");
    assert!(request.contains("\"vhost\":\"v1.test\""), "{request}");
}

#[test]
fn forward_to_itself_is_refused() {
    require_ffmpeg();
    // A second listen line: the harness adds its own port, we know this one.
    let own = free_port();
    let body = base_body(&format!(
        "listen 127.0.0.1:{own};\nvhost __defaultVhost__ {{ forward {{ enabled on; destination 127.0.0.1:{own}; }} }}\n"
    ));
    let server = Server::start_with("cl-self", &body);
    let mut publisher = looped_publisher(&server, &server.url("live/self"), "self");
    let refused = wait_for(Duration::from_secs(10), || {
        server
            .log()
            .contains("is this server; skipped")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", server.log());
    assert!(publisher.is_running(), "the local publish must go on");
}

#[test]
fn edge_fails_over_to_the_next_origin() {
    require_ffmpeg();
    let a = Server::start_with("cl-fa", &base_body(""));
    let b = Server::start_with("cl-fb", &base_body(""));
    let edge = Server::start_with("cl-fedge", &edge_body(&[a.port, b.port], ""));
    let pub_a = looped_publisher(&a, &a.url("live/f"), "a");
    let _pub_b = looped_publisher(&b, &b.url("live/f"), "b");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p, f) = player(&edge, &edge.url("live/f"), "edge", "10");
    let pulling = wait_for(Duration::from_secs(15), || {
        (std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) > 50_000).then_some(())
    });
    assert!(
        pulling.is_some(),
        "edge player got nothing:\n{}",
        edge.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    // The first origin dies in the middle of the stream.
    drop(pub_a);
    let a_port = a.port;
    drop(a);
    p.expect_success(PLAY_TIMEOUT);
    assert_good_recording("edge through failover", &f, 9000, 3000);
    let log = edge.log();
    assert!(
        log.contains(&format!("playing rtmp://127.0.0.1:{a_port}/live/f"))
            && log.contains(&format!("playing rtmp://127.0.0.1:{}/live/f", b.port)),
        "edge did not switch origins:\n{log}"
    );
}

#[test]
fn pull_stops_when_the_last_player_leaves() {
    require_ffmpeg();
    let origin = Server::start_with("cl-sorigin", &base_body(""));
    let api = free_port();
    let edge = Server::start_with(
        "cl-sedge",
        &edge_body(
            &[origin.port],
            &format!("http_api {{ enabled on; listen 127.0.0.1:{api}; }}\n"),
        ),
    );
    let _publisher = looped_publisher(&origin, &origin.url("live/st"), "st");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut p, f) = player(&edge, &edge.url("live/st"), "st", "3");
    let up = wait_for(Duration::from_secs(15), || {
        edge_publishes(api, "st").then_some(())
    });
    assert!(
        up.is_some(),
        "edge API never showed the pull:\n{}",
        edge.log()
    );
    p.expect_success(PLAY_TIMEOUT);
    assert_good_recording("edge", &f, 2000, 1000);
    // EDGE_IDLE_STOP (5 s) after the player left, the pull ends and the stream goes.
    let gone = wait_for(Duration::from_secs(15), || {
        (!edge_publishes(api, "st")).then_some(())
    });
    assert!(gone.is_some(), "pull still running:\n{}", edge.log());
    assert!(
        edge.log().contains("no player left, pull stopped"),
        "{}",
        edge.log()
    );
}
