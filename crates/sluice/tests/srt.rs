//! SRT end to end, with real libsrt clients: ffmpeg (Debian's is built with libsrt) and
//! srt-live-transmit publish MPEG-TS over SRT; RTMP, HTTP-FLV, HLS and SRT players get it.
//! Stream ids in SRS's forms, hooks, security rules, the API, passphrases, hostile UDP.

mod common;

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::hook_server::HookServer;
use common::*;

const FIXTURE: &str = "avc-aac-640x360-10s.flv";
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A sluice with SRT on, an HTTP server (HTTP-FLV, HLS files) and the API.
struct Srt {
    server: Server,
    srt: u16,
    http: u16,
    api: u16,
    hls: PathBuf,
}

impl Srt {
    fn start(tag: &str) -> Srt {
        Srt::start_with(tag, "", "")
    }

    /// `srt_server` gets `srt_extra`; the config gets `extra` at the end (more vhosts).
    fn start_with(tag: &str, srt_extra: &str, extra: &str) -> Srt {
        Srt::start_on(tag, "127.0.0.1", srt_extra, extra)
    }

    fn start_on(tag: &str, ip: &str, srt_extra: &str, extra: &str) -> Srt {
        require_ffmpeg();
        let srt = free_udp_port();
        let http = free_port();
        let api = free_port();
        let hls = unique_dir(&format!("{tag}-hls"));
        // `hls_dispose 0`: a publisher that leaves ends its playlist (#EXT-X-ENDLIST), so
        // ffprobe reads it to the end at once. With SRS's default (120 s) the playlist stays
        // live for a republish, and ffprobe waited for the disposal (two minutes a test).
        let body = format!(
            "max_connections 100;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {hls}; }}
srt_server {{ enabled on; listen {ip}:{srt}; {srt_extra} }}
vhost __defaultVhost__ {{
    gop_cache on; queue_length 10;
    srt {{ enabled on; srt_to_rtmp on; }}
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
    hls {{ enabled on; hls_path {hls}; hls_fragment 2; hls_window 30; hls_dispose 0; }}
}}
{extra}
",
            hls = hls.display()
        );
        let server = Server::start_with(tag, &body);
        Srt {
            server,
            srt,
            http,
            api,
            hls,
        }
    }

    fn url(&self, sid: &str) -> String {
        format!("srt://127.0.0.1:{}?streamid={sid}", self.srt)
    }

    /// `ffmpeg -re -i FIXTURE -c copy -f mpegts srt://...&linger=3`: without `linger`,
    /// libsrt's live mode drops what the encoder has not sent yet when it closes (its
    /// last third of a second).
    fn publish(&self, fixture_name: &str, url: &str, tag: &str) -> Proc {
        let input = fixture(fixture_name);
        let url = &if url.contains('?') {
            format!("{url}&linger=3")
        } else {
            format!("{url}?linger=3")
        };
        Proc::spawn(
            &format!("ffmpeg SRT publisher {tag}"),
            ffmpeg_cmd(&[
                "-re",
                "-i",
                input.to_str().expect("utf-8 path"),
                "-c",
                "copy",
                "-f",
                "mpegts",
                url,
            ]),
            self.server.tmp(&format!("srt-publisher-{tag}.log")),
        )
    }

    /// `ffmpeg -i srt://... -c copy -f mpegts OUT.ts`.
    fn play(&self, url: &str, tag: &str) -> (Proc, PathBuf) {
        let out = self.server.tmp(&format!("srt-player-{tag}.ts"));
        let proc = Proc::spawn(
            &format!("ffmpeg SRT player {tag}"),
            ffmpeg_cmd(&[
                "-i",
                url,
                "-c",
                "copy",
                "-f",
                "mpegts",
                "-y",
                out.to_str().expect("utf-8 path"),
            ]),
            self.server.tmp(&format!("srt-player-{tag}.log")),
        );
        (proc, out)
    }

