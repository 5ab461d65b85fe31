//! HLS with fMP4 segments (`hls_use_fmp4`): the real server, real ffmpeg publishers, the
//! output read by ffprobe/ffmpeg over HTTP and checked box by box with our own fMP4 reader.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use media::fmp4::read::{parse_fragments, parse_init, InitTrack};
use media::fmp4::FLAGS_SYNC;
use media::hls::{parse_media_playlist, MediaPlaylist};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

struct Hls {
    server: Server,
    root: PathBuf,
    http: u16,
}

impl Hls {
    fn start(tag: &str, extra_hls: &str) -> Hls {
        require_ffmpeg();
        let root = unique_dir(&format!("{tag}-root")).join("hls");
        fs::create_dir_all(&root).expect("hls root");
        let http = free_port();
        let api = free_port();
        let body = format!(
            "max_connections 100;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; }}
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_use_fmp4 on; hls_path {root}; hls_fragment 2; hls_window 10; {extra_hls} }}
}}
",
            root = root.display()
        );
        let server = Server::start_with(tag, &body);
        Hls { server, root, http }
    }

    fn publish(&self, fixture_name: &str, extra: &[&str], tag: &str) {
        let mut p = spawn_publisher_args(
            &self.server,
            fixture_name,
            &self.server.url("live/test"),
            tag,
            extra,
        );
        p.expect_success(PUBLISH_TIMEOUT);
        std::thread::sleep(Duration::from_millis(1500));
    }

    fn playlist(&self) -> Option<MediaPlaylist> {
        let text = fs::read_to_string(self.root.join("live/test.m3u8")).ok()?;
        Some(parse_media_playlist(&text).expect("playlist parses"))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http)
    }
}

impl Drop for Hls {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            if let Some(parent) = self.root.parent() {
                let _ = fs::remove_dir_all(parent);
            }
        }
    }
}

fn http_get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    let r = common::http::get(port, path);
    assert!(!r.chunked(), "static files have a length");
    (r.status, r.head, r.body)
}

fn ffprobe_json(args: &[&str], target: &str) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// The codecs ffprobe finds in the live playlist over HTTP, and the largest step between
/// consecutive packet DTS of each stream (continuous timestamps: no hole at segment joins).
fn probe_playlist(url: &str) -> (Vec<String>, Vec<f64>) {
    let v = ffprobe_json(
        &[
            "-show_streams",
            "-show_entries",
            "packet=stream_index,dts_time",
        ],
        url,
    );
    let streams = v["streams"].as_array().expect("streams");
    let mut codecs: Vec<String> = streams
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
        .collect();
    codecs.sort();
    let mut last: Vec<Option<f64>> = vec![None; streams.len()];
    let mut max_step = vec![0.0f64; streams.len()];
    for p in v["packets"].as_array().expect("packets") {
        let i = p["stream_index"].as_u64().expect("index") as usize;
        let Some(dts) = p["dts_time"].as_str().and_then(|t| t.parse::<f64>().ok()) else {
            continue;
        };
        if let Some(prev) = last[i] {
            assert!(
                dts >= prev,
                "stream {i}: DTS goes back from {prev} to {dts}"
            );
            max_step[i] = max_step[i].max(dts - prev);
        }
        last[i] = Some(dts);
    }
    (codecs, max_step)
}

/// Every listed segment over HTTP, checked with our reader against the init segment: each
/// track's decode time continues exactly where the previous segment's ended, and with video
/// each segment starts on a sync sample.
fn check_segments(h: &Hls, pl: &MediaPlaylist) -> Vec<InitTrack> {
    let map = pl.segments[0].map.clone().expect("EXT-X-MAP");
    let (status, head, init) = http_get(h.http, &format!("live/{map}"));
    assert_eq!(status, 200, "GET init {map}");
    assert!(head.contains("video/mp4"), "{head}");
    let tracks = parse_init(&init).expect("init segment parses");
    assert!(tracks.iter().all(|t| t.trex), "mvex/trex for every track");
    let video = tracks.iter().find(|t| &t.handler == b"vide").map(|t| t.id);
    let mut next_dts: std::collections::HashMap<u32, u64> = Default::default();
    for seg in &pl.segments {
        assert_eq!(seg.map.as_deref(), Some(map.as_str()), "one init");
        let (status, head, body) = http_get(h.http, &format!("live/{}", seg.uri));
        assert_eq!(status, 200, "GET {}", seg.uri);
        assert!(head.contains("video/iso.segment"), "{head}");
        let frags = parse_fragments(&body).expect("segment parses");
        assert!(!frags.is_empty(), "{}: no fragment", seg.uri);
        for (k, f) in frags.iter().enumerate() {
            for t in &f.trafs {
                assert!(
                    tracks.iter().any(|x| x.id == t.track_id),
                    "traf of an undeclared track"
                );
                if k == 0 && Some(t.track_id) == video {
                    assert_eq!(
                        t.samples[0].flags, FLAGS_SYNC,
                        "{}: starts on a keyframe",
                        seg.uri
                    );
                }
                if let Some(want) = next_dts.get(&t.track_id) {
                    assert_eq!(
                        t.base_dts, *want,
                        "{}: track {} continues",
                        seg.uri, t.track_id
                    );
                }
                next_dts.insert(t.track_id, t.base_dts + t.duration());
            }
        }
    }
    tracks
}

