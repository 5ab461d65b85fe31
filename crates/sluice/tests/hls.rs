//! HLS end to end: the real server, real ffmpeg publishers, and the output checked with
//! ffprobe/ffmpeg over HTTP and with our own TS demuxer. Each scenario is its own test so they
//! run in parallel (each about the length of its clip).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use media::hls::{parse_media_playlist, MediaPlaylist};
use media::ts::{pid, TsDemuxer, TsEvent};

const FRAGMENT: f64 = 2.0;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// A server with HLS on the default vhost, writing under its own `hls` root (absolute, made
/// before the server starts so a test can put files there), served by http_server.
struct Hls {
    server: Server,
    root: PathBuf,
    http: u16,
    api: u16,
}

impl Hls {
    fn start(tag: &str, extra_hls: &str) -> Hls {
        Self::start_in(
            tag,
            extra_hls,
            unique_dir(&format!("{tag}-root")).join("hls"),
        )
    }

    fn start_in(tag: &str, extra_hls: &str, root: PathBuf) -> Hls {
        require_ffmpeg();
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
    hls {{ enabled on; hls_path {root}; hls_fragment {FRAGMENT}; hls_window 10; {extra_hls} }}
}}
",
            root = root.display()
        );
        let server = Server::start_with(tag, &body);
        Hls {
            server,
            root,
            http,
            api,
        }
    }

    /// This stream's entry of `GET /api/v1/hls`.
    fn api_status(&self) -> Option<serde_json::Value> {
        let (status, body) = http_get(self.api, "api/v1/hls");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).expect("api json");
        v["hls"]
            .as_array()?
            .iter()
            .find(|s| s["stream"] == "test")
            .cloned()
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.http)
    }

    fn playlist_path(&self) -> PathBuf {
        self.root.join("live/test.m3u8")
    }

    fn playlist(&self) -> Option<MediaPlaylist> {
        let text = fs::read_to_string(self.playlist_path()).ok()?;
        Some(parse_media_playlist(&text).expect("playlist parses"))
    }

    /// Publishes `fixture` to live/test (with extra ffmpeg input/output options) and waits
    /// for ffmpeg to finish, then for the server to close the last segment.
    fn publish(&self, fixture_name: &str, extra: &[&str], tag: &str) {
        let mut p = spawn_publisher_args(
            &self.server,
            fixture_name,
            &self.server.url("live/test"),
            tag,
            extra,
        );
        p.expect_success(PUBLISH_TIMEOUT);
        // The unpublish closes the last segment and rewrites the playlist.
        std::thread::sleep(Duration::from_millis(1500));
    }

    fn segment_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.root.join("live"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "ts"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
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

fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let r = common::http::get(port, path);
    (r.status, r.body)
}

fn ffprobe_ok(target: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json", target])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Seconds of media in a file, by ffprobe.
fn media_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}", path.display()))
}

/// Checks one segment with our demuxer: PAT then PMT first, no continuity error, and (with
/// video) the first video PES is a keyframe carrying an IDR.
fn check_segment(label: &str, data: &[u8], video: bool) {
    assert!(
        !data.is_empty() && data.chunks(188).all(|c| c.len() == 188),
        "{label}: {} bytes",
        data.len()
    );
    let mut d = TsDemuxer::new();
    let mut ev = Vec::new();
    d.push(data, &mut ev);
    d.finish(&mut ev);
    let pids: Vec<u16> = ev
        .iter()
        .filter_map(|e| match e {
            TsEvent::Packet(p) => Some(p.pid),
            _ => None,
        })
        .take(2)
        .collect();
    assert_eq!(
        pids,
        vec![pid::PAT, pid::PMT],
        "{label}: starts with PAT, PMT"
    );
    assert!(
        d.cc_errors().is_empty(),
        "{label}: cc errors {:?}",
        d.cc_errors()
    );
    let bad: Vec<_> = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                TsEvent::CcError { .. }
                    | TsEvent::PsiError(_)
                    | TsEvent::BadPes { .. }
                    | TsEvent::SyncLost { .. }
            )
        })
        .collect();
    assert!(bad.is_empty(), "{label}: {bad:?}");
    if video {
        let first = ev
            .iter()
            .find_map(|e| match e {
                TsEvent::Pes(p) if p.pid == pid::VIDEO => Some(p),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{label}: no video PES"));
        assert!(
            first.random_access,
            "{label}: first video PES not a keyframe"
        );
        let has_idr = first
            .data
            .windows(4)
            .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 5);
        assert!(has_idr, "{label}: first video PES has no IDR NAL");
    }
}

