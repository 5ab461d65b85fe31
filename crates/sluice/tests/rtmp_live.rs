//! Live RTMP end to end: real ffmpeg publishers and players against the real `sluice` binary.
//!
//! Each scenario is its own test with its own server, port and temp dir, so cargo runs them in
//! parallel; every clip is 10 s of real time, so the suite's wall time is set by how many run at
//! once (`-- --test-threads=8` keeps it near 30 s; the default of one per core also works).

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A 10 s clip published with `-re` ends after ~10 s; this leaves room for a loaded machine.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(25);
/// A player leaves at UnpublishNotify, right after the publisher is gone.
const PLAYER_EXIT_TIMEOUT: Duration = Duration::from_secs(8);
/// Publishers get a head start so the stream exists when the player arrives.
const PLAYER_DELAY: Duration = Duration::from_millis(500);

fn publish_and_play(tag: &str, fixture_name: &str) {
    publish_and_play_with(tag, fixture_name, None);
}

/// `body`: the server's config (without `listen`), or the harness's default.
fn publish_and_play_with(tag: &str, fixture_name: &str, body: Option<&str>) {
    require_ffmpeg();
    let server = match body {
        Some(b) => Server::start_with(tag, b),
        None => Server::start(tag),
    };
    let url = server.url(&format!("live/{tag}"));
    let mut publisher = spawn_publisher(&server, fixture_name, &url, tag);
    thread::sleep(PLAYER_DELAY);
    let (mut player, out) = spawn_player(&server, &url, tag);
    publisher.expect_success(PUBLISH_TIMEOUT);
    player.expect_success(PLAYER_EXIT_TIMEOUT);

    let want = fixture_stats(fixture_name);
    let got = flv_stats(&out);
    assert_same_stream(tag, &got, &want);
    assert_probe_matches(tag, &out, fixture_name);
}

#[test]
fn avc_aac_clip_plays_whole() {
    publish_and_play("avcaac", AVC_AAC);
}

#[test]
fn audio_only_aac_clip_plays_whole() {
    publish_and_play("aac", AUDIO_AAC);
}

#[test]
fn audio_only_mp3_clip_plays_whole() {
    publish_and_play("mp3", AUDIO_MP3);
}

#[test]
fn video_only_clip_plays_whole() {
    publish_and_play("video", VIDEO_ONLY);
}

/// `min_latency on` (players written per video frame, audio held until it): every
/// frame arrives, in order, for A/V, audio-only (audio wakes on its own) and video-only.
#[test]
fn min_latency_delivers_every_frame() {
    let body = "vhost __defaultVhost__ { min_latency on; }\n";
    publish_and_play_with("minlat-av", AVC_AAC, Some(body));
    publish_and_play_with("minlat-aac", AUDIO_AAC, Some(body));
    publish_and_play_with("minlat-video", VIDEO_ONLY, Some(body));
}

#[test]
fn fixture_expectations_hold() {
    // What the other tests compare against, pinned to the fixture descriptions so that a
    // parser regression cannot make "got == want" pass vacuously.
    let s = fixture_stats(AVC_AAC);
    assert_eq!(
        (s.video_frames, s.video_keyframes, s.audio_frames),
        (250, 5, 432)
    );
    assert_eq!(s.width_height, Some((640, 360)));
    assert_eq!(s.aac_rate_channels, Some((44100, 2)));
    let s = fixture_stats(VIDEO_ONLY);
    assert_eq!(
        (s.video_frames, s.audio_frames, s.width_height),
        (250, 0, Some((320, 180)))
    );
    let s = fixture_stats(AUDIO_AAC);
    assert_eq!((s.video_frames, s.audio_frames), (0, 432));
    assert_eq!(s.aac_rate_channels, Some((44100, 1)));
    let s = fixture_stats(AUDIO_MP3);
    assert_eq!((s.video_frames, s.audio_frames), (0, 384));
    assert_eq!(s.audio_codec, Some(media::codec::AudioCodec::Mp3));
    assert_eq!(s.mp3_rate_channels, Some((44100, 1)));
}