fn full_check(tag: &str, fixture_name: &str, want: &[&str]) {
    let h = Hls::start(tag, "hls_dispose 0;");
    h.publish(fixture_name, &[], tag);
    let pl = h.playlist().expect("playlist written");
    assert!(pl.ended, "ENDLIST at unpublish with hls_dispose 0");
    assert!(pl.segments.len() >= 3, "{} segments", pl.segments.len());
    let text = fs::read_to_string(h.root.join("live/test.m3u8")).expect("playlist");
    assert!(
        text.contains("#EXT-X-VERSION:7\n") && text.contains("#EXT-X-MAP:URI=\"test/init.mp4\""),
        "{text}"
    );
    assert!(pl.segments.iter().all(|s| s.uri.ends_with(".m4s")));
    let tracks = check_segments(&h, &pl);
    assert_eq!(tracks.len(), want.len());
    let (codecs, steps) = probe_playlist(&h.url("live/test.m3u8"));
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(codecs, want);
    for s in steps {
        assert!(s < 0.2, "a DTS hole of {s} s in the playlist");
    }
    // ffmpeg reads the whole playlist, as long as the clip.
    let out = h.server.tmp(&format!("{tag}-recorded.mkv"));
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(h.url("live/test.m3u8"))
        .args(["-c", "copy", "-y"])
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg recording of the fMP4 playlist failed");
    let v = ffprobe_json(
        &["-show_entries", "format=duration"],
        &out.display().to_string(),
    );
    let got: f64 = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration");
    assert!((got - 10.0).abs() < 1.5, "recorded {got} s of a 10 s clip");
}

#[test]
fn fmp4_avc_aac_live_playlist() {
    full_check("fmp4-av", AVC_AAC, &["aac", "h264"]);
}

#[test]
fn fmp4_audio_only_aac() {
    full_check("fmp4-aac", AUDIO_AAC, &["aac"]);
}

#[test]
fn fmp4_audio_only_mp3() {
    full_check("fmp4-mp3", AUDIO_MP3, &["mp3"]);
}

#[test]
fn fmp4_video_only() {
    full_check("fmp4-video", VIDEO_ONLY, &["h264"]);
}

#[test]
fn fmp4_republish_continues_with_a_discontinuity_and_dispose_cleans_up() {
    let h = Hls::start("fmp4-republish", "hls_dispose 3;");
    h.publish(AVC_AAC, &["-t", "5"], "first");
    let first = h.playlist().expect("first playlist");
    assert!(!first.ended);
    let n = first.segments.len() as u64;
    h.publish(AVC_AAC, &["-t", "5"], "second");
    let pl = h.playlist().expect("second playlist");
    let disc: Vec<u64> = pl
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.sequence)
        .collect();
    assert_eq!(disc, vec![first.media_sequence + n]);
    // Same configuration: the same init segment serves both publishes.
    assert!(pl
        .segments
        .iter()
        .all(|s| s.map.as_deref() == Some("test/init.mp4")));
    // hls_dispose: everything goes, the init segment too.
    let gone = wait_for(Duration::from_secs(15), || {
        let left: Vec<_> = fs::read_dir(h.root.join("live"))
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default();
        let init = h.root.join("live/test/init.mp4").exists();
        (left.iter().all(|p| p.is_dir()) && !init).then_some(())
    });
    assert!(gone.is_some(), "files left after hls_dispose");
}