/// Every listed segment: served over HTTP, read by ffprobe, and clean for our demuxer.
fn check_all_segments(h: &Hls, pl: &MediaPlaylist, video: bool) {
    assert!(!pl.segments.is_empty(), "no segments");
    for seg in &pl.segments {
        let path = format!("live/{}", seg.uri);
        let (status, body) = http_get(h.http, &path);
        assert_eq!(status, 200, "GET {path}");
        check_segment(&seg.uri, &body, video);
        ffprobe_ok(&h.root.join(&path).display().to_string());
    }
}

fn sum_extinf(pl: &MediaPlaylist) -> f64 {
    pl.segments.iter().map(|s| s.duration).sum()
}

fn assert_duration_close(label: &str, got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= tolerance,
        "{label}: {got:.3}s vs {want:.3}s (tolerance {tolerance:.1}s)"
    );
}

fn codecs(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("ffprobe json");
    let mut c: Vec<String> = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    c.sort();
    c
}

/// A clip in, checked every way: segments, playlist over HTTP, durations, and a recording of
/// the playlist by ffmpeg. `hls_dispose 0` ends the playlist when the publisher leaves, so
/// ffmpeg reads it to the end like a VOD.
fn full_check(tag: &str, fixture_name: &str, video: bool, want_codecs: &[&str]) {
    let h = Hls::start(tag, "hls_dispose 0;");
    h.publish(fixture_name, &[], tag);
    let pl = h.playlist().expect("playlist written");
    assert!(pl.ended, "hls_dispose 0 ends the playlist on unpublish");
    let fixture_secs = media_duration(&fixture(fixture_name));
    let target = pl.effective_target_duration() as f64;
    // Pure audio cuts at fragment x hls_aof_ratio (SRS), so its segments are longer.
    assert!(target >= FRAGMENT, "target {target}");
    assert_duration_close(tag, sum_extinf(&pl), fixture_secs, target);
    for s in &pl.segments {
        assert!(
            s.duration <= target,
            "EXTINF {} over target {target}",
            s.duration
        );
    }
    check_all_segments(&h, &pl, video);

    // The playlist as a player fetches it.
    let (status, body) = http_get(h.http, "live/test.m3u8");
    assert_eq!(status, 200);
    assert_eq!(
        parse_media_playlist(&String::from_utf8_lossy(&body)).expect("served playlist"),
        pl
    );
    let probed = ffprobe_ok(&h.http_url("live/test.m3u8"));
    let mut want: Vec<String> = want_codecs.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(codecs(&probed), want, "{probed}");

    // ffmpeg records the playlist: same codecs, same duration within a segment.
    let out = h.server.tmp(&format!("{tag}-recorded.ts"));
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(h.http_url("live/test.m3u8"))
        .args(["-c", "copy", "-f", "mpegts", "-y"])
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg recording of the playlist failed");
    assert_eq!(codecs(&ffprobe_ok(&out.display().to_string())), want);
    assert_duration_close(
        &format!("{tag} recording"),
        media_duration(&out),
        fixture_secs,
        target,
    );
}

#[test]
fn avc_aac_stream_makes_a_correct_live_playlist() {
    full_check("hls-av", AVC_AAC, true, &["aac", "h264"]);
}