#[test]
fn five_players_at_once_all_get_the_stream() {
    require_ffmpeg();
    let server = Server::start("five");
    let url = server.url("live/five");
    let mut publisher = spawn_publisher(&server, AVC_AAC, &url, "five");
    thread::sleep(PLAYER_DELAY);
    let mut players: Vec<_> = (0..5)
        .map(|i| spawn_player(&server, &url, &format!("five-{i}")))
        .collect();
    publisher.expect_success(PUBLISH_TIMEOUT);
    let want = fixture_stats(AVC_AAC);
    for (i, (player, out)) in players.iter_mut().enumerate() {
        player.expect_success(PLAYER_EXIT_TIMEOUT);
        assert_same_stream(&format!("player {i}"), &flv_stats(out), &want);
    }
}

#[test]
fn mid_stream_joiner_starts_on_a_keyframe_at_once() {
    require_ffmpeg();
    let server = Server::start("join");
    let url = server.url("live/join");
    let mut publisher = spawn_publisher(&server, AVC_AAC, &url, "join");
    thread::sleep(Duration::from_secs(4));
    assert!(
        publisher.is_running(),
        "publisher ended early: {}",
        publisher.output()
    );

    let asked = Instant::now();
    let mut client = RawClient::play(server.port, "live", "join", None).expect("raw play");
    let (got, err) = drain_player(&mut client, Instant::now() + PUBLISH_TIMEOUT);
    publisher.expect_success(PUBLISH_TIMEOUT);

    let first_media = got
        .iter()
        .find(|r| media_payload(r).is_some())
        .unwrap_or_else(|| panic!("no media received; messages: {got:#?}; end: {err:?}"));
    let wait = first_media.at.duration_since(asked);
    assert!(
        wait <= Duration::from_secs(3),
        "first media after {wait:?} (GOP cache should make it immediate)"
    );
    let stats = stats_of(&got);
    assert_eq!(stats.first_video_frame_key, Some(true), "{stats:#?}");
    assert!(stats.video_seq_before_frames, "{stats:#?}");
    assert!(stats.audio_seq_before_frames, "{stats:#?}");
    assert_eq!(stats.width_height, Some((640, 360)), "{stats:#?}");
    assert_eq!(
        stats.video_ts_regressions + stats.audio_ts_regressions,
        0,
        "{stats:#?}"
    );
    // Joined at ~4 s of a 10 s clip with keyframes every 2 s: at least the last 3 GOPs.
    assert!(
        stats.video_frames >= 140,
        "only {} video frames: {stats:#?}",
        stats.video_frames
    );
    assert!(
        got.iter()
            .any(|r| r.status_code().as_deref() == Some("NetStream.Play.UnpublishNotify")),
        "no UnpublishNotify; statuses: {:?}; end: {err:?}",
        got.iter()
            .filter_map(Received::status_code)
            .collect::<Vec<_>>()
    );
}

#[test]
fn same_stream_name_on_two_vhosts_stays_apart() {
    require_ffmpeg();
    let server = Server::start("vhosts");
    // Both SRS spellings of the vhost parameter: in the app and in the stream name.
    let mut pub1 = spawn_publisher(
        &server,
        AVC_AAC,
        &server.url("live?vhost=v1.test/same"),
        "v1",
    );
    let mut pub2 = spawn_publisher(
        &server,
        VIDEO_ONLY,
        &server.url("live/same?vhost=v2.test"),
        "v2",
    );
    thread::sleep(PLAYER_DELAY);
    let (mut play1, out1) = spawn_player(&server, &server.url("live/same?vhost=v1.test"), "v1");
    let (mut play2, out2) = spawn_player(&server, &server.url("live?vhost=v2.test/same"), "v2");

    // Nothing was published on the default vhost under that name.
    let mut default_player =
        RawClient::play(server.port, "live", "same", None).expect("raw play on default vhost");
    let (got, _) = drain_player(&mut default_player, Instant::now() + Duration::from_secs(3));
    let stray = stats_of(&got);
    assert_eq!(
        (
            stray.video_frames,
            stray.audio_frames,
            stray.video_seq_headers
        ),
        (0, 0, 0),
        "the default vhost got media of another vhost: {stray:#?}"
    );
    drop(default_player);

    pub1.expect_success(PUBLISH_TIMEOUT);
    pub2.expect_success(PUBLISH_TIMEOUT);
    play1.expect_success(PLAYER_EXIT_TIMEOUT);
    play2.expect_success(PLAYER_EXIT_TIMEOUT);
    assert_same_stream("v1.test", &flv_stats(&out1), &fixture_stats(AVC_AAC));
    assert_same_stream("v2.test", &flv_stats(&out2), &fixture_stats(VIDEO_ONLY));
}

