//! WebRTC with real peers: headless Chromium plays an RTMP-published stream by WHEP and
//! publishes its fake camera by WHIP (read back by ffprobe over RTMP and HTTP-FLV); hostile
//! input to the RTC port and to the WHIP/WHEP endpoints.
//!
//! Needs: chromium, node and npm (`apt-get install chromium nodejs npm`), ffmpeg; the npm
//! packages pinned in tests/web/package-lock.json are installed with `npm ci` when missing.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rtc::*;
use common::*;

/// One browser test at a time, machine-wide (tests in other binaries and processes too):
/// each runs Chromium (ten decoders in one of them) and some an x264 encoder; two at once
/// on a small machine starve each other of CPU and the frame rates they check fall.
fn serial() -> common::browser::BrowserSlot {
    common::browser::browser_slot()
}

struct RtcServer {
    server: Server,
    api: u16,
    http: u16,
    udp: u16,
}

/// The API's base URL, as the browser driver takes it.
fn api_base(api: u16) -> String {
    format!("http://127.0.0.1:{api}")
}

fn start(tag: &str, vhost_rtc: &str) -> RtcServer {
    start_with(tag, vhost_rtc, "")
}

fn start_with(tag: &str, vhost_rtc: &str, rtc_server: &str) -> RtcServer {
    let api = free_port();
    let http = free_port();
    let udp = free_udp_port();
    let body = format!(
        "max_connections 200;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir ./html; }}
rtc_server {{ enabled on; listen {udp}; candidate 127.0.0.1; {rtc_server} }}
vhost __defaultVhost__ {{
    gop_cache on;
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
    rtc {{ {vhost_rtc} }}
}}
"
    );
    let server = Server::start_with(tag, &body);
    wait_rtc_listening(&server);
    RtcServer {
        server,
        api,
        http,
        udp,
    }
}

/// Publishes the fixture over RTMP, looped. The fixture has B frames (x264's defaults),
/// which Chromium cannot decode over WebRTC, so sluice leaves them out for WebRTC players;
/// `without_b_frames` re-encodes the video with `-bf 0` (what an operator does for WebRTC
/// audiences) so that players get the source's whole frame rate.
fn publish_fixture_looped(s: &RtcServer, stream: &str, without_b_frames: bool) -> Proc {
    require_ffmpeg();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(fixture(AVC_AAC));
    if without_b_frames {
        cmd.args([
            "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "50",
        ])
        .args(["-c:a", "copy"]);
    } else {
        cmd.args(["-c", "copy"]);
    }
    cmd.args(["-f", "flv"])
        .arg(s.server.url(&format!("live/{stream}")));
    let p = Proc::spawn("ffmpeg publisher", cmd, s.server.tmp("publisher.log"));
    let live = wait_for(Duration::from_secs(15), || {
        s.server
            .log()
            .contains(&format!("stream=__defaultVhost__/live/{stream}"))
            .then_some(())
    });
    assert!(
        live.is_some(),
        "publisher did not start:\n{}",
        s.server.log()
    );
    // A GOP in the cache before the players come.
    std::thread::sleep(Duration::from_secs(2));
    p
}

fn assert_played(p: &serde_json::Value) {
    let fps = p["fps"].as_f64().unwrap_or(0.0);
    assert!(
        (fps - SOURCE_FPS).abs() <= SOURCE_FPS * 0.2,
        "decoded {fps:.1} frames/s, source has {SOURCE_FPS}: {p}"
    );
    assert_eq!(p["width"].as_u64(), Some(640), "{p}");
}