#[test]
fn audio_only_aac_works() {
    full_check("hls-aac", AUDIO_AAC, false, &["aac"]);
}

#[test]
fn audio_only_mp3_works() {
    full_check("hls-mp3", AUDIO_MP3, false, &["mp3"]);
}

#[test]
fn video_only_works() {
    full_check("hls-video", VIDEO_ONLY, true, &["h264"]);
}

#[test]
fn republish_adds_a_discontinuity_and_continues_the_sequence() {
    let h = Hls::start("hls-republish", "");
    h.publish(AVC_AAC, &["-t", "5"], "first");
    let first = h.playlist().expect("playlist after the first publish");
    assert!(!first.ended);
    assert!(first.segments.iter().all(|s| !s.discontinuity));
    let n_first = first.segments.len() as u64;
    h.publish(AVC_AAC, &["-t", "5"], "second");
    let pl = h.playlist().expect("playlist after the second publish");
    let disc: Vec<u64> = pl
        .segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.sequence)
        .collect();
    assert_eq!(
        disc,
        vec![first.media_sequence + n_first],
        "one discontinuity, on the first segment of the second publish:\n{}",
        fs::read_to_string(h.playlist_path()).unwrap_or_default()
    );
    check_all_segments(&h, &pl, true);
}

#[test]
fn window_slides_and_old_segments_are_deleted() {
    let h = Hls::start("hls-window", "");
    // 3 x 10 s = 30 s of media, 5 times the window.
    let mut p = Command::new("ffmpeg");
    p.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "2", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(h.server.url("live/test"));
    let mut p = Proc::spawn("ffmpeg loop", p, h.server.tmp("loop.log"));
    p.expect_success(PUBLISH_TIMEOUT);
    std::thread::sleep(Duration::from_millis(1500));
    let pl = h.playlist().expect("playlist");
    assert!(pl.media_sequence >= 5, "window slid: {pl:?}");
    let total = sum_extinf(&pl);
    let target = pl.effective_target_duration() as f64;
    assert!(total >= 10.0 && total >= 3.0 * target, "kept {total}s");
    assert!(
        total <= 10.0 + target,
        "kept {total}s, more than window + 1 segment"
    );
    check_all_segments(&h, &pl, true);
    // Segments that left the window go after (their duration + the playlist's): the first
    // ones left ~15 s before the end of the publish.
    let files = h.segment_files();
    assert!(
        !h.root.join("live/test-0.ts").exists(),
        "old segment still on disk: {files:?}"
    );
    let listed = pl.segments.len();
    assert!(
        files.len() <= listed + 8,
        "{} files on disk for {listed} listed: {files:?}",
        files.len()
    );
    // No temp files left behind.
    let tmp = fs::read_dir(h.root.join("live"))
        .expect("dir")
        .flatten()
        .filter(|e| e.path().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(tmp, 0);
}

#[test]
fn stale_playlist_gets_endlist_at_start() {
    let root = unique_dir("hls-stale-root").join("hls");
    fs::create_dir_all(root.join("live")).expect("mkdir");
    let stale = root.join("live/old.m3u8");
    fs::write(
        &stale,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nold-4.ts\n",
    )
    .expect("write stale");
    let h = Hls::start_in("hls-stale", "", root);
    let ended = wait_for(Duration::from_secs(10), || {
        let text = fs::read_to_string(&stale).ok()?;
        parse_media_playlist(&text).ok()?.ended.then_some(())
    });
    assert!(ended.is_some(), "stale playlist not closed");
    assert!(
        h.server.log().contains("stale playlist"),
        "closing is logged"
    );
}

#[test]
fn dispose_deletes_all_files() {
    let h = Hls::start("hls-dispose", "hls_dispose 2;");
    h.publish(AVC_AAC, &["-t", "5"], "dispose");
    assert!(h.playlist_path().exists());
    assert!(!h.segment_files().is_empty());
    let gone = wait_for(Duration::from_secs(10), || {
        (!h.playlist_path().exists() && h.segment_files().is_empty()).then_some(())
    });
    assert!(
        gone.is_some(),
        "files left after dispose: {:?}",
        h.segment_files()
    );
}

#[test]
fn stream_names_cannot_escape_the_hls_dir() {
    let base = unique_dir("hls-escape");
    let root = base.join("a/b/hls");
    let mut h = Hls::start_in("hls-escape", "", root.clone());
    for (i, name) in [
        "../../../escaped",
        "..%2F..%2Fescaped2",
        "x/../../../escaped3",
    ]
    .iter()
    .enumerate()
    {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-i",
        ])
        .arg(fixture(AVC_AAC))
        .args(["-t", "3", "-c", "copy", "-f", "flv"])
        .args(["-rtmp_app", "live", "-rtmp_playpath", name])
        .arg(h.server.url("live/x"));
        let mut p = Proc::spawn(
            "ffmpeg escape",
            cmd,
            h.server.tmp(&format!("escape-{i}.log")),
        );
        // Whether the server refuses the name or publishes it without HLS, nothing may be
        // written outside the root.
        let _ = p.wait_timeout(PUBLISH_TIMEOUT);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(h.server.is_alive());
    let mut outside = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read").flatten() {
            let p = e.path();
            if p.starts_with(&root) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                outside.push(p);
            }
        }
    }
    assert!(outside.is_empty(), "written outside hls_path: {outside:?}");
    let _ = fs::remove_dir_all(&base);
}

