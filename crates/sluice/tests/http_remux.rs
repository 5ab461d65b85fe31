//! SRS's other `http_remux` formats, read by ffmpeg from a live RTMP publish: `.ts`
//! (MPEG-TS, muxed once per stream), `.aac` (ADTS, audio only) and `.mp3` (raw MP3
//! frames): every frame, continuous timestamps, the audio-only and video-only cases, an
//! `.mp3` mount of an AAC stream refused, and the players in the API as SRS names them.
//! (HEVC over `.ts` is in tests/srt.rs: ffmpeg 5 publishes HEVC over SRT, not RTMP.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One vhost per format: a vhost has one `http_remux` mount, as in SRS.
fn body(http_port: u16, api_port: u16) -> String {
    format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api_port}; }}
http_server {{ enabled on; listen 127.0.0.1:{http_port}; dir ./html; }}
vhost __defaultVhost__ {{ gop_cache on; queue_length 10; http_remux {{ enabled on; mount [vhost]/[app]/[stream].ts; }} }}
vhost v1.test {{ gop_cache on; queue_length 10; http_remux {{ enabled on; mount [vhost]/[app]/[stream].aac; }} }}
vhost v2.test {{ gop_cache on; queue_length 10; http_remux {{ enabled on; mount [vhost]/[app]/[stream].mp3; }} }}
"
    )
}

/// Status code and content type of a GET, and the first body bytes (HTTP/1.0).
fn get_head(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ctype = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Content-Type: ")
                .or(l.strip_prefix("content-type: "))
        })
        .unwrap_or("")
        .to_string();
    (code, ctype)
}

fn wait_live(http_port: u16, path: &str) -> String {
    wait_for(Duration::from_secs(10), || {
        let (code, ctype) = get_head(http_port, path);
        (code == 200).then_some(ctype)
    })
    .unwrap_or_else(|| panic!("{path} never became live"))
}

/// `ffmpeg -i URL -c copy -f FORMAT OUT`: ffmpeg reads the live URL to its end.
fn read_url(server: &Server, url: &str, format: &str, tag: &str) -> (Proc, PathBuf) {
    let out = server.tmp(&format!("reader-{tag}.{format}"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i", url])
        .args(["-c", "copy", "-f", format, "-y"])
        .arg(&out);
    let proc = Proc::spawn(
        &format!("ffmpeg reader {tag}"),
        cmd,
        server.tmp(&format!("reader-{tag}.log")),
    );
    (proc, out)
}

/// Per stream of `file` (by codec type): packets' DTS in order, as ffprobe reads them.
fn packet_times(file: &Path) -> Vec<(String, Vec<f64>)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,dts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}", file.display());
    let mut streams: Vec<(String, Vec<f64>)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split(',');
        let (Some(kind), Some(t)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(t) = t.trim().parse::<f64>() else {
            continue;
        };
        match streams.iter_mut().find(|(k, _)| k == kind) {
            Some((_, v)) => v.push(t),
            None => streams.push((kind.to_string(), vec![t])),
        }
    }
    streams
}

/// No frame missing from where the player joined: per stream, timestamps that never go
/// back and no hole of a frame or more (at most 1.6 times the stream's median frame
/// interval), over at least `min_span` seconds.
fn assert_no_frame_missing(label: &str, file: &Path, min_span: f64) {
    let streams = packet_times(file);
    assert!(
        !streams.is_empty(),
        "{label}: no packets in {}",
        file.display()
    );
    for (kind, times) in &streams {
        let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_by(f64::total_cmp);
        let median = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
        for w in times.windows(2) {
            assert!(
                w[1] >= w[0] && w[1] - w[0] <= median * 1.6 + 0.002,
                "{label}: {kind} timestamps jump from {} to {} (frames every {median:.3} s)",
                w[0],
                w[1]
            );
        }
        let span = times.last().unwrap_or(&0.0) - times.first().unwrap_or(&0.0);
        assert!(span >= min_span, "{label}: {kind} spans {span:.3} s only");
    }
}

/// ffprobe's decoded frames of `codec_type` in `file`.
fn frames(file: &Path, codec_type: &str) -> u64 {
    ffprobe(file)
        .iter()
        .filter(|s| s.codec_type == codec_type)
        .map(|s| s.frames.unwrap_or(0))
        .sum()
}

/// The fixtures' GOP: a keyframe every 50 frames (2 s at 25 fps).
const GOP_FRAMES: usize = 50;