/// What ffmpeg itself makes of `-i FIXTURE -c copy EXTRA`, without a server: the reference for
/// clips cut with `-t`.
fn reference_cut(server: &Server, fixture_name: &str, extra: &[&str], tag: &str) -> FlvStats {
    let out = server.tmp(&format!("reference-{tag}.flv"));
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
        .arg(fixture(fixture_name))
        .args(["-c", "copy"])
        .args(extra)
        .args(["-f", "flv", "-y"])
        .arg(&out)
        .status()
        .expect("run ffmpeg for the reference cut");
    assert!(status.success(), "reference cut failed");
    flv_stats(Path::new(&out))
}

#[test]
fn republish_after_unpublish_is_played() {
    require_ffmpeg();
    let server = Server::start("republish");
    let url = server.url("live/again");
    let cut = ["-t", "3"];
    let want = reference_cut(&server, AVC_AAC, &cut, "cut");

    // Two players wait before any publisher: ffmpeg (which leaves at UnpublishNotify) and a
    // raw client that stays connected across the gap.
    let mut raw = RawClient::play(server.port, "live", "again", None).expect("raw play");
    let (mut early, early_out) = spawn_player(&server, &url, "early");
    let raw_thread =
        thread::spawn(move || drain_player(&mut raw, Instant::now() + Duration::from_secs(30)));
    thread::sleep(Duration::from_secs(1));

    let mut first = spawn_publisher_args(&server, AVC_AAC, &url, "first", &cut);
    first.expect_success(PUBLISH_TIMEOUT);
    early.expect_success(PLAYER_EXIT_TIMEOUT);
    assert_same_stream(
        "player waiting before the publisher",
        &flv_stats(&early_out),
        &want,
    );

    thread::sleep(Duration::from_secs(1));
    let mut second = spawn_publisher_args(&server, AVC_AAC, &url, "second", &cut);
    thread::sleep(PLAYER_DELAY);
    let (mut late, late_out) = spawn_player(&server, &url, "late");
    second.expect_success(PUBLISH_TIMEOUT);
    late.expect_success(PLAYER_EXIT_TIMEOUT);
    assert_same_stream("player of the second publish", &flv_stats(&late_out), &want);

    let (got, end) = raw_thread.join().expect("raw player thread");
    let statuses: Vec<_> = got.iter().filter_map(Received::status_code).collect();
    let Some(split) = got
        .iter()
        .position(|r| r.status_code().as_deref() == Some("NetStream.Play.UnpublishNotify"))
    else {
        panic!("raw player saw no UnpublishNotify; statuses {statuses:?}; end: {end:?}");
    };
    let before = stats_of(&got[..split]);
    let after = stats_of(&got[split..]);
    assert_same_stream("raw player, first publish", &before, &want);
    assert_same_stream(
        &format!("raw player after UnpublishNotify (statuses {statuses:?}, end {end:?})"),
        &after,
        &want,
    );
}

#[test]
fn second_publisher_of_a_live_stream_is_rejected() {
    require_ffmpeg();
    let server = Server::start("dup");
    let url = server.url("live/dup");
    let mut owner = spawn_publisher(&server, AVC_AAC, &url, "owner");
    thread::sleep(PLAYER_DELAY);
    let (mut player, out) = spawn_player(&server, &url, "dup");
    thread::sleep(Duration::from_secs(2));

    // A different clip, so any of its frames reaching the player would show.
    let mut intruder = spawn_publisher(&server, VIDEO_ONLY, &url, "intruder");
    match intruder.wait_timeout(Duration::from_secs(5)) {
        Some(s) => assert!(
            !s.success(),
            "second publisher exited 0: {}",
            intruder.output()
        ),
        None => panic!(
            "second publisher still running after 5 s (not rejected); output: {}",
            intruder.output()
        ),
    }
    assert!(
        owner.is_running(),
        "first publisher died: {}",
        owner.output()
    );
    owner.expect_success(PUBLISH_TIMEOUT);
    player.expect_success(PLAYER_EXIT_TIMEOUT);
    let got = flv_stats(&out);
    assert_same_stream(
        "player of the first publisher",
        &got,
        &fixture_stats(AVC_AAC),
    );
    assert_eq!(got.video_seq_headers, 1, "extra sequence headers: {got:#?}");
}