/// Disk errors follow `hls_on_error`: `disconnect` kicks the publisher, `continue` keeps it
/// (and other streams are never affected). The stream's dir is made unwritable by putting a
/// plain file where its directory should be.
#[test]
fn disk_errors_follow_hls_on_error() {
    for (policy, kicked) in [("disconnect", true), ("continue", false)] {
        let root = unique_dir(&format!("hls-err-{policy}-root")).join("hls");
        fs::create_dir_all(&root).expect("mkdir");
        fs::write(root.join("live"), "not a directory").expect("blocker");
        let h = Hls::start_in(
            &format!("hls-err-{policy}"),
            &format!("hls_on_error {policy};"),
            root,
        );
        let mut p = spawn_publisher(&h.server, AVC_AAC, &h.server.url("live/test"), policy);
        let ended_early = p.wait_timeout(Duration::from_secs(6)).is_some();
        assert_eq!(ended_early, kicked, "hls_on_error {policy}");
        assert!(
            h.server.log().contains("live/test.ts") || h.server.log().contains("live/test-"),
            "the error is logged with its path"
        );
    }
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop. A real disk to fill: running out
/// of space is the fault HLS has to survive, and root cannot be stopped by permissions.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs to fill it, which needs root (CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 16 * 1024];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
        // Whatever a partial write left: the disk must be full for anyone else too.
        let _ = f.write_all(&[0; 512]);
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = fs::remove_dir(&self.dir);
        if let Some(parent) = self.dir.parent() {
            let _ = fs::remove_dir_all(parent);
        }
    }
}