/// A player gets the stream from the keyframe before it joined (the GOP cache) to the
/// end of the publish: every video frame from that keyframe on, so the fixture's count
/// less whole GOPs (the test's players join within the first few seconds), and audio
/// with no frame missing over the same time.
fn assert_every_frame(label: &str, file: &Path, fixture_name: &str) {
    let want = fixture_stats(fixture_name);
    if want.video_frames > 0 {
        let got = frames(file, "video") as usize;
        assert!(
            got <= want.video_frames
                && got + 3 * GOP_FRAMES >= want.video_frames
                && (want.video_frames - got).is_multiple_of(GOP_FRAMES),
            "{label}: {got} video frames: not the fixture's {} from one of its keyframes on",
            want.video_frames
        );
    }
    if want.audio_frames > 0 {
        let got = frames(file, "audio") as usize;
        assert!(
            got <= want.audio_frames && got * 2 >= want.audio_frames,
            "{label}: {got} audio frames of {}",
            want.audio_frames
        );
    }
    assert_no_frame_missing(label, file, 3.5);
}

#[test]
fn ts_aac_and_mp3_mounts_play_every_frame() {
    require_ffmpeg();
    let (http_port, api_port) = (free_port(), free_port());
    let server = Server::start_with("remux-formats", &body(http_port, api_port));
    assert_eq!(get_head(http_port, "/live/av.ts").0, 404, "not live yet");
    let mut publishers = [
        spawn_publisher(&server, AVC_AAC, &server.url("live/av"), "av"),
        spawn_publisher(&server, VIDEO_ONLY, &server.url("live/video"), "video"),
        spawn_publisher(&server, AUDIO_AAC, &server.url("live/audio"), "audio"),
        spawn_publisher(
            &server,
            AUDIO_AAC,
            &server.url("live?vhost=v1.test/audio"),
            "aac",
        ),
        spawn_publisher(
            &server,
            AUDIO_MP3,
            &server.url("live?vhost=v2.test/mp3"),
            "mp3",
        ),
    ];
    let url = |path: &str| format!("http://127.0.0.1:{http_port}{path}");
    let cases = [
        ("/live/av.ts", "video/MP2T", "mpegts", AVC_AAC),
        ("/live/video.ts", "video/MP2T", "mpegts", VIDEO_ONLY),
        ("/live/audio.ts", "video/MP2T", "mpegts", AUDIO_AAC),
        ("/v1.test/live/audio.aac", "audio/x-aac", "adts", AUDIO_AAC),
        ("/v2.test/live/mp3.mp3", "audio/mpeg", "mp3", AUDIO_MP3),
    ];
    let mut readers = Vec::new();
    for (path, ctype, format, fixture_name) in cases {
        assert_eq!(wait_live(http_port, path), ctype, "{path}");
        let tag = format!("{format}-{}", fixture_name.split('-').next().unwrap_or(""));
        readers.push((
            path,
            read_url(&server, &url(path), format, &tag),
            fixture_name,
        ));
    }
    // The players as SRS names them: `STREAM.EXT`, the tcUrl of the app, `flv-play`.
    let clients: serde_json::Value = wait_for(Duration::from_secs(5), || {
        let mut s = TcpStream::connect(("127.0.0.1", api_port)).ok()?;
        write!(s, "GET /api/v1/clients?count=100 HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let v: serde_json::Value = serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()?;
        let names: Vec<&str> = v["clients"]
            .as_array()?
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        (names.contains(&"av.ts") && names.contains(&"mp3.mp3") && names.contains(&"audio.aac"))
            .then_some(v)
    })
    .expect("the HTTP players in /api/v1/clients");
    let ts = clients["clients"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "av.ts").cloned())
        .expect("av.ts");
    assert_eq!(ts["type"], "flv-play");
    assert_eq!(ts["tcUrl"], "http://127.0.0.1/live");
    for p in &mut publishers {
        p.expect_success(Duration::from_secs(30));
    }
    for (path, (mut reader, out), fixture_name) in readers {
        // The body ends with the publish: ffmpeg finishes on its own.
        reader.expect_success(Duration::from_secs(15));
        assert_every_frame(path, &out, fixture_name);
    }
    // The audio-only formats carry no video, whatever the stream has.
    let (mut only_audio, out) = {
        let mut p = spawn_publisher(
            &server,
            AVC_AAC,
            &server.url("live?vhost=v1.test/av"),
            "av-aac",
        );
        wait_live(http_port, "/v1.test/live/av.aac");
        let r = read_url(&server, &url("/v1.test/live/av.aac"), "adts", "av-aac");
        p.expect_success(Duration::from_secs(30));
        r
    };
    only_audio.expect_success(Duration::from_secs(15));
    let probed = ffprobe(&out);
    assert_eq!(probed.len(), 1, "{probed:?}");
    assert_eq!(probed[0].codec_name, "aac");
}

