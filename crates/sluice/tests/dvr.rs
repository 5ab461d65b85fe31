//! DVR end to end: real ffmpeg publishes to the real `sluice`, and the recorded files are
//! checked with ffprobe/ffmpeg (decodable from their first frame, durations adding up to the
//! published time), with the on_dvr hook receiving each file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::thread;
use std::time::Duration;

use common::hook_server::HookServer;
use common::*;

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(25);
/// The fixture's length as ffprobe reports it.
const CLIP_SECONDS: f64 = 10.08;

/// The files `on_dvr` named, in order.
fn dvr_files(hooks: &HookServer) -> Vec<String> {
    hooks
        .bodies("on_dvr")
        .iter()
        .filter_map(|v| v["file"].as_str().map(str::to_owned))
        .collect()
}

fn config(dvr: &str, hook_port: u16) -> String {
    format!(
        "max_connections 100;\ndaemon off;\nsrs_log_tank console;\nff_log_dir /dev/null;\n\
         vhost __defaultVhost__ {{ gop_cache on; queue_length 10;\n\
           http_hooks {{ enabled on; on_dvr http://127.0.0.1:{hook_port}/api/v1/dvrs; }}\n\
           dvr {{ {dvr} }} }}\n"
    )
}

/// Complete recordings (no `.tmp` left) under `dir`, sorted by name.
fn recordings(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v.sort();
    v
}

fn probe_duration(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}: {out:?}", file.display()))
}

/// The file decodes without a single error, and its first video frame is a keyframe.
fn assert_decodes_from_first_frame(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{} does not decode cleanly: {err}",
        file.display()
    );
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    let first = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        first.lines().next().map(|l| l.trim().trim_end_matches(',')),
        Some("1"),
        "{}: first video frame is not a keyframe",
        file.display()
    );
    let stats = flv_stats(file);
    assert!(
        stats.video_seq_before_frames && stats.audio_seq_before_frames,
        "{stats:#?}"
    );
    assert_eq!(stats.first_video_frame_key, Some(true));
    assert!(stats.metadata_tags >= 1);
}

fn wait_recordings(server: &Server, dir: &str, count: usize) -> Vec<PathBuf> {
    let dir = server.tmp(dir);
    wait_for(Duration::from_secs(10), || {
        let r = recordings(&dir);
        (r.len() >= count && r.iter().all(|p| p.extension().is_some_and(|e| e == "flv")))
            .then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "expected {count} complete recordings, got {:?}",
            recordings(&dir)
        )
    })
}

fn assert_hook_got(hook: &HookServer, files: &[PathBuf]) {
    let got = wait_for(Duration::from_secs(5), || {
        let got = dvr_files(hook);
        (got.len() >= files.len()).then_some(got)
    })
    .unwrap_or_else(|| panic!("on_dvr got {:?}, expected {files:?}", dvr_files(hook)));
    assert_eq!(got.len(), files.len(), "{got:?}");
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            got.iter().any(|g| g.ends_with(name)),
            "{name} not in {got:?}"
        );
    }
}

#[test]
fn session_plan_records_one_playable_file() {
    require_ffmpeg();
    let hook = HookServer::start();
    let server = Server::start_with(
        "dvr-session",
        &config(
            "enabled on; dvr_plan session; dvr_path ./rec/[app]/[stream].[timestamp].flv;",
            hook.port,
        ),
    );
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/sess"), "sess");
    publisher.expect_success(PUBLISH_TIMEOUT);
    let files = wait_recordings(&server, "rec", 1);
    assert_eq!(files.len(), 1, "{files:?}");
    let f = &files[0];
    assert!(f.starts_with(server.tmp("rec/live")), "{f:?}");
    assert!(f
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("sess."));
    assert_decodes_from_first_frame(f);
    assert_probe_matches("session", f, AVC_AAC);
    let d = probe_duration(f);
    assert!((d - CLIP_SECONDS).abs() < 0.5, "duration {d}");
    assert_hook_got(&hook, &files);
}

#[test]
fn segment_plan_files_play_alone_and_add_up() {
    require_ffmpeg();
    let hook = HookServer::start();
    let server = Server::start_with(
        "dvr-segment",
        &config(
            "enabled on; dvr_apply live/seg; dvr_plan segment; dvr_duration 3; \
             dvr_path ./rec/[stream]-[2006][01][02]-[15][04][05]-[999].flv;",
            hook.port,
        ),
    );
    // Not in dvr_apply: published alongside, never recorded.
    let mut other = spawn_publisher_args(
        &server,
        AVC_AAC,
        &server.url("live/other"),
        "other",
        &["-t", "3"],
    );
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/seg"), "seg");
    publisher.expect_success(PUBLISH_TIMEOUT);
    other.expect_success(PUBLISH_TIMEOUT);
    // Keyframes every 2 s: cuts at 4 s and 8 s.
    let files = wait_recordings(&server, "rec", 3);
    assert_eq!(files.len(), 3, "{files:?}");
    let mut total = 0.0;
    for f in &files {
        assert!(
            f.file_name().unwrap().to_str().unwrap().starts_with("seg-"),
            "{f:?}"
        );
        assert_decodes_from_first_frame(f);
        total += probe_duration(f);
    }
    assert!(
        (total - CLIP_SECONDS).abs() < 0.6,
        "durations add up to {total}"
    );
    assert_hook_got(&hook, &files);
}