/// Issue 24 item 5: a full disk for a few segments, then space again. The playlist goes on
/// with `#EXT-X-DISCONTINUITY` on the first segment after the hole, a log line says writing
/// recovered, and the API's `last_error` is cleared (its time kept).
#[test]
fn full_disk_episode_gets_a_discontinuity_and_recovers() {
    let root = unique_dir("hls-full-root").join("hls");
    let disk = Tmpfs::mount(&root, "16m");
    let h = Hls::start_in("hls-full", "hls_on_error continue;", root);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "3", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(h.server.url("live/test"));
    let mut publisher = Proc::spawn("ffmpeg loop", cmd, h.server.tmp("full.log"));

    let before = wait_for(Duration::from_secs(20), || {
        h.playlist().filter(|p| p.segments.len() >= 2)
    })
    .expect("two segments before the disk fills");
    assert!(before.segments.iter().all(|s| !s.discontinuity));
    let last_before = before.segments.iter().map(|s| s.sequence).max();

    let filler = disk.fill();
    let failing = wait_for(Duration::from_secs(10), || {
        h.api_status()
            .filter(|s| s["errors"].as_u64() > Some(0) && !s["last_error"].is_null())
    })
    .expect("the full disk shows in the API");
    let err = failing["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("No space left"), "{err}");
    // Long enough for at least one whole segment (2 s) to be lost.
    std::thread::sleep(Duration::from_secs(5));
    fs::remove_file(&filler).expect("free the disk");

    let after = wait_for(Duration::from_secs(15), || {
        h.playlist()
            .filter(|p| p.segments.iter().any(|s| Some(s.sequence) > last_before))
    })
    .expect("segments again after the disk has room");
    let text = fs::read_to_string(h.playlist_path()).unwrap_or_default();
    let new: Vec<_> = after
        .segments
        .iter()
        .filter(|s| Some(s.sequence) > last_before)
        .collect();
    assert!(
        new[0].discontinuity,
        "the first segment after the hole starts a new timeline:\n{text}"
    );
    let disc = after.segments.iter().filter(|s| s.discontinuity).count() as u64
        + after.discontinuity_sequence;
    assert_eq!(disc, 1, "one discontinuity in all:\n{text}");
    check_all_segments(&h, &after, true);

    let log = wait_for(Duration::from_secs(5), || {
        let log = h.server.log();
        log.contains("recovered after").then_some(log)
    })
    .expect("recovery logged");
    let line = log
        .lines()
        .find(|l| l.contains("recovered after"))
        .unwrap_or_default();
    assert!(
        line.contains("live/test") && line.contains("failed segments"),
        "{line}"
    );
    let healed = h.api_status().expect("status");
    assert!(healed["last_error"].is_null(), "error cleared: {healed}");
    assert!(healed["errors"].as_u64() > Some(0), "{healed}");
    assert!(healed["last_error_at_ms"].as_u64().is_some(), "{healed}");
    assert!(
        publisher.is_running(),
        "hls_on_error continue keeps the publisher"
    );
    publisher.kill();
    drop(h);
    drop(disk);
}

fn aged(path: &Path, age: Duration, content: &str) {
    fs::write(path, content).expect("write leftover");
    let f = fs::File::options()
        .write(true)
        .open(path)
        .expect("open leftover");
    f.set_modified(std::time::SystemTime::now() - age)
        .expect("set mtime");
}

/// Issue 24 item 7: a previous run's files are disposed of at start-up as that run would
/// have: temp files at once, files older than `hls_dispose` at once, younger ones
/// `hls_dispose` after start-up; a live stream's files (even with a leftover's name) stay.
#[test]
fn leftovers_of_a_previous_run_are_disposed_at_start() {
    let root = unique_dir("hls-leftover-root").join("hls");
    let live = root.join("live");
    fs::create_dir_all(&live).expect("mkdir");
    let hour = Duration::from_secs(3600);
    let recent = Duration::from_secs(1);
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nold-1.ts\n";
    aged(&live.join("old-1.ts"), hour, "old");
    aged(&live.join("old.m3u8"), hour, playlist);
    aged(&live.join("cut-7.ts.tmp"), recent, "partial");
    aged(&live.join("young-2.ts"), recent, "young");
    aged(&live.join("young.m3u8"), recent, playlist);
    // The live stream below reuses these names: what it writes must survive.
    aged(&live.join("test-0.ts"), recent, "leftover");
    aged(&live.join("test.m3u8"), recent, playlist);
    aged(&live.join("notes.txt"), hour, "not HLS's");

    let h = Hls::start_in("hls-leftover", "hls_dispose 6;", root);
    // 20 s of media: still live when the younger leftovers are due.
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "1", "-i"])
        .arg(fixture(AVC_AAC))
        .args(["-c", "copy", "-f", "flv"])
        .arg(h.server.url("live/test"));
    let mut publisher = Proc::spawn("ffmpeg loop", cmd, h.server.tmp("left.log"));
    let at_once = wait_for(Duration::from_secs(3), || {
        (!live.join("old-1.ts").exists()
            && !live.join("old.m3u8").exists()
            && !live.join("cut-7.ts.tmp").exists())
        .then_some(())
    });
    assert!(at_once.is_some(), "old and temp files removed at start-up");
    assert!(live.join("young-2.ts").exists(), "younger than hls_dispose");
    let closed = fs::read_to_string(live.join("young.m3u8")).unwrap_or_default();
    assert!(
        closed.contains("#EXT-X-ENDLIST"),
        "closed meanwhile: {closed}"
    );
    // The line may follow the removals by a moment.
    let logged = wait_for(Duration::from_secs(5), || {
        h.server
            .log()
            .contains("left by a previous run")
            .then_some(())
    });
    assert!(logged.is_some(), "the start-up sweep is logged");

    let later = wait_for(Duration::from_secs(12), || {
        (!live.join("young-2.ts").exists() && !live.join("young.m3u8").exists()).then_some(())
    });
    assert!(
        later.is_some(),
        "younger leftovers removed hls_dispose after start-up"
    );
    assert!(publisher.is_running(), "still publishing");
    let pl = h.playlist().expect("the live playlist survives");
    assert!(!pl.ended, "the live playlist is this run's");
    assert!(
        pl.segments.iter().any(|s| s.uri == "test-0.ts"),
        "the live stream's first segment is still listed: {pl:?}"
    );
    assert_ne!(
        fs::read(live.join("test-0.ts")).expect("this run's test-0.ts"),
        b"leftover"
    );
    check_all_segments(&h, &pl, true);
    assert!(
        live.join("notes.txt").exists(),
        "only HLS files are touched"
    );
    let log = h.server.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("left by a previous run under"))
            .count(),
        2,
        "one line at start-up, one when the rest is due:\n{log}"
    );
    publisher.kill();
    // The server writes nothing more once the stream's writer stopped: then the test's
    // directory can be removed for good.
    let stopped = wait_for(Duration::from_secs(10), || {
        h.server.log().contains("hls: stop ").then_some(())
    });
    assert!(
        stopped.is_some(),
        "the HLS writer stops when the publisher is gone"
    );
}

