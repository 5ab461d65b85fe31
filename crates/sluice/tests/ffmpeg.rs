//! Transcode and ingest end to end: the real `sluice` drives real ffmpeg processes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(25);
/// Transcoders stop after their input ends; their players follow.
const PLAYER_EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn base(vhost_body: &str) -> String {
    format!(
        "max_connections 100;\ndaemon off;\nsrs_log_tank console;\nff_log_dir ./fflogs;\n\
         vhost __defaultVhost__ {{ gop_cache on; queue_length 10;\n{vhost_body}\n}}\n"
    )
}

fn require_libx264() {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("run ffmpeg -encoders");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("libx264"),
        "this ffmpeg has no libx264 encoder (Debian's ffmpeg package has it)"
    );
}

/// `ffmpeg -i URL -t SECONDS -c copy out.flv`: a player that leaves after a while.
fn spawn_timed_player(server: &Server, url: &str, tag: &str, seconds: u32) -> (Proc, PathBuf) {
    let out = server.tmp(&format!("player-{tag}.flv"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        url,
        "-t",
    ])
    .arg(seconds.to_string())
    .args(["-c", "copy", "-f", "flv", "-y"])
    .arg(&out);
    let p = Proc::spawn(
        &format!("ffmpeg player {tag}"),
        cmd,
        server.tmp(&format!("player-{tag}.log")),
    );
    (p, out)
}

/// Pids of live (non-zombie) processes whose command line has an argument containing `needle`.
fn pids_with_arg(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, s)| s.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmdline
            .split(|b| *b == 0)
            .any(|a| String::from_utf8_lossy(a).contains(needle))
        {
            out.push(pid);
        }
    }
    out
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

#[test]
fn transcode_engines_make_new_streams() {
    require_ffmpeg();
    require_libx264();
    let server = Server::start_with(
        "transcode",
        &base(
            "transcode live {\n enabled on;\n\
               engine small { enabled on; vcodec libx264; vbitrate 200; vwidth 320; vheight 180;\n\
                 vthreads 1; vprofile baseline; vpreset ultrafast; acodec aac; abitrate 48;\n\
                 output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; }\n\
               engine vonly { enabled on; vcodec copy; acodec an;\n\
                 output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; }\n\
               engine idle { enabled off; }\n}",
        ),
    );
    let mut publisher = spawn_publisher(&server, AVC_AAC, &server.url("live/tc"), "tc");
    // Players wait for the transcoders' streams to appear.
    let (mut small, small_out) = spawn_player(&server, &server.url("live/tc_small"), "small");
    let (mut vonly, vonly_out) = spawn_player(&server, &server.url("live/tc_vonly"), "vonly");
    publisher.expect_success(PUBLISH_TIMEOUT);
    small.expect_success(PLAYER_EXIT_TIMEOUT);
    vonly.expect_success(PLAYER_EXIT_TIMEOUT);

    let s = flv_stats(&small_out);
    assert_eq!(s.width_height, Some((320, 180)), "{s:#?}");
    assert!(s.video_frames > 100 && s.audio_frames > 100, "{s:#?}");
    assert_eq!(s.first_video_frame_key, Some(true));
    let probed = ffprobe(&small_out);
    assert!(
        probed
            .iter()
            .any(|p| p.codec_type == "video" && p.width == Some(320)),
        "{probed:#?}"
    );

    let v = flv_stats(&vonly_out);
    assert_eq!(v.audio_frames, 0, "{v:#?}");
    assert_eq!(v.width_height, Some((640, 360)), "{v:#?}");
    assert!(v.video_frames > 200, "{v:#?}");
    assert!(ffprobe(&vonly_out).iter().all(|p| p.codec_type != "audio"));

    // Each engine logged to its own file; outputs were not transcoded again.
    let log = server.log();
    for engine in ["small", "vonly"] {
        let f = server.tmp(&format!(
            "fflogs/ffmpeg-transcode-__defaultVhost__-live-tc-{engine}.log"
        ));
        assert!(f.exists(), "{} missing", f.display());
    }
    assert!(
        !log.contains("live/tc_small/"),
        "a transcoder's output was transcoded:\n{log}"
    );
    assert!(!server
        .tmp("fflogs/ffmpeg-transcode-__defaultVhost__-live-tc_small-small.log")
        .exists());
    // Stopped with the stream.
    let needle = format!("127.0.0.1:{}/live?vhost=__defaultVhost__/tc", server.port);
    assert!(
        wait_for(Duration::from_secs(5), || pids_with_arg(&needle)
            .is_empty()
            .then_some(()))
        .is_some(),
        "transcoders still running after the stream ended"
    );
}