#[test]
fn unwritable_path_leaves_the_live_stream_playing() {
    require_ffmpeg();
    let dir = unique_dir("dvr-blocked");
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, b"x").expect("write blocker");
    let hook = HookServer::start();
    let server = Server::start_with(
        "dvr-unwritable",
        &config(
            &format!("enabled on; dvr_path {}/[stream].flv;", blocker.display()),
            hook.port,
        ),
    );
    let url = server.url("live/blocked");
    let mut publisher = spawn_publisher(&server, AVC_AAC, &url, "blocked");
    thread::sleep(Duration::from_millis(500));
    let (mut player, out) = spawn_player(&server, &url, "blocked");
    publisher.expect_success(PUBLISH_TIMEOUT);
    player.expect_success(Duration::from_secs(8));
    assert_same_stream("blocked", &flv_stats(&out), &fixture_stats(AVC_AAC));
    let log = server.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dvr: stopped recording"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line per stream:\n{log}");
    assert!(errors[0].contains("live/blocked"), "{}", errors[0]);
    assert!(dvr_files(&hook).is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

/// Complete recordings with extension `ext`, once there are `count` and no temporary one.
fn wait_recordings_ext(server: &Server, dir: &str, count: usize, ext: &str) -> Vec<PathBuf> {
    let dir = server.tmp(dir);
    wait_for(Duration::from_secs(10), || {
        let r = recordings(&dir);
        (r.len() >= count && r.iter().all(|p| p.extension().is_some_and(|e| e == ext))).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "expected {count} complete .{ext} recordings, got {:?}",
            recordings(&dir)
        )
    })
}

/// `dvr_path` ending in `.mp4`: fragmented MP4 that ffprobe reads as MP4 (`mov,mp4,...`),
/// decoding every frame the encoder sent from the first keyframe on, with the clip's
/// duration; the segment plan's files add up; on_dvr names the `.mp4` files.
#[test]
fn mp4_recordings_decode_every_frame() {
    require_ffmpeg();
    let hook = HookServer::start();
    let server = Server::start_with(
        "dvr-mp4",
        &format!(
            "max_connections 100;\ndaemon off;\nsrs_log_tank console;\n\
             vhost __defaultVhost__ {{ gop_cache on; queue_length 10;\n\
               http_hooks {{ enabled on; on_dvr http://127.0.0.1:{p}/api/v1/dvrs; }}\n\
               dvr {{ enabled on; dvr_plan session; dvr_path ./mp4/[app]/[stream].[timestamp].mp4; }} }}\n\
             vhost v1.test {{ gop_cache on; queue_length 10;\n\
               http_hooks {{ enabled on; on_dvr http://127.0.0.1:{p}/api/v1/dvrs; }}\n\
               dvr {{ enabled on; dvr_plan segment; dvr_duration 3; dvr_path ./seg/[stream]-[timestamp].mp4; }} }}\n",
            p = hook.port
        ),
    );
    let mut publishers = [
        spawn_publisher(&server, AVC_AAC, &server.url("live/sess"), "sess"),
        spawn_publisher(&server, AUDIO_MP3, &server.url("live/mp3"), "mp3"),
        spawn_publisher(
            &server,
            AVC_AAC,
            &server.url("live?vhost=v1.test/seg"),
            "seg",
        ),
    ];
    for p in &mut publishers {
        p.expect_success(PUBLISH_TIMEOUT);
    }
    let session = wait_recordings_ext(&server, "mp4", 2, "mp4");
    let segments = wait_recordings_ext(&server, "seg", 3, "mp4");
    for f in &session {
        let fixture_name = if f.to_string_lossy().contains("/mp3.") {
            AUDIO_MP3
        } else {
            AVC_AAC
        };
        let format = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=format_name",
                "-of",
                "csv=p=0",
            ])
            .arg(f)
            .output()
            .expect("run ffprobe");
        assert!(
            String::from_utf8_lossy(&format.stdout).contains("mp4"),
            "{}: {format:?}",
            f.display()
        );
        assert_decodes_from_first_frame_any(f);
        let want = fixture_stats(fixture_name);
        let probed = ffprobe(f);
        let frames = |kind: &str| {
            probed
                .iter()
                .filter(|s| s.codec_type == kind)
                .map(|s| s.frames.unwrap_or(0) as usize)
                .sum::<usize>()
        };
        assert_eq!(
            frames("video"),
            want.video_frames,
            "{}: {probed:?}",
            f.display()
        );
        let audio = frames("audio");
        assert!(
            audio <= want.audio_frames && audio + 5 >= want.audio_frames,
            "{}: {audio} audio frames of {}",
            f.display(),
            want.audio_frames
        );
        let d = probe_duration(f);
        assert!(
            (d - CLIP_SECONDS).abs() < 0.5,
            "{}: duration {d}",
            f.display()
        );
    }
    assert_eq!(segments.len(), 3, "{segments:?}");
    let mut total = 0.0;
    for f in &segments {
        assert_decodes_from_first_frame_any(f);
        total += probe_duration(f);
    }
    assert!(
        (total - CLIP_SECONDS).abs() < 0.6,
        "segments add up to {total}"
    );
    let mut all = session.clone();
    all.extend(segments);
    assert_hook_got(&hook, &all);
}

/// An MP4 (or any) recording decodes without an error, and its first video frame (if it
/// has video) is a keyframe.
fn assert_decodes_from_first_frame_any(file: &Path) {
    if ffprobe(file).iter().any(|s| s.codec_type == "video") {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-read_intervals",
                "%+#1",
            ])
            .args(["-show_entries", "frame=key_frame", "-of", "csv=p=0"])
            .arg(file)
            .output()
            .expect("run ffprobe");
        let first = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            first.lines().next().map(|l| l.trim().trim_end_matches(',')),
            Some("1"),
            "{}: first video frame is not a keyframe",
            file.display()
        );
    }
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{} does not decode cleanly: {err}",
        file.display()
    );
}