/// Issue 24 items 5 and 8: the publisher's clock jumps 20 s ahead at 5 s (ffmpeg's `setts`
/// on both tracks). The segment before the jump ends with its media, the one after starts a
/// new timeline, no segment claims the 20 s hole, and the log calls it a timestamp jump.
#[test]
fn publisher_timestamp_jump_starts_a_new_timeline() {
    let h = Hls::start("hls-jump", "hls_dispose 0;");
    h.publish(
        AVC_AAC,
        &["-bsf", "setts=ts=TS+if(gte(TS*TB\\,5)\\,20/TB\\,0)"],
        "jump",
    );
    let pl = h.playlist().expect("playlist");
    let text = fs::read_to_string(h.playlist_path()).unwrap_or_default();
    assert!(pl.ended, "{text}");
    let disc: Vec<usize> = pl
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.discontinuity)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(disc.len(), 1, "one new timeline:\n{text}");
    assert!(disc[0] > 0, "not on the first segment:\n{text}");
    let target = pl.effective_target_duration() as f64;
    assert!(
        pl.segments.iter().all(|s| s.duration <= target),
        "no segment spans the jump:\n{text}"
    );
    let fixture_secs = media_duration(&fixture(AVC_AAC));
    assert_duration_close("media listed", sum_extinf(&pl), fixture_secs, target);
    check_all_segments(&h, &pl, true);
    let log = h.server.log();
    assert!(log.contains("publisher timestamps jumped"), "{log}");
    assert!(!log.contains("disk too slow"), "{log}");
}