#[test]
fn an_mp3_mount_of_an_aac_stream_is_refused() {
    require_ffmpeg();
    let (http_port, api_port) = (free_port(), free_port());
    let server = Server::start_with("remux-mismatch", &body(http_port, api_port));
    let mut publisher = spawn_publisher_args(
        &server,
        AUDIO_AAC,
        &server.url("live?vhost=v2.test/aac"),
        "aac",
        &["-t", "4"],
    );
    // Once the stream's codec is known the answer is a 404 that says why; before it
    // (a player racing the first frame), the body ends at the first AAC frame.
    let code = wait_for(Duration::from_secs(10), || {
        let (code, _) = get_head(http_port, "/v2.test/live/aac.mp3");
        (code == 404 && server.log().contains("serve MP3 audio only")).then_some(code)
    });
    assert_eq!(code, Some(404), "log:\n{}", server.log());
    publisher.expect_success(Duration::from_secs(20));
}

/// A minimal hook server: answers `0` to every POST and keeps the JSON bodies.
fn hook_server() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind hook server");
    let port = l.local_addr().expect("addr").port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = bodies.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len.min(1 << 20)];
            if r.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    b.lock().expect("hook bodies").push(v);
                }
            }
            let mut s = r.into_inner();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0");
        }
    });
    (port, bodies)
}

/// `.ts`, `.aac` and `.mp3` players go through HTTP-FLV's admission: `on_play` with the
/// stream, its query as `param` and the URL as tcUrl, `on_stop` when they leave, and a
/// `security` deny rule refuses them (403).
#[test]
fn remux_players_get_hooks_and_rules() {
    require_ffmpeg();
    let (http_port, api_port) = (free_port(), free_port());
    let (hook_port, bodies) = hook_server();
    let conf = body(http_port, api_port).replace(
        "vhost v2.test { gop_cache on;",
        &format!(
            "vhost v2.test {{ gop_cache on; security {{ enabled on; deny play 127.0.0.2; allow play all; allow publish all; }} \
             http_hooks {{ enabled on; on_play http://127.0.0.1:{hook_port}/p; on_stop http://127.0.0.1:{hook_port}/s; }}"
        ),
    );
    let server = Server::start_with("remux-hooks", &conf);
    let mut publisher = spawn_publisher_args(
        &server,
        AUDIO_MP3,
        &server.url("live?vhost=v2.test/mp3"),
        "mp3",
        &["-t", "4"],
    );
    wait_live(http_port, "/v2.test/live/mp3.mp3?token=abc");
    let got = wait_for(Duration::from_secs(10), || {
        let b = bodies.lock().expect("hook bodies").clone();
        let play = b
            .iter()
            .find(|v| v["action"] == "on_play" && v["param"] == "?token=abc")?;
        let stop = b
            .iter()
            .find(|v| v["action"] == "on_stop" && v["param"] == "?token=abc")?;
        Some((play.clone(), stop.clone()))
    });
    let (play, stop) =
        got.unwrap_or_else(|| panic!("hooks: {:?}", bodies.lock().map(|b| b.clone())));
    for v in [&play, &stop] {
        assert_eq!(v["vhost"], "v2.test", "{v}");
        assert_eq!(v["app"], "live", "{v}");
        assert_eq!(v["stream"], "mp3", "{v}");
    }
    // The deny rule: a player from 127.0.0.2 is refused before on_play.
    let mut s = socket_from(std::net::Ipv4Addr::new(127, 0, 0, 2), http_port);
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET /v2.test/live/mp3.mp3 HTTP/1.0\r\n\r\n").expect("send");
    let mut head = [0u8; 12];
    s.read_exact(&mut head).expect("answer");
    assert_eq!(&head, b"HTTP/1.1 403", "denied by the security rule");
    publisher.expect_success(Duration::from_secs(20));
}

/// A TCP connection from `from` (a loopback address other than 127.0.0.1).
fn socket_from(from: std::net::Ipv4Addr, port: u16) -> TcpStream {
    tcp_connect_from(from, port).expect("connect from another loopback address")
}