    fn api_json(&self, path: &str) -> serde_json::Value {
        let body = http_body(self.api, path).unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// Whether the API lists `stream` with an active publisher.
    fn publishing(&self, stream: &str) -> bool {
        let v = self.api_json("/api/v1/streams?count=100");
        v["streams"].as_array().is_some_and(|list| {
            list.iter()
                .any(|s| s["name"] == stream && s["publish"]["active"] == true)
        })
    }

    fn wait_publishing(&self, stream: &str) {
        assert!(
            wait_for(Duration::from_secs(10), || self
                .publishing(stream)
                .then_some(()))
            .is_some(),
            "{stream} never published over SRT; log:\n{}",
            self.server.log()
        );
    }

    /// Waits until the server's log has `needle`.
    fn wait_log(&self, needle: &str) {
        assert!(
            wait_for(Duration::from_secs(10), || self
                .server
                .log()
                .contains(needle)
                .then_some(()))
            .is_some(),
            "no log line with {needle:?}; log:\n{}",
            self.server.log()
        );
    }
}

fn ffmpeg_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"]);
    cmd.args(args);
    cmd
}

fn free_udp_port() -> u16 {
    // A port free for both UDP (SRT) and TCP (the harness's retry picks TCP ones).
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A plain HTTP/1.0 GET: the body.
fn http_body(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr(port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Frames per stream of a TS (or any) file by ffprobe: (codec name, frames), in stream order.
fn probe_frames(target: &str) -> Vec<(String, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            // A playlist without its end (still live) would be read from its last segments.
            "-live_start_index",
            "0",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "json",
            target,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| {
                    (
                        s["codec_name"].as_str().unwrap_or_default().to_string(),
                        s["nb_read_frames"]
                            .as_str()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn frames_of(probed: &[(String, u64)], codec: &str) -> u64 {
    probed
        .iter()
        .filter(|(c, _)| c == codec)
        .map(|(_, n)| *n)
        .sum()
}

/// Whether the first video frame ffprobe decodes from `path` is a keyframe.
fn first_video_frame_is_key(path: &Path) -> bool {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).lines().next() == Some("1")
}

/// An RTMP player's recording compared with the fixture: every frame, the same codecs,
/// timestamps that never go back and span what the fixture spans.
fn assert_every_frame(label: &str, got: &FlvStats, want: &FlvStats) {
    assert_same_stream(label, got, want);
    assert_eq!(
        (got.video_frames, got.audio_frames),
        (want.video_frames, want.audio_frames),
        "{label}: every frame the encoder sent; got {got:#?}"
    );
    let span =
        |s: &FlvStats| i64::from(s.last_ts.unwrap_or(0)) - i64::from(s.first_ts.unwrap_or(0));
    assert!(
        (span(got) - span(want)).abs() <= 50,
        "{label}: timestamps span {} ms, the fixture {} ms (not continuous)",
        span(got),
        span(want)
    );
}

/// ffmpeg publishes the fixture over SRT in SRS's stream id form; RTMP and HTTP-FLV
/// players get every frame with continuous timestamps, HLS has H.264 and AAC, and the
/// API and /metrics show the SRT publisher.
#[test]
fn ffmpeg_publishes_over_srt_to_rtmp_flv_and_hls() {
    let s = Srt::start("srt-publish");
    let want = fixture_stats(FIXTURE);
    // Waiting before the publish starts: they get it from its first frame.
    let (mut rtmp, rtmp_out) = spawn_player(&s.server, &s.server.url("live/livestream"), "rtmp");
    thread::sleep(Duration::from_millis(500));
    let mut publisher = s.publish(FIXTURE, &s.url("#!::r=live/livestream,m=publish"), "main");
    s.wait_publishing("livestream");
    // HTTP-FLV joins now, within the first GOP (2 s): it starts on the first keyframe.
    let flv_out = s.server.tmp("http.flv");
    let mut flv = Proc::spawn(
        "curl HTTP-FLV",
        {
            let mut c = Command::new("curl");
            c.args(["-s", "-N", "--max-time", "30", "-o"])
                .arg(&flv_out)
                .arg(format!("http://127.0.0.1:{}/live/livestream.flv", s.http));
            c
        },
        s.server.tmp("curl.log"),
    );
    // The API and metrics while it publishes.
    let clients = s.api_json("/api/v1/clients?count=100");
    let publisher_entry = clients["clients"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == "srt-publish").cloned())
        .unwrap_or_else(|| panic!("no srt-publish client in {clients}"));
    assert_eq!(publisher_entry["publish"], true, "{publisher_entry}");
    assert_eq!(publisher_entry["name"], "livestream", "{publisher_entry}");
    let metrics = http_body(s.api, "/metrics").unwrap_or_default();
    assert!(
        metrics.contains("sluice_srt_connections"),
        "no SRT gauge in /metrics:\n{metrics}"
    );

    publisher.expect_success(PUBLISH_TIMEOUT);
    thread::sleep(Duration::from_secs(2));
    rtmp.kill();
    flv.kill();
    assert_every_frame("RTMP player", &flv_stats(&rtmp_out), &want);
    let flv_got = flv_stats(&flv_out);
    assert_same_stream("HTTP-FLV player", &flv_got, &want);
    assert_eq!(
        flv_got.video_frames, want.video_frames,
        "HTTP-FLV: {flv_got:#?}"
    );

    let playlist = s.hls.join("live/livestream.m3u8");
    let probed = probe_frames(playlist.to_str().expect("utf-8 path"));
    assert!(
        frames_of(&probed, "h264") >= want.video_frames as u64 * 9 / 10
            && frames_of(&probed, "aac") >= want.audio_frames as u64 * 9 / 10,
        "HLS from the SRT publish: {probed:?}"
    );
    s.wait_log("close srt publisher");
}

/// ffmpeg plays over SRT (`m=request`): one player waiting from before the publish gets
/// every frame; one joining mid-stream starts on a keyframe.
#[test]
fn ffmpeg_plays_over_srt() {
    let s = Srt::start("srt-play");
    let want = fixture_stats(FIXTURE);
    let (mut early, early_out) = s.play(&s.url("#!::r=live/p,m=request"), "early");
    thread::sleep(Duration::from_secs(1));
    let mut publisher = s.publish(FIXTURE, &s.url("#!::r=live/p,m=publish"), "p");
    s.wait_publishing("p");
    thread::sleep(Duration::from_secs(3));
    let (mut late, late_out) = s.play(&s.url("live/p?m=request"), "late");
    publisher.expect_success(PUBLISH_TIMEOUT);
    thread::sleep(Duration::from_secs(2));
    early.kill();
    late.kill();
    let probed = probe_frames(early_out.to_str().expect("utf-8 path"));
    let (v, a) = (frames_of(&probed, "h264"), frames_of(&probed, "aac"));
    assert!(
        v >= want.video_frames as u64 * 95 / 100 && a >= want.audio_frames as u64 * 95 / 100,
        "SRT player from the start: {probed:?}, published {} video and {} audio frames",
        want.video_frames,
        want.audio_frames
    );
    assert!(
        first_video_frame_is_key(&late_out),
        "a player joining mid-stream starts on a keyframe"
    );
    let late_probed = probe_frames(late_out.to_str().expect("utf-8 path"));
    assert!(frames_of(&late_probed, "h264") > 0, "{late_probed:?}");
    let log = s.server.log();
    assert!(log.contains("srt play ip="), "{log}");
}

/// A hook server answering 0, or an error for streams whose name starts with "denied".
fn deny_denied_streams() -> HookServer {
    HookServer::with_policy(|v| {
        let action = v["action"].as_str().unwrap_or_default();
        let stream = v["stream"].as_str().unwrap_or_default();
        if stream.starts_with("denied") && (action == "on_publish" || action == "on_play") {
            "1"
        } else {
            "0"
        }
    })
}

/// Hooks see SRT clients as RTMP ones (the stream id's extra keys as the query), deny an
/// SRT publisher and an SRT player; security rules refuse; bad stream ids are refused at
/// the handshake with a log line that says why.
#[test]
fn hooks_rules_and_stream_ids() {
    let hook = deny_denied_streams();
    let h = format!("http://127.0.0.1:{}/hook", hook.port);
    let hooks = format!(
        "http_hooks {{ enabled on; on_connect {h}; on_close {h}; on_publish {h}; \
         on_unpublish {h}; on_play {h}; on_stop {h}; }}"
    );
    let extra = format!(
        "vhost hooked.test {{ srt {{ enabled on; }} {hooks} }}
vhost closed.test {{ srt {{ enabled on; }} security {{ enabled on; deny publish all; allow play all; }} }}
vhost nosrt.test {{ }}"
    );
    // Killed clients send SRT nothing more: they are found gone after peer_idle_timeout.
    let s = Srt::start_with("srt-hooks", "peer_idle_timeout 2000;", &extra);

    // Allowed, with a token in the stream id: the hooks carry it as the RTMP query.
    let mut ok = s.publish(
        "audio-only-aac-10s.flv",
        &s.url("#!::h=hooked.test,r=live/ok,m=publish,token=abc"),
        "ok",
    );
    s.wait_publishing("ok");
    let (mut player, _) = s.play(&s.url("#!::h=hooked.test,r=live/ok,m=request"), "ok");
    assert!(
        wait_for(Duration::from_secs(10), || (!hook
            .bodies("on_play")
            .is_empty())
        .then_some(()))
        .is_some(),
        "no on_play for the SRT player"
    );
    player.kill();
    ok.kill();
    assert!(
        wait_for(Duration::from_secs(10), || (!hook
            .bodies("on_unpublish")
            .is_empty()
            && !hook.bodies("on_stop").is_empty())
        .then_some(()))
        .is_some(),
        "on_unpublish and on_stop after the SRT clients left: {:?}",
        hook.bodies("on_publish")
    );
    let publish = hook.bodies("on_publish").remove(0);
    assert_eq!(publish["vhost"], "hooked.test", "{publish}");
    assert_eq!(publish["app"], "live", "{publish}");
    assert_eq!(publish["stream"], "ok", "{publish}");
    assert_eq!(publish["param"], "?token=abc", "{publish}");
    assert!(!hook.bodies("on_connect").is_empty());

    // Denied by the hook: publisher and player.
    let mut denied = s.publish(
        FIXTURE,
        &s.url("#!::h=hooked.test,r=live/denied,m=publish"),
        "denied",
    );
    s.wait_log("publish refused: denied by the on_publish hook");
    assert!(
        denied.wait_timeout(Duration::from_secs(15)).is_some(),
        "a refused SRT publisher is disconnected"
    );
    assert!(!s.publishing("denied"));
    let (mut denied_player, _) = s.play(
        &s.url("#!::h=hooked.test,r=live/denied-play,m=request"),
        "denied",
    );
    s.wait_log("request refused: denied by the on_play hook");
    assert!(denied_player
        .wait_timeout(Duration::from_secs(15))
        .is_some());

    // Security rules.
    let mut refused = s.publish(
        FIXTURE,
        &s.url("#!::h=closed.test,r=live/x,m=publish"),
        "sec",
    );
    s.wait_log("publish refused:");
    assert!(refused.wait_timeout(Duration::from_secs(15)).is_some());
    // A vhost without srt { enabled on; }.
    let mut off = s.publish(
        FIXTURE,
        &s.url("#!::h=nosrt.test,r=live/x,m=publish"),
        "off",
    );
    s.wait_log("SRT is not enabled on vhost nosrt.test");
    assert!(off.wait_timeout(Duration::from_secs(15)).is_some());

    // Bad stream ids never become connections.
    for (sid, why) in [
        ("nonsense", "is not APP/STREAM"),
        ("#!::r=live/x,m=push", "neither publish nor request"),
    ] {
        let mut p = s.publish(FIXTURE, &s.url(sid), "bad");
        s.wait_log(why);
        assert!(
            p.wait_timeout(Duration::from_secs(15))
                .is_some_and(|st| !st.success()),
            "ffmpeg with stream id {sid} must fail"
        );
    }
    let mut none = s.publish(FIXTURE, &format!("srt://127.0.0.1:{}", s.srt), "none");
    s.wait_log("no stream id");
    assert!(none.wait_timeout(Duration::from_secs(15)).is_some());
}

/// A passphrase on both sides works; a wrong one, or none, is refused with a log line.
#[test]
fn passphrase_right_and_wrong() {
    let s = Srt::start_with(
        "srt-crypto",
        "passphrase 0123456789abcdef; pbkeylen 16;",
        "",
    );
    let mut wrong = s.publish(
        FIXTURE,
        &format!(
            "{}&passphrase=not-the-right-one",
            s.url("#!::r=live/enc,m=publish")
        ),
        "wrong",
    );
    assert!(
        wrong
            .wait_timeout(Duration::from_secs(15))
            .is_some_and(|st| !st.success()),
        "a wrong passphrase is refused"
    );
    s.wait_log("Incorrect passphrase");
    let mut none = s.publish(FIXTURE, &s.url("#!::r=live/enc,m=publish"), "none");
    assert!(none
        .wait_timeout(Duration::from_secs(15))
        .is_some_and(|st| !st.success()));
    assert!(!s.publishing("enc"));

    let (mut rtmp, out) = spawn_player(&s.server, &s.server.url("live/enc"), "enc");
    thread::sleep(Duration::from_millis(500));
    let mut right = s.publish(
        FIXTURE,
        &format!(
            "{}&passphrase=0123456789abcdef&pbkeylen=16",
            s.url("#!::r=live/enc,m=publish")
        ),
        "right",
    );
    right.expect_success(PUBLISH_TIMEOUT);
    thread::sleep(Duration::from_secs(2));
    rtmp.kill();
    assert_every_frame(
        "RTMP player of an encrypted SRT publish",
        &flv_stats(&out),
        &fixture_stats(FIXTURE),
    );
}

/// srt-live-transmit, a second libsrt client: it relays ffmpeg's TS from UDP into SRT
/// (publish) and out of SRT into a file (play).
#[test]
fn srt_live_transmit_publishes_and_plays() {
    require_tool("srt-live-transmit");
    let s = Srt::start("srt-slt");
    let want = fixture_stats(FIXTURE);
    let play_out = s.server.tmp("slt-play.ts");
    let mut slt_player = Proc::spawn(
        "srt-live-transmit player",
        {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!(
                "exec srt-live-transmit -q -a:no '{}' file://con > '{}'",
                s.url("#!::r=live/slt,m=request"),
                play_out.display()
            ));
            c
        },
        s.server.tmp("slt-player.log"),
    );
    let (mut rtmp, rtmp_out) = spawn_player(&s.server, &s.server.url("live/slt"), "slt");
    thread::sleep(Duration::from_secs(1));
    // ffmpeg's TS through a pipe into srt-live-transmit, which publishes it.
    let input = fixture(FIXTURE);
    let mut slt_pub = Proc::spawn(
        "ffmpeg | srt-live-transmit publisher",
        {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!(
                "ffmpeg -nostdin -hide_banner -loglevel error -re -i '{}' -c copy -f mpegts - \
                 | srt-live-transmit -q -a:no -chunk:1316 file://con '{}'",
                input.display(),
                s.url("#!::r=live/slt,m=publish")
            ));
            c
        },
        s.server.tmp("slt-publisher.log"),
    );
    // srt-live-transmit stays connected at the end of its input; the server closes it
    // after publish.normal_timeout (5 s) of silence, and it exits (no auto-reconnect).
    assert!(
        slt_pub
            .wait_timeout(PUBLISH_TIMEOUT + Duration::from_secs(10))
            .is_some(),
        "srt-live-transmit did not end; log:\n{}",
        s.server.log()
    );
    thread::sleep(Duration::from_secs(1));
    rtmp.kill();
    slt_player.kill();
    let got = flv_stats(&rtmp_out);
    // Loopback UDP into srt-live-transmit may lose a datagram; SRT itself loses nothing.
    assert_same_stream("RTMP player of srt-live-transmit's publish", &got, &want);
    let probed = probe_frames(play_out.to_str().expect("utf-8 path"));
    assert!(
        frames_of(&probed, "h264") >= want.video_frames as u64 * 9 / 10,
        "srt-live-transmit's play: {probed:?}"
    );
}

/// HEVC in TS (the fixture ffmpeg cannot put in FLV) and audio-only AAC: HTTP-FLV gets
/// HEVC (SRS's codec id 12), HLS and SRT players get HEVC in TS; audio-only reaches RTMP.
#[test]
fn hevc_and_audio_only() {
    let s = Srt::start("srt-codecs");
    let mut hevc = s.publish(
        "hevc-aac-640x360-10s.ts",
        &s.url("#!::r=live/hevc,m=publish"),
        "hevc",
    );
    s.wait_publishing("hevc");
    let flv_out = s.server.tmp("hevc.flv");
    let mut flv = Proc::spawn(
        "curl HTTP-FLV hevc",
        {
            let mut c = Command::new("curl");
            c.args(["-s", "-N", "--max-time", "4", "-o"])
                .arg(&flv_out)
                .arg(format!("http://127.0.0.1:{}/live/hevc.flv", s.http));
            c
        },
        s.server.tmp("curl-hevc.log"),
    );
    let (mut srt_player, srt_out) = s.play(&s.url("#!::r=live/hevc,m=request"), "hevc");
    let _ = flv.wait_timeout(Duration::from_secs(10));
    thread::sleep(Duration::from_secs(3));
    srt_player.kill();
    let got = flv_stats(&flv_out);
    assert_eq!(
        got.video_codec,
        Some(media::codec::VideoCodec::Hevc),
        "{got:#?}"
    );
    assert!(got.video_frames > 10 && got.audio_frames > 10, "{got:#?}");
    assert!(got.video_seq_before_frames, "{got:#?}");
    let probed = probe_frames(srt_out.to_str().expect("utf-8 path"));
    assert!(
        frames_of(&probed, "hevc") > 10,
        "SRT play of HEVC: {probed:?}"
    );
    hevc.expect_success(PUBLISH_TIMEOUT);
    let playlist = s.hls.join("live/hevc.m3u8");
    let probed = probe_frames(playlist.to_str().expect("utf-8 path"));
    assert!(frames_of(&probed, "hevc") > 200, "HLS of HEVC: {probed:?}");

    let want = fixture_stats("audio-only-aac-10s.flv");
    let (mut rtmp, out) = spawn_player(&s.server, &s.server.url("live/audio"), "audio");
    thread::sleep(Duration::from_millis(500));
    let mut audio = s.publish(
        "audio-only-aac-10s.flv",
        &s.url("#!::r=live/audio,m=publish"),
        "audio",
    );
    audio.expect_success(PUBLISH_TIMEOUT);
    thread::sleep(Duration::from_secs(2));
    rtmp.kill();
    assert_every_frame("audio-only over SRT", &flv_stats(&out), &want);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// An SRT induction handshake (version 4, type INDUCTION) from socket `id`: what a caller
/// sends first. Never followed by the conclusion here.
fn induction(id: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&[0x80, 0x00, 0x00, 0x00]); // control, type 0 = handshake
    p.extend_from_slice(&[0; 4]); // type-specific
    p.extend_from_slice(&[0; 4]); // timestamp
    p.extend_from_slice(&[0; 4]); // destination socket id
    p.extend_from_slice(&4u32.to_be_bytes()); // version
    p.extend_from_slice(&[0, 0, 0, 2]); // encryption 0, extension field 2
    p.extend_from_slice(&id.wrapping_mul(7919).to_be_bytes()); // initial sequence number
    p.extend_from_slice(&1500u32.to_be_bytes()); // MTU
    p.extend_from_slice(&8192u32.to_be_bytes()); // flow window
    p.extend_from_slice(&1u32.to_be_bytes()); // INDUCTION
    p.extend_from_slice(&id.to_be_bytes()); // socket id
    p.extend_from_slice(&[0; 4]); // cookie
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&[0; 12]);
    p
}

/// Garbage UDP, handshakes that never finish and a flood of them, while a stream is live
/// over SRT: the RTMP player still gets every frame, the server's memory stays bounded.
#[test]
fn hostile_udp_leaves_live_streams_untouched() {
    let mut s = Srt::start("srt-hostile");
    let want = fixture_stats(FIXTURE);
    let (mut rtmp, out) = spawn_player(&s.server, &s.server.url("live/h"), "h");
    thread::sleep(Duration::from_millis(500));
    let mut publisher = s.publish(FIXTURE, &s.url("#!::r=live/h,m=publish"), "h");
    s.wait_publishing("h");
    let rss_before = rss_kib(s.server.pid());
    let target = ("127.0.0.1", s.srt);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for t in 0..2u32 {
        let stop = stop.clone();
        attackers.push(thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let mut seed = 0x9e37_79b9u32.wrapping_mul(t + 1);
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let len = (seed % 1500) as usize + 1;
                let garbage: Vec<u8> = (0..len).map(|i| (seed >> (i % 24)) as u8).collect();
                let _ = sock.send_to(&garbage, target);
                // Handshakes from ever new sockets (and source ports) that never conclude.
                let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let _ = caller.send_to(&induction(seed), target);
                // A conclusion with a made-up cookie.
                let mut conclusion = induction(seed);
                conclusion[19] = 5;
                conclusion[43] = 0xff;
                conclusion[40..44].copy_from_slice(&seed.to_be_bytes());
                conclusion[36..40].copy_from_slice(&(-1i32).to_be_bytes());
                let _ = caller.send_to(&conclusion, target);
                sent += 3;
                if sent.is_multiple_of(300) {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            sent
        }));
    }
    publisher.expect_success(PUBLISH_TIMEOUT);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u64 = attackers.into_iter().map(|a| a.join().unwrap_or(0)).sum();
    thread::sleep(Duration::from_secs(2));
    rtmp.kill();
    assert!(sent > 10_000, "the flood sent only {sent} datagrams");
    assert!(s.server.is_alive(), "sluice died under hostile UDP");
    let rss_after = rss_kib(s.server.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB under {sent} hostile datagrams"
    );
    // The stream is untouched: what a player gets without a flood (tests above get every
    // frame; on a machine this loaded the encoder's very last packet may miss its linger).
    assert_same_stream("RTMP player during the flood", &flv_stats(&out), &want);
}

