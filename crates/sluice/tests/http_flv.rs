//! Live HTTP-FLV read by real clients: ffmpeg records it and ffprobe reads it
//! (codecs, frames, timestamps), the FLV header's audio/video flags match the
//! stream, and a stream that is not published is a 404.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn body(http_port: u16) -> String {
    format!(
        "{DEFAULT_CONFIG_BODY}
http_server {{ enabled on; listen 127.0.0.1:{http_port}; dir ./html; }}
vhost __defaultVhost__ {{ gop_cache on; queue_length 10; http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }} }}
"
    )
    // The default vhost block of DEFAULT_CONFIG_BODY is replaced by ours.
    .replacen("vhost __defaultVhost__ { gop_cache on; queue_length 10; }\n", "", 1)
}

/// Status code and the first `want` body bytes of a GET (HTTP/1.0: no chunking).
fn get_head(port: u16, path: &str, want: usize) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(n) = s.read(&mut chunk) else { break };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if buf.len() >= p + 4 + want {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| buf[p + 4..].to_vec())
        .unwrap_or_default();
    (code, body)
}

fn wait_live(http_port: u16, path: &str) {
    wait_for(Duration::from_secs(10), || {
        (get_head(http_port, path, 0).0 == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("{path} never became live"));
}

#[test]
fn ffmpeg_records_live_http_flv_with_right_codecs_frames_and_timestamps() {
    require_ffmpeg();
    let http_port = free_port();
    let server = Server::start_with("httpflv-av", &body(http_port));
    assert_eq!(
        get_head(http_port, "/live/test.flv", 0).0,
        404,
        "not published yet: 404"
    );
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/test"), "av");
    wait_live(http_port, "/live/test.flv");
    let url = format!("http://127.0.0.1:{http_port}/live/test.flv");
    let (mut player, out) = spawn_player(&server, &url, "http-av");
    publisher.expect_success(Duration::from_secs(30));
    // The body ends when the publisher leaves: ffmpeg finishes on its own.
    player.expect_success(Duration::from_secs(15));
    let got = flv_stats(&out);
    let want = fixture_stats(AVC_AAC);
    assert_same_stream("http-flv player", &got, &want);
    assert_probe_matches("http-flv player", &out, AVC_AAC);
}

#[test]
fn flv_header_flags_follow_the_stream() {
    require_ffmpeg();
    let http_port = free_port();
    let server = Server::start_with("httpflv-flags", &body(http_port));
    let _a = spawn_publisher(&server, AUDIO_AAC, &server.url("live/audio"), "audio");
    let _v = spawn_publisher(&server, VIDEO_ONLY, &server.url("live/video"), "video");
    wait_live(http_port, "/live/audio.flv");
    wait_live(http_port, "/live/video.flv");
    // Byte 4 of the FLV header: 0x04 audio, 0x01 video. A player that comes
    // before the first frame gets the configured flags (both), so poll until the
    // stream's first frames are in.
    let flags = |path: &str| {
        let (code, body) = get_head(http_port, path, 13);
        assert_eq!(code, 200, "{path}");
        assert_eq!(&body[..3], b"FLV", "{path}");
        body[4]
    };
    let audio = wait_for(Duration::from_secs(5), || {
        let f = flags("/live/audio.flv");
        (f != 0x05).then_some(f)
    });
    assert_eq!(audio, Some(0x04), "audio-only stream: has_audio only");
    let video = wait_for(Duration::from_secs(5), || {
        let f = flags("/live/video.flv");
        (f != 0x05).then_some(f)
    });
    assert_eq!(video, Some(0x01), "video-only stream: has_video only");
    // Another vhost's mount is not this one.
    assert_eq!(get_head(http_port, "/other/video.flv", 0).0, 404);
}