#[test]
fn ingest_plays_and_comes_back_after_a_kill() {
    require_ffmpeg();
    let input = fixture(AVC_AAC);
    let server = Server::start_with(
        "ingest",
        &base(&format!(
            "ingest cam {{ enabled on; input {{ type file; url {}; }}\n\
               engine {{ enabled off; output rtmp://127.0.0.1:[port]/live?vhost=[vhost]/ingested; }} }}",
            input.display()
        )),
    );
    let url = server.url("live/ingested");
    let (mut p1, out1) = spawn_timed_player(&server, &url, "first", 3);
    p1.expect_success(Duration::from_secs(15));
    let s = flv_stats(&out1);
    assert_eq!(s.width_height, Some((640, 360)), "{s:#?}");
    assert!(s.video_frames > 40 && s.audio_frames > 60, "{s:#?}");
    assert_eq!(s.first_video_frame_key, Some(true));
    assert!(server
        .tmp("fflogs/ffmpeg-ingest-__defaultVhost__-cam-0.log")
        .exists());

    let needle = format!(
        "127.0.0.1:{}/live?vhost=__defaultVhost__/ingested",
        server.port
    );
    let pids = pids_with_arg(&needle);
    assert_eq!(
        pids.len(),
        1,
        "ingest ffmpeg {needle}: {pids:?}; ffmpeg processes: {:?}",
        pids_with_arg("ffmpeg")
            .iter()
            .map(|p| std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .collect::<Vec<_>>()
    );
    kill(pids[0], "-KILL");
    let new = wait_for(Duration::from_secs(10), || {
        let p = pids_with_arg(&needle);
        (p.len() == 1 && p[0] != pids[0]).then(|| p[0])
    })
    .expect("the ingest was not restarted");
    let (mut p2, out2) = spawn_timed_player(&server, &url, "second", 3);
    p2.expect_success(Duration::from_secs(15));
    let s = flv_stats(&out2);
    assert!(s.video_frames > 40, "after restart: {s:#?}");
    assert!(
        server.log().contains("ingest __defaultVhost__/cam/0: pid"),
        "exit not logged"
    );

    // sluice's exit takes its ffmpeg with it.
    kill(server.pid(), "-TERM");
    assert!(
        wait_for(Duration::from_secs(8), || (!Path::new(&format!(
            "/proc/{new}/cmdline"
        ))
        .exists()
            || pids_with_arg(&needle).is_empty())
        .then_some(()))
        .is_some(),
        "ingest ffmpeg {new} survived the server"
    );
}

#[test]
fn shell_metacharacters_in_stream_names_run_nothing() {
    require_ffmpeg();
    let marker = format!("pwned-{}", std::process::id());
    let name = format!("a;touch${{IFS}}{marker};$(touch${{IFS}}{marker}2)`touch${{IFS}}{marker}3`");
    let server = Server::start_with(
        "metachar",
        &base(
            "dvr { enabled on; dvr_path ./rec/[stream].flv; }\n\
             transcode live { enabled on;\n\
               engine copy { enabled on; vcodec copy; acodec copy;\n\
                 output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; } }",
        ),
    );
    let mut publisher = spawn_publisher_args(
        &server,
        AVC_AAC,
        &server.url(&format!("live/{name}")),
        "metachar",
        &["-t", "4"],
    );
    let (mut player, out) = spawn_player(
        &server,
        &server.url(&format!("live/{name}_copy")),
        "metachar",
    );
    publisher.expect_success(PUBLISH_TIMEOUT);
    player.expect_success(PLAYER_EXIT_TIMEOUT);
    // The name went through as one literal argument: the copy plays.
    let s = flv_stats(&out);
    assert!(s.video_frames > 50 && s.audio_frames > 50, "{s:#?}");
    // And as one literal file name.
    let want = format!("{name}.flv");
    wait_for(Duration::from_secs(5), || {
        std::fs::read_dir(server.tmp("rec"))
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy() == want)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no DVR file {want}"));
    for dir in [
        server.dir.clone(),
        std::env::temp_dir(),
        std::env::current_dir().unwrap(),
    ] {
        for suffix in ["", "2", "3"] {
            let p = dir.join(format!("{marker}{suffix}"));
            assert!(!p.exists(), "{} was created: a shell ran", p.display());
        }
    }
}