#[test]
fn chromium_plays_an_rtmp_stream_by_whep() {
    let _serial = serial();
    let s = start("rtc-whep", "enabled on; rtmp_to_rtc on;");
    let mut publisher = publish_fixture_looped(&s, "whep", true);
    let v = browser("play", &api_base(s.api), 20, "whep", 1);
    let p = &v["players"][0];
    assert_played(p);
    // AAC transcoded to Opus once for the stream: the browser receives Opus, 50 packets
    // a second (20 ms each). Headless Chromium has no audio output, so it plays out (and
    // counts as decoded samples) nothing: packets are what can be checked here.
    let packets = p["audioPackets"].as_u64().unwrap_or(0);
    assert!(packets > 500, "Opus packets received: {p}");
    assert!(
        p["audioCodec"].as_str().unwrap_or("").contains("111"),
        "the Opus payload type: {p}"
    );
    // The session shows in the API while it plays, and is gone after the DELETE.
    publisher.kill();
    let log = s.server.log();
    assert!(log.contains("rtc player connected"), "{log}");
    assert!(
        log.contains("deleted by its client (HTTP DELETE)"),
        "the DELETE ended the session:\n{log}"
    );
}

/// B frames: left out for WebRTC players (as SRS's `keep_bframe off`), said once in the
/// log; the I and P frames decode without errors (no keyframe request storm).
#[test]
fn b_frames_are_left_out_and_the_rest_decodes() {
    let _serial = serial();
    let s = start("rtc-whep-b", "enabled on; rtmp_to_rtc on;");
    let mut publisher = publish_fixture_looped(&s, "b", false);
    let v = browser("play", &api_base(s.api), 10, "b", 1);
    let p = &v["players"][0];
    let decoded = p["framesDecoded"].as_u64().unwrap_or(0);
    let received = p["framesReceived"].as_u64().unwrap_or(0);
    assert!(decoded > 20, "I and P frames decoded: {p}");
    assert!(decoded + 5 >= received, "what is sent decodes: {p}");
    assert!(
        p["pliCount"].as_u64().unwrap_or(99) <= 2,
        "no decoder errors: {p}"
    );
    publisher.kill();
    assert!(
        s.server.log().contains("the stream has B frames"),
        "{}",
        s.server.log()
    );
}

#[test]
fn ten_chromium_players_share_one_stream() {
    let _serial = serial();
    let s = start("rtc-whep-10", "enabled on; rtmp_to_rtc on;");
    let mut publisher = publish_fixture_looped(&s, "ten", true);
    // While they play: the stream's packet history, kept once for the ten of them.
    let api = s.api;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(metric(api, "sluice_rtc_packet_history_bytes"));
                std::thread::sleep(Duration::from_millis(500));
            }
            most
        })
    };
    let v = browser("play", &api_base(s.api), 20, "ten", 10);
    done.store(true, Ordering::Relaxed);
    let history = watcher.join().expect("metrics watcher");
    eprintln!("packet history: at most {history} bytes for the stream's ten players");
    let players = v["players"].as_array().expect("players");
    assert_eq!(players.len(), 10);
    for p in players {
        assert_played(p);
    }
    // The fixture's ~450 kb/s with a 2 s GOP: the current GOP and 3 s are ~300 KB. Ten
    // copies (one per player) would be well over 1 MB.
    assert!(
        (1..1_000_000).contains(&history),
        "the packet history held {history} bytes at most"
    );
    publisher.kill();
}