/// A 10 s, ~10 MB H.264 clip (8 Mbit/s of noise), made on the fly: the fixtures are too small
/// to fill the kernel's socket buffers (the server side alone autotunes to ~4 MB), so with them a
/// non-reading player never pushes back on the server at all.
fn big_clip(server: &Server) -> std::path::PathBuf {
    let out = server.tmp("big.flv");
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=s=640x360:r=25,noise=alls=100:allf=t:all_seed=7")
        .args([
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ])
        .args([
            "-b:v", "8M", "-maxrate", "8M", "-bufsize", "2M", "-f", "flv", "-y",
        ])
        .arg(&out)
        .status()
        .expect("run ffmpeg to make the big clip");
    assert!(status.success(), "making the big clip failed");
    out
}

#[test]
fn player_that_stops_reading_stalls_nobody() {
    require_ffmpeg();
    // A short queue, so "bounded" is visible within one 10 s clip.
    let body = DEFAULT_CONFIG_BODY.replace("queue_length 10;", "queue_length 2;");
    let mut server = Server::start_with("stall", &body);
    let clip = big_clip(&server);
    let want = flv_stats(&clip);
    let total_bytes = std::fs::metadata(&clip).map(|m| m.len()).unwrap_or(0);
    assert!(total_bytes > 8_000_000, "big clip only {total_bytes} bytes");

    let url = server.url("live/stall");
    let started = Instant::now();
    let mut publisher = spawn_publisher(&server, clip.to_str().expect("utf-8"), &url, "stall");
    thread::sleep(PLAYER_DELAY);
    // A tiny receive window: once a few KiB are in flight, the server's writes to this player
    // can only go to its own socket buffer and queue; it must drop for it, not wait.
    let mut stalled =
        RawClient::play(server.port, "live", "stall", Some(4096)).expect("stalled play");
    let (mut player, out) = spawn_player(&server, &url, "stall");

    let limit = Duration::from_secs(20);
    publisher.expect_success(limit.saturating_sub(started.elapsed()));
    let publish_time = started.elapsed();
    assert!(
        publish_time <= limit,
        "10 s clip took {publish_time:?} to publish"
    );
    player.expect_success(PLAYER_EXIT_TIMEOUT);
    assert_same_stream("reading player", &flv_stats(&out), &want);
    assert!(server.is_alive(), "server died");

    // The scenario really pushed back: what the stalled player can still read (socket buffers
    // plus its bounded queue) is well short of the whole stream. If it got everything, the
    // server kept ~10 s of media for it despite queue_length 2.
    let (late, end) = drain_player(&mut stalled, Instant::now() + Duration::from_secs(3));
    let late = stats_of(&late);
    eprintln!(
        "stalled player got {} of {} video frames in the end",
        late.video_frames, want.video_frames
    );
    assert!(
        late.video_frames < want.video_frames,
        "stalled player still got all {} frames after the publisher left (end: {end:?}): the \
         server buffered the whole stream for it",
        late.video_frames
    );
}

#[test]
fn config_check_exit_codes() {
    let dir = unique_dir("configcheck");
    let good = dir.join("good.conf");
    let bad = dir.join("bad.conf");
    std::fs::write(
        &good,
        format!("listen 127.0.0.1:{};\n{DEFAULT_CONFIG_BODY}", free_port()),
    )
    .expect("write");
    std::fs::write(&bad, "lisen 1935;\n").expect("write");
    let check = |conf: &Path, name: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("-t").arg("-c").arg(conf);
        let mut proc = Proc::spawn("sluice -t", cmd, dir.join(format!("{name}.log")));
        let status = proc.wait_timeout(Duration::from_secs(10));
        assert!(
            status.is_some(),
            "sluice -t -c {name} did not exit within 10 s"
        );
        (status.and_then(|s| s.code()), proc.output())
    };
    let (code, text) = check(&good, "good");
    assert_eq!(code, Some(0), "good config rejected: {text}");
    let (code, text) = check(&bad, "bad");
    assert_eq!(code, Some(1), "bad config: {text}");
    assert!(
        text.contains("lisen"),
        "error does not name the directive: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