/// A lossy, slow link between an SRT caller and the server: a UDP relay on loopback that
/// drops `loss_percent` of the datagrams and delays the others by `delay`, each way (what
/// `tc netem loss 5% delay 50ms` on both ends of a veth does; this machine's kernel has no
/// `sch_netem`, so the link is made in user space). Stops when dropped.
struct LossyRelay {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl LossyRelay {
    fn start(server_port: u16, loss_percent: u32, delay: Duration) -> LossyRelay {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::mpsc;
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind relay"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind relay"));
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
        }
        let port = front.local_addr().expect("addr").port();
        let server = addr(server_port);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let caller: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::new(Mutex::new(None));
        let mut threads = Vec::new();
        // One direction: receive on `from`, drop some, queue the rest for `delay`.
        let mut direction =
            |from: Arc<UdpSocket>, to: Arc<UdpSocket>, upstream: bool, seed: u32| {
                let (tx, rx) = mpsc::channel::<(std::time::Instant, Vec<u8>)>();
                let (stop_r, stop_s) = (stop.clone(), stop.clone());
                let dropped = dropped.clone();
                let caller_r = caller.clone();
                let caller_s = caller.clone();
                threads.push(thread::spawn(move || {
                    let mut rng = seed;
                    let mut buf = [0u8; 2048];
                    while !stop_r.load(Ordering::Relaxed) {
                        let Ok((n, peer)) = from.recv_from(&mut buf) else {
                            continue;
                        };
                        if upstream {
                            *caller_r.lock().unwrap_or_else(|e| e.into_inner()) = Some(peer);
                        }
                        rng ^= rng << 13;
                        rng ^= rng >> 17;
                        rng ^= rng << 5;
                        if rng % 100 < loss_percent {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let _ = tx.send((std::time::Instant::now() + delay, buf[..n].to_vec()));
                    }
                }));
                threads.push(thread::spawn(move || {
                    while !stop_s.load(Ordering::Relaxed) {
                        let Ok((at, data)) = rx.recv_timeout(Duration::from_millis(100)) else {
                            continue;
                        };
                        thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                        let dest = if upstream {
                            Some(server)
                        } else {
                            *caller_s.lock().unwrap_or_else(|e| e.into_inner())
                        };
                        if let Some(d) = dest {
                            let _ = to.send_to(&data, d);
                        }
                    }
                }));
            };
        direction(front.clone(), back.clone(), true, 0x2545_f491);
        direction(back, front, false, 0x9e37_79b9);
        LossyRelay {
            port,
            stop,
            dropped,
            threads,
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Ingest across a lossy, slow link (5 % of the datagrams lost and 50 ms of delay each
/// way): SRT resends within its latency, and an RTMP player on the server gets every
/// frame the encoder sent, with no TS packet missing.
#[test]
fn ingest_through_loss_gets_every_frame() {
    let s = Srt::start_with(
        "srt-loss",
        // RTT 100 ms with 5 % loss: a second of latency leaves time for several resends.
        "recvlatency 1000; peerlatency 1000;",
        "",
    );
    let relay = LossyRelay::start(s.srt, 5, Duration::from_millis(50));
    let want = fixture_stats(FIXTURE);
    let (mut rtmp, out) = spawn_player(&s.server, &s.server.url("live/lossy"), "lossy");
    thread::sleep(Duration::from_millis(500));
    let mut publisher = s.publish(
        FIXTURE,
        &format!(
            "srt://127.0.0.1:{}?streamid=#!::r=live/lossy,m=publish&latency=1000000",
            relay.port
        ),
        "lossy",
    );
    publisher.expect_success(PUBLISH_TIMEOUT);
    thread::sleep(Duration::from_secs(3));
    rtmp.kill();
    let log = s.server.log();
    assert!(
        relay.dropped() > 50,
        "the link dropped only {} datagrams",
        relay.dropped()
    );
    assert!(
        log.contains("srt unpublish stream=__defaultVhost__/live/lossy ts_cc_errors=0 "),
        "TS packets were lost: {log}"
    );
    assert_every_frame(
        "RTMP player of an SRT publish through 5 % loss",
        &flv_stats(&out),
        &want,
    );
}

/// HTTP-TS (`http_remux` `.ts`) of an HEVC stream: the same TS feed SRT players read,
/// served over HTTP; ffmpeg reads it to the end of the publish, HEVC and AAC, every
/// video frame from the first keyframe on.
#[test]
fn hevc_over_http_ts() {
    let s = Srt::start_with(
        "srt-http-ts",
        "",
        "vhost v1.test { gop_cache on; queue_length 10; srt { enabled on; srt_to_rtmp on; } \
         http_remux { enabled on; mount [vhost]/[app]/[stream].ts; } }",
    );
    let mut hevc = s.publish(
        "hevc-aac-640x360-10s.ts",
        &s.url("#!::h=v1.test,r=live/hevc,m=publish"),
        "hevc-ts",
    );
    let path = "/v1.test/live/hevc.ts";
    wait_for(Duration::from_secs(10), || {
        let mut c = std::net::TcpStream::connect(addr(s.http)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(c, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut head = [0u8; 12];
        c.read_exact(&mut head).ok()?;
        head.ends_with(b"200").then_some(())
    })
    .unwrap_or_else(|| panic!("{path} never became live; log:\n{}", s.server.log()));
    let out = s.server.tmp("http-ts-hevc.ts");
    let mut reader = Proc::spawn(
        "ffmpeg HTTP-TS reader",
        ffmpeg_cmd(&[
            "-i",
            &format!("http://127.0.0.1:{}{path}", s.http),
            "-c",
            "copy",
            "-f",
            "mpegts",
            "-y",
            out.to_str().expect("utf-8 path"),
        ]),
        s.server.tmp("http-ts-reader.log"),
    );
    hevc.expect_success(PUBLISH_TIMEOUT);
    reader.expect_success(Duration::from_secs(20));
    let probed = probe_frames(out.to_str().expect("utf-8 path"));
    let want = probe_frames(
        fixture("hevc-aac-640x360-10s.ts")
            .to_str()
            .expect("utf-8 path"),
    );
    // The fixture's first keyframe is at 1.44 s: what comes before it is not played.
    let (got_v, want_v) = (frames_of(&probed, "hevc"), frames_of(&want, "hevc"));
    assert!(
        got_v + 40 >= want_v && got_v <= want_v,
        "HEVC frames: {got_v} of {want_v}: {probed:?}"
    );
    assert!(frames_of(&probed, "aac") > 300, "{probed:?}");
    // The first decoded frame is a keyframe (HEVC frames carry side data: "1,").
    let keys = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=key_frame", "-of", "csv=p=0"])
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    let first = String::from_utf8_lossy(&keys.stdout);
    assert_eq!(
        first.lines().next().map(|l| l.trim().trim_end_matches(',')),
        Some("1"),
        "first HEVC frame of the HTTP-TS is not a keyframe"
    );
}
