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

/// Reads an HTTP/1.1 response to its end: (head, de-chunked body, whether the
/// body ended with the last chunk rather than a cut connection).
fn read_chunked(s: &mut TcpStream, timeout: Duration) -> (String, Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = &raw[split + 4..];
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (head, body, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16)
            .expect("a chunk size line");
        rest = &rest[eol + 2..];
        if size == 0 {
            return (head, body, rest == b"\r\n");
        }
        assert!(rest.len() >= size + 2, "chunk cut short");
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk not closed by CRLF");
        rest = &rest[size + 2..];
    }
}

/// Video and audio tags of an FLV body, checking its framing on the way.
fn count_tags(body: &[u8]) -> (usize, usize) {
    assert_eq!(&body[..3], b"FLV", "FLV header first");
    let mut reader = media::flv::FlvReader::new(media::flv::MAX_TAG_DATA_SIZE);
    let mut buf = bytes::BytesMut::from(body);
    let (mut video, mut audio) = (0, 0);
    while let Some(tag) = reader.next_tag(&mut buf).expect("well-formed FLV") {
        match tag.tag_type {
            9 => video += 1,
            8 => audio += 1,
            _ => {}
        }
    }
    assert!(
        buf.is_empty(),
        "{} bytes of a cut tag at the end",
        buf.len()
    );
    (video, audio)
}

#[test]
fn raw_players_get_whole_bodies_that_end_with_the_publish_and_can_be_kicked() {
    require_ffmpeg();
    let http_port = free_port();
    let api_port = free_port();
    let server = Server::start_with(
        "httpflv-raw",
        &format!(
            "{}http_api {{ enabled on; listen 127.0.0.1:{api_port}; }}\n",
            body(http_port)
        ),
    );
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/raw"), "raw");
    // Wait through the API, not with a GET of the mount: such a probe is an flv
    // player of its own for a moment, and the kick below must find only ours.
    wait_for(Duration::from_secs(10), || {
        let (_, body) = get_head(api_port, "/api/v1/streams", 0);
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v["streams"]
            .as_array()?
            .iter()
            .any(|st| st["name"] == "raw" && st["publish"]["active"] == true)
            .then_some(())
    })
    .expect("the stream is live");
    let connect = |version: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", http_port)).expect("connect");
        write!(
            s,
            "GET /live/raw.flv HTTP/{version}\r\nHost: 127.0.0.1:{http_port}\r\n\r\n"
        )
        .expect("send");
        s
    };
    // Kick a first player through the API: its body stops with the connection.
    let mut kicked = connect("1.1");
    let id = wait_for(Duration::from_secs(5), || {
        let (_, body) = get_head(api_port, "/api/v1/clients?count=100", 0);
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v["clients"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "flv-play")
            .cloned()
    })
    .expect("the flv player in /api/v1/clients");
    // SRS names an HTTP player's stream with its extension and gives the app's tcUrl.
    assert_eq!(id["name"], "raw.flv", "{id}");
    assert_eq!(id["tcUrl"], "http://127.0.0.1/live", "{id}");
    let id = id["id"].as_str().expect("client id").to_string();
    let mut s = TcpStream::connect(("127.0.0.1", api_port)).expect("api");
    write!(s, "DELETE /api/v1/clients/{id} HTTP/1.0\r\n\r\n").expect("send");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.0 200") && reply.contains("\"code\":0"),
        "{reply}"
    );
    let kicked_at = Instant::now();
    let (_, _, ended) = read_chunked(&mut kicked, Duration::from_secs(10));
    assert!(
        kicked_at.elapsed() < Duration::from_secs(8) && !ended,
        "a kicked player's connection is cut at once"
    );

    let mut chunked = connect("1.1");
    let mut plain = connect("1.0");
    // A play after another request on a kept-alive connection: served through
    // hyper, fed by the same delivery path through a pipe.
    let mut kept = TcpStream::connect(("127.0.0.1", http_port)).expect("connect");
    write!(
        kept,
        "GET /no-such-file.txt HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\n\r\n"
    )
    .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        kept.read_exact(&mut byte).expect("first response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(!head.contains("connection: close"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut first_body = vec![0u8; length];
    kept.read_exact(&mut first_body)
        .expect("first response body");
    write!(
        kept,
        "GET /live/raw.flv HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    publisher.expect_success(Duration::from_secs(30));
    let (head, body, ended) = read_chunked(&mut chunked, Duration::from_secs(15));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(
        ended,
        "the body ends with the last chunk when the publisher leaves"
    );
    let want = fixture_stats(AVC_AAC);
    let (video, audio) = count_tags(&body);
    assert!(
        at_least_percent(video, want.video_frames, 90),
        "video {video} of {}",
        want.video_frames
    );
    assert!(
        at_least_percent(audio, want.audio_frames, 90),
        "audio {audio} of {}",
        want.audio_frames
    );

    // HTTP/1.0: no chunking, the body runs until the server closes.
    plain.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut raw = Vec::new();
    plain
        .read_to_end(&mut raw)
        .expect("the body ends with a close");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(!String::from_utf8_lossy(&raw[..split])
        .to_ascii_lowercase()
        .contains("chunked"));
    assert_eq!(
        count_tags(&raw[split..]),
        (video, audio),
        "both players got the same stream"
    );
    let (head, body, ended) = read_chunked(&mut kept, Duration::from_secs(15));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(ended, "the kept-alive play's body ends with the publish");
    assert_eq!(
        count_tags(&body),
        (video, audio),
        "the player behind hyper got the same stream"
    );
}