/// A value of `/metrics` (0 when missing).
fn metric(port: u16, name: &str) -> u64 {
    let prefix = format!("{name} ");
    http_get(port, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn chromium_publishes_by_whip_and_ffprobe_reads_rtmp_and_flv() {
    let _serial = serial();
    require_tool("ffprobe");
    let s = start("rtc-whip", "enabled on; rtc_to_rtmp on;");
    let api = s.api;
    let browser_thread =
        std::thread::spawn(move || browser("publish", &api_base(api), 20, "whip", 1));
    // While the browser publishes, read the stream back over RTMP and HTTP-FLV.
    let live = wait_for(Duration::from_secs(20), || {
        s.server
            .log()
            .contains("rtc publisher connected")
            .then_some(())
    });
    assert!(
        live.is_some(),
        "no WHIP publisher connected:\n{}",
        s.server.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    // The WebRTC publisher is a client of the API, with SRS's type, and its stream is live.
    let clients = http_get(s.api, "/api/v1/clients");
    assert!(clients.contains("\"type\":\"rtc-publish\""), "{clients}");
    let streams = http_get(s.api, "/api/v1/streams");
    assert!(streams.contains("\"name\":\"whip\""), "{streams}");
    let mut rates = Vec::new();
    for url in [
        s.server.url("live/whip"),
        format!("http://127.0.0.1:{}/live/whip.flv", s.http),
    ] {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rw_timeout",
                "10000000",
                "-read_intervals",
                "%+6",
            ])
            .args([
                "-select_streams",
                "v",
                "-show_entries",
                "stream=codec_name,width,height:packet=pts_time",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&url)
            .output()
            .expect("run ffprobe");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("h264"),
            "ffprobe of {url}: {text} {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.server.log()
        );
        let pts: Vec<f64> = text
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
            .collect();
        assert!(pts.len() > 30, "video packets over {url}: {text}");
        // Continuous: increasing, no gap over half a second.
        for w in pts.windows(2) {
            assert!(
                w[1] >= w[0] && w[1] - w[0] < 0.5,
                "timestamps of {url} jump: {w:?}"
            );
        }
        let span = pts[pts.len() - 1] - pts[0];
        rates.push((url, (pts.len() - 1) as f64 / span));
    }
    let v = browser_thread.join().expect("browser thread");
    let sent = v["framesSent"].as_f64().unwrap_or(0.0);
    assert!(sent > 100.0, "{v}");
    // The browser's rate over its 20 s (its first frames come after the connection).
    let browser_fps = sent / 20.0;
    for (url, fps) in rates {
        assert!(
            (fps - browser_fps).abs() <= browser_fps * 0.2 + 1.0,
            "{url}: {fps:.1} frames/s, the browser sent {browser_fps:.1}"
        );
    }
    let log = s.server.log();
    assert!(
        log.contains("close rtc publisher"),
        "the publisher's session ended:\n{log}"
    );
}

/// Chromium to sluice to Chromium: the fake camera published by WHIP plays by WHEP in a
/// second peer connection at the rate the publisher sends.
#[test]
fn chromium_to_whip_to_whep_to_chromium() {
    let _serial = serial();
    let s = start("rtc-relay", "enabled on; rtc_to_rtmp on;");
    let v = browser("relay", &api_base(s.api), 16, "relay", 1);
    let p = &v["players"][0];
    let sent = v["sentFps"].as_f64().unwrap_or(0.0);
    let fps = p["fps"].as_f64().unwrap_or(0.0);
    assert!(sent > 5.0, "the publisher sent: {v}");
    assert!(
        (fps - sent).abs() <= sent * 0.2,
        "decoded {fps:.1} frames/s of the {sent:.1} sent: {v}"
    );
    assert_eq!(p["width"].as_u64(), Some(640), "{p}");
}

/// The server's own pages: /players/whip.html publishes the camera, /players/whep.html
/// plays it and shows its stats.
#[test]
fn the_whip_and_whep_pages_publish_and_play() {
    let _serial = serial();
    let s = start("rtc-pages", "enabled on;");
    let bases = format!("http://127.0.0.1:{}|http://127.0.0.1:{}", s.api, s.http);
    let v = browser("pages", &bases, 8, "page", 1);
    let whep = v["whepStats"].as_str().unwrap_or("");
    let decoded: u64 = whep
        .split("decoded ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(decoded > 50, "the WHEP page decoded {decoded} frames: {v}");
    assert!(
        v["whipState"].as_str().unwrap_or("").contains("connected"),
        "{v}"
    );
    let log = s.server.log();
    assert!(log.contains("close rtc player"), "{log}");
}

/// The body of `GET path` on the API.
fn http_get(port: u16, path: &str) -> String {
    common::http::get(port, path).text()
}

#[test]
fn hostile_input_is_refused_and_the_stream_plays_on() {
    let _serial = serial();
    // A small handshake bound, so that this test reaches it at a debug build's speed.
    let s = start_with(
        "rtc-hostile",
        "enabled on; rtmp_to_rtc on;",
        "max_handshakes 32;",
    );
    let mut publisher = publish_fixture_looped(&s, "h", true);
    let whep = "/rtc/v1/whep/?app=live&stream=h";

    // Malformed and huge SDP.
    let r = http_post_sdp(s.api, whep, b"this is not sdp");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let huge = vec![b'a'; 200 * 1024];
    let r = http_post_sdp(s.api, whep, &huge);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Unknown app/stream names out of bounds.
    let long = "x".repeat(5000);
    let r = http_post_sdp(
        s.api,
        &format!("/rtc/v1/whep/?app=live&stream={long}"),
        h264_offer("u1", "recvonly").as_bytes(),
    );
    assert!(
        r.starts_with("HTTP/1.1 400")
            || r.starts_with("HTTP/1.1 414")
            || r.starts_with("HTTP/1.1 431"),
        "{r}"
    );

    // A valid offer is answered.
    let r = http_post_sdp(s.api, whep, h264_offer("good", "recvonly").as_bytes());
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    assert!(r.contains("a=ice-lite"), "{r}");
    assert!(
        r.contains(&format!("127.0.0.1 {}", s.udp)),
        "the candidate: {r}"
    );

    // Many offers never followed by ICE: refused past the handshake bound, all cleaned up.
    // Sent from 8 threads at once, so that more than the bound (32) are in flight before
    // the first ones time out, however slow the machine.
    let (created, refused) = offer_flood(s.api, 20, |t, i| {
        (
            "/rtc/v1/whep/?app=live&stream=h".to_string(),
            h264_offer(&format!("n{t}x{i}"), "recvonly"),
        )
    });
    assert!(
        created > 0 && refused > 0,
        "created {created}, refused {refused}"
    );

    // Random datagrams, STUN with an unknown ufrag, DTLS-looking garbage.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let target = ("127.0.0.1", s.udp);
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for i in 0..5000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 1400) as usize + 1;
        let mut d: Vec<u8> = (0..len).map(|k| (seed >> (k % 56)) as u8).collect();
        match i % 3 {
            0 => {
                // STUN binding request naming an unknown ufrag.
                d = vec![0, 1, 0, 16, 0x21, 0x12, 0xa4, 0x42];
                d.extend_from_slice(&[7; 12]);
                d.extend_from_slice(&[0, 6, 0, 9]);
                d.extend_from_slice(b"nope:peer\0\0\0");
            }
            1 => d[0] = 22, // a DTLS record's first byte
            _ => {}
        }
        let _ = sock.send_to(&d, target);
    }
    // The handshakes that never came are dropped after their time-out.
    let cleaned = wait_for(Duration::from_secs(30), || {
        s.server
            .log()
            .matches("no ICE and DTLS handshake within")
            .count()
            .ge(&created)
            .then_some(())
    });
    assert!(cleaned.is_some(), "pending sessions were not dropped");

    // The server still serves the stream: a real player plays it.
    let v = browser("play", &api_base(s.api), 10, "h", 1);
    assert_played(&v["players"][0]);
    // What was dropped and refused shows in /metrics.
    let dropped = metric(s.api, "sluice_rtc_datagrams_dropped_total");
    let m = http_get(s.api, "/metrics");
    assert!(dropped >= 1000, "dropped datagrams counted: {m}");
    assert!(m.contains("sluice_rtc_offers_refused_total"), "{m}");
    let mut server = s.server;
    assert!(server.is_alive(), "the server died");
    publisher.kill();
}

/// `rtc_server`'s UDP port is bound at start with the TCP listeners: when another
/// process holds it, the server refuses to start and says which port, as for a busy RTMP
/// port, instead of running without the WebRTC its config asks for.
#[test]
fn a_busy_rtc_port_refuses_the_start() {
    let taken = UdpSocket::bind("0.0.0.0:0").expect("udp");
    let udp = taken.local_addr().expect("addr").port();
    let dir = unique_dir("rtc-busy");
    let conf = dir.join("sluice.conf");
    std::fs::write(
        &conf,
        format!(
            "listen 127.0.0.1:{};\ndaemon off;\nsrs_log_tank console;\n\
             rtc_server {{ enabled on; listen {udp}; candidate 127.0.0.1; }}\n\
             vhost __defaultVhost__ {{ rtc {{ enabled on; }} }}\n",
            free_port()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(&conf)
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let exited = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("sluice started although rtc_server's port {udp} is taken");
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("rtc_server: cannot listen on udp port {udp}")),
        "the reason names the port: {text}"
    );
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}
