//! Operations end to end (issue 9): live reload on SIGHUP and through the raw API, graceful
//! SIGQUIT with DVR and HLS running, daemon mode and its pid file, SIGUSR1 log reopening and
//! `SLUICE_*` overrides — each against the real binary, with real ffmpeg publishers and
//! players whose recordings prove they kept receiving across the change.
//!
//! Every scenario is its own test function so they run in parallel (each takes 10-20 s).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use media::codec::{parse_video_header, VideoPacketKind};
use media::flv::{FlvReader, MAX_TAG_DATA_SIZE};
use media::hls::parse_media_playlist;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rtmp::message::Message;

/// Longest pause allowed in what a player receives (wall clock or media timestamps).
const MAX_GAP: Duration = Duration::from_millis(1000);
/// How long a reload may take to show up in the log.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

const BASE: &str = "max_connections 100;
daemon off;
srs_log_tank console;
vhost __defaultVhost__ { gop_cache on; }
";

fn send(pid: u32, sig: Signal) {
    let pid = i32::try_from(pid).expect("pid fits i32");
    kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

fn alive(pid: i32) -> bool {
    // A zombie (reaped later by init) counts as gone.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A sluice whose config file the test rewrites: `listen` on [`Ops::port`] (plus any extra
/// ports the test adds), `pid` in its own temp dir.
struct Ops {
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    proc: Proc,
}

impl Ops {
    fn start(tag: &str, body: &str) -> Ops {
        Ops::start_env(tag, body, &[])
    }

    /// `body` is the config without `listen` and `pid`.
    fn start_env(tag: &str, body: &str, env: &[(&str, String)]) -> Ops {
        require_ffmpeg();
        let dir = unique_dir(tag);
        let conf = dir.join("sluice.conf");
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port();
            fs::write(&conf, config_text(&dir, &[port], body)).expect("write config");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
            cmd.arg("-c")
                .arg(&conf)
                .current_dir(&dir)
                .env_remove("RUST_LOG");
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut proc = Proc::spawn("sluice", cmd, dir.join(format!("sluice-{attempt}.log")));
            let wait_port = env
                .iter()
                .find(|(k, _)| *k == "SLUICE_LISTEN")
                .and_then(|(_, v)| v.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(port);
            let up = wait_for(Duration::from_secs(10), || {
                if !proc.is_running() {
                    return Some(false);
                }
                if wait_port != port {
                    // By the log, not by connecting: another test may get the same free port.
                    let log = proc.output();
                    if log.contains(&format!("RTMP listening on 127.0.0.1:{port}")) {
                        panic!(
                            "SLUICE_LISTEN ignored: sluice listens on the config's port \
                             {port}, not on {wait_port}; log:\n{log}"
                        );
                    }
                    let up = log.contains(&format!("RTMP listening on 127.0.0.1:{wait_port}"));
                    return up.then_some(true);
                }
                can_connect(port).then_some(true)
            });
            if up == Some(true) {
                return Ops {
                    dir,
                    conf,
                    port,
                    proc,
                };
            }
            proc.kill();
            last_log = proc.output();
        }
        panic!("sluice did not start (3 attempts); last log:\n{last_log}");
    }

    /// Rewrites the config file with `listen` on our port plus `extra` ports.
    fn rewrite(&self, extra: &[u16], body: &str) {
        let mut ports = vec![self.port];
        ports.extend_from_slice(extra);
        fs::write(&self.conf, config_text(&self.dir, &ports, body)).expect("rewrite config");
    }

    fn signal(&self, sig: Signal) {
        send(self.proc.pid(), sig);
    }

    fn log(&self) -> String {
        self.proc.output()
    }

    /// Waits until the log has `needle` at least `count` times; returns the first line with it.
    fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> String {
        wait_for(timeout, || {
            let log = self.log();
            (log.matches(needle).count() >= count).then(|| {
                log.lines()
                    .find(|l| l.contains(needle))
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .unwrap_or_else(|| panic!("no {count}x {needle:?} in the log within {timeout:?}"))
    }

    fn url(&self, port: u16, path: &str) -> String {
        format!("rtmp://127.0.0.1:{port}/{path}")
    }

    fn tmp(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts an endless real-time publisher on `path` and waits until the server has it.
    fn publish(&self, path: &str, tag: &str) -> Proc {
        let before = self.log().matches("publish ip=").count();
        let input = fixture(AVC_AAC);
        let input = input.to_str().expect("utf-8 fixture path");
        let url = self.url(self.port, path);
        let p = Proc::spawn(
            &format!("ffmpeg publisher {tag}"),
            ffmpeg(&[
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                input,
                "-c",
                "copy",
                "-f",
                "flv",
                &url,
            ]),
            self.tmp(&format!("publisher-{tag}.log")),
        );
        self.wait_log("publish ip=", before + 1, Duration::from_secs(10));
        p
    }

    /// An ffmpeg player recording `path` (on `port`) into an FLV file.
    fn player(&self, port: u16, path: &str, tag: &str) -> Player {
        let out = self.tmp(&format!("player-{tag}.flv"));
        let out_s = out.to_str().expect("utf-8 temp path").to_owned();
        let proc = Proc::spawn(
            &format!("ffmpeg player {tag}"),
            ffmpeg(&[
                "-i",
                &self.url(port, path),
                "-c",
                "copy",
                "-f",
                "flv",
                "-y",
                &out_s,
            ]),
            self.tmp(&format!("player-{tag}.log")),
        );
        Player {
            proc,
            out,
            started: Instant::now(),
        }
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- sluice log tail ({}) -----\n{}\n----- end of sluice log -----",
                self.dir.display(),
                tail(&self.proc.output(), 80)
            );
        }
        self.proc.kill();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn config_text(dir: &Path, ports: &[u16], body: &str) -> String {
    let mut text = String::new();
    for p in ports {
        text.push_str(&format!("listen 127.0.0.1:{p};\n"));
    }
    text.push_str(&format!(
        "pid {};\n{body}",
        dir.join("sluice.pid").display()
    ));
    text
}

struct Player {
    proc: Proc,
    out: PathBuf,
    started: Instant,
}

impl Player {
    /// SIGINT so that ffmpeg flushes its output; returns how long it had been playing.
    fn stop(&mut self) -> Duration {
        let played = self.started.elapsed();
        assert!(
            self.proc.is_running(),
            "{} ended early; output:\n{}",
            self.proc.name,
            self.proc.output()
        );
        send(self.proc.pid(), Signal::SIGINT);
        if self.proc.wait_timeout(Duration::from_secs(5)).is_none() {
            self.proc.kill();
        }
        played
    }
}

/// Timestamps of the coded video frames of an FLV recording (truncated tail tolerated).
fn video_timestamps(path: &Path) -> Vec<u32> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut reader = FlvReader::new(MAX_TAG_DATA_SIZE);
    let mut buf = BytesMut::from(&data[..]);
    let mut ts = Vec::new();
    while let Ok(Some(tag)) = reader.next_tag(&mut buf) {
        if tag.tag_type != FLV_VIDEO {
            continue;
        }
        if let Some(h) = parse_video_header(&tag.data) {
            if !h.info.sequence_header && matches!(h.kind, VideoPacketKind::Frames) {
                ts.push(tag.timestamp);
            }
        }
    }
    ts
}

/// The recording kept going: no hole over [`MAX_GAP`] in its video timestamps, and it covers
/// at least `min_media` of media (how long it played across the reload, minus start-up).
fn assert_continuous(label: &str, path: &Path, min_media: Duration) {
    let stats = flv_stats(path);
    let ts = video_timestamps(path);
    assert!(ts.len() > 10, "{label}: only {} video frames", ts.len());
    assert_eq!(stats.video_ts_regressions, 0, "{label}: {stats:#?}");
    assert_eq!(stats.audio_ts_regressions, 0, "{label}: {stats:#?}");
    assert_eq!(
        stats.first_video_frame_key,
        Some(true),
        "{label}: {stats:#?}"
    );
    let worst = ts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    assert!(
        u128::from(worst) <= MAX_GAP.as_millis(),
        "{label}: {worst} ms hole in the video timestamps"
    );
    let span = ts.last().copied().unwrap_or(0) - ts.first().copied().unwrap_or(0);
    assert!(
        u128::from(span) >= min_media.as_millis(),
        "{label}: {span} ms of media, expected >= {min_media:?}"
    );
}

/// A raw RTMP player that notes when each media message arrives.
struct Watch {
    handle: JoinHandle<(Vec<Instant>, Option<String>)>,
}

impl Watch {
    /// Plays `app`/`stream` on `port` for `duration` (or until disconnected).
    fn start(port: u16, app: &str, stream: &str, duration: Duration) -> Watch {
        let (app, stream) = (app.to_owned(), stream.to_owned());
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + duration;
            let mut c = match RawClient::play(port, &app, &stream, None) {
                Ok(c) => c,
                Err(e) => return (Vec::new(), Some(format!("play: {e}"))),
            };
            let (got, err) = drain_player(&mut c, deadline);
            let arrivals = got
                .iter()
                .filter(|r| matches!(r.message, Message::Video(_) | Message::Audio(_)))
                .map(|r| r.at)
                .collect();
            (arrivals, err.map(|e| e.to_string()))
        });
        Watch { handle }
    }

    fn join(self) -> (Vec<Instant>, Option<String>) {
        self.handle.join().expect("watch thread")
    }
}

/// Media kept arriving across `event`: no wall-clock pause over [`MAX_GAP`] and messages
/// still coming `after` the event.
fn assert_kept_receiving(label: &str, watch: Watch, event: Instant, after: Duration) {
    let (arrivals, err) = watch.join();
    assert!(err.is_none(), "{label}: raw player ended with {err:?}");
    assert!(arrivals.len() > 50, "{label}: {} messages", arrivals.len());
    let worst = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        worst <= MAX_GAP,
        "{label}: media stopped for {worst:?} at some point"
    );
    let last = arrivals.last().copied().expect("arrivals");
    assert!(
        last >= event + after,
        "{label}: last media {:?} after the event, expected >= {after:?}",
        last.saturating_duration_since(event)
    );
}

/// Plain HTTP GET with `Connection: close`: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read reply");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad reply {raw:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `ffprobe -show_streams` of `target` (bounded in time): its output and errors.
fn probe_streams(s: &Ops, target: &str) -> String {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-show_streams", "-of", "compact", target]);
    let mut p = Proc::spawn("ffprobe", cmd, s.tmp("ffprobe.out"));
    match p.wait_timeout(Duration::from_secs(15)) {
        Some(st) if st.success() => p.output(),
        Some(st) => panic!("ffprobe {target}: {st}: {}", p.output()),
        None => panic!("ffprobe {target} still running after 15 s: {}", p.output()),
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn can_connect(port: u16) -> bool {
    TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)).is_ok()
}

#[test]
fn reload_adds_a_port_and_keeps_players_on_the_old_one() {
    let s = Ops::start("ops-addport", BASE);
    let _publisher = s.publish("live/s", "p");
    let mut old = s.player(s.port, "live/s", "old");
    let watch = Watch::start(s.port, "live", "s", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));

    let port2 = free_port();
    assert!(!can_connect(port2));
    s.rewrite(&[port2], BASE);
    let reload_at = Instant::now();
    s.signal(Signal::SIGHUP);
    let line = s.wait_log("config reloaded", 1, RELOAD_TIMEOUT);
    assert!(
        line.contains(&format!("RTMP listening on 127.0.0.1:{port2}")),
        "{line}"
    );
    assert!(can_connect(port2), "new port {port2} refuses connections");

    let mut new = s.player(port2, "live/s", "new");
    std::thread::sleep(Duration::from_secs(5));
    let new_played = new.stop();
    let old_played = old.stop();

    let got = flv_stats(&new.out);
    assert_eq!(
        got.first_video_frame_key,
        Some(true),
        "new player: {got:#?}"
    );
    assert!(got.video_seq_before_frames, "new player: {got:#?}");
    assert!(got.audio_frames > 50, "new player: {got:#?}");
    assert_continuous(
        "player on the new port",
        &new.out,
        new_played.saturating_sub(Duration::from_secs(3)),
    );
    assert_continuous(
        "player on the old port",
        &old.out,
        old_played.saturating_sub(Duration::from_secs(3)),
    );
    assert_kept_receiving(
        "raw player on the old port",
        watch,
        reload_at,
        Duration::from_secs(4),
    );
    // The old port still accepts too.
    assert!(can_connect(s.port));
    assert!(!s.log().contains("reload failed"), "{}", s.log());
}

#[test]
fn reload_removing_a_vhost_closes_its_clients_only() {
    let body = |with_v2: bool| {
        format!(
            "{BASE}vhost v1.test {{ gop_cache on; }}\n{}",
            if with_v2 {
                "vhost v2.test { gop_cache on; }\n"
            } else {
                ""
            }
        )
    };
    let s = Ops::start("ops-rmvhost", &body(true));
    let _p1 = s.publish("live?vhost=v1.test/s", "p1");
    let mut p2 = s.publish("live?vhost=v2.test/s", "p2");
    let mut keep = s.player(s.port, "live?vhost=v1.test/s", "v1");
    let mut gone = s.player(s.port, "live?vhost=v2.test/s", "v2");
    let watch1 = Watch::start(s.port, "live?vhost=v1.test", "s", Duration::from_secs(9));
    let watch2 = Watch::start(s.port, "live?vhost=v2.test", "s", Duration::from_secs(9));
    std::thread::sleep(Duration::from_secs(3));
    assert!(gone.proc.is_running(), "{}", gone.proc.output());

    s.rewrite(&[], &body(false));
    let reload_at = Instant::now();
    s.signal(Signal::SIGHUP);
    let line = s.wait_log("config reloaded", 1, RELOAD_TIMEOUT);
    assert!(line.contains("vhost v2.test removed"), "{line}");

    // The v2 player and publisher are disconnected: ffmpeg ends on its own.
    assert!(
        gone.proc.wait_timeout(Duration::from_secs(5)).is_some(),
        "the v2.test player still runs after its vhost was removed"
    );
    assert!(
        p2.wait_timeout(Duration::from_secs(5)).is_some(),
        "the v2.test publisher still runs after its vhost was removed"
    );
    let (_, err2) = watch2.join();
    assert!(
        err2.is_some(),
        "the raw v2.test player was not disconnected"
    );
    let v2 = flv_stats(&gone.out);
    assert!(
        v2.video_frames > 10,
        "v2 got nothing before the reload: {v2:#?}"
    );

    std::thread::sleep(Duration::from_secs(3));
    let played = keep.stop();
    assert_continuous(
        "v1.test player",
        &keep.out,
        played.saturating_sub(Duration::from_secs(3)),
    );
    assert_kept_receiving(
        "raw v1.test player",
        watch1,
        reload_at,
        Duration::from_secs(4),
    );
}

#[test]
fn reload_turns_hls_on_for_a_live_stream() {
    let s = Ops::start("ops-hlson", BASE);
    let root = s.tmp("hls");
    fs::create_dir_all(&root).expect("hls root");
    let _publisher = s.publish("live/s", "p");
    let mut player = s.player(s.port, "live/s", "rtmp");
    let watch = Watch::start(s.port, "live", "s", Duration::from_secs(14));
    std::thread::sleep(Duration::from_secs(2));
    let playlist = root.join("live/s.m3u8");
    assert!(!playlist.exists(), "HLS written before it was enabled");

    let http = free_port();
    s.rewrite(
        &[],
        &format!(
            "max_connections 100;
daemon off;
srs_log_tank console;
http_server {{ enabled on; listen 127.0.0.1:{http}; dir {root}; }}
vhost __defaultVhost__ {{
    gop_cache on;
    hls {{ enabled on; hls_fragment 2; hls_window 10; hls_path {root}; }}
}}
",
            root = root.display()
        ),
    );
    let reload_at = Instant::now();
    s.signal(Signal::SIGHUP);
    let line = s.wait_log("config reloaded", 1, RELOAD_TIMEOUT);
    assert!(
        line.contains(&format!("HTTP server listening on 127.0.0.1:{http}")),
        "{line}"
    );

    let segments = wait_for(Duration::from_secs(10), || {
        let text = fs::read_to_string(&playlist).ok()?;
        let pl = parse_media_playlist(&text).expect("playlist parses");
        (!pl.segments.is_empty()).then_some(pl.segments)
    })
    .unwrap_or_else(|| panic!("no playlist with a segment at {}", playlist.display()));
    let elapsed = reload_at.elapsed();
    for seg in &segments {
        let p = root.join("live").join(&seg.uri);
        assert!(p.exists(), "segment {} missing", p.display());
    }
    // ffprobe through http_server (also added by this reload) and from the file.
    let (status, body) = http_get(http, "/live/s.m3u8");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("#EXTM3U"), "{body}");
    // The stream is live (no ENDLIST), so ffprobe only probes; it would follow it forever
    // when asked to count frames.
    let url = format!("http://127.0.0.1:{http}/live/s.m3u8");
    for target in [playlist.to_str().expect("utf-8 path"), url.as_str()] {
        let text = probe_streams(&s, target);
        assert!(
            text.contains("codec_name=h264") && text.contains("codec_name=aac"),
            "ffprobe {target}: {text}"
        );
    }

    let rest = Duration::from_secs(12).saturating_sub(elapsed);
    std::thread::sleep(rest.min(Duration::from_secs(4)));
    let played = player.stop();
    assert_continuous(
        "RTMP player across the HLS reload",
        &player.out,
        played.saturating_sub(Duration::from_secs(3)),
    );
    assert_kept_receiving("raw RTMP player", watch, reload_at, Duration::from_secs(4));
}

#[test]
fn bad_config_keeps_the_old_one_on_sighup_and_api() {
    let api = free_port();
    let body = |max: u32| {
        format!(
            "max_connections {max};
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; raw_api {{ enabled on; allow_reload on; }} }}
vhost __defaultVhost__ {{ gop_cache on; }}
"
        )
    };
    let s = Ops::start("ops-badconf", &body(100));
    let _publisher = s.publish("live/s", "p");
    let mut player = s.player(s.port, "live/s", "keep");
    let watch = Watch::start(s.port, "live", "s", Duration::from_secs(12));
    std::thread::sleep(Duration::from_secs(2));

    // A syntax error on line 3 (unterminated block).
    fs::write(
        &s.conf,
        format!(
            "listen 127.0.0.1:{};\nmax_connections 5;\nvhost __defaultVhost__ {{ gop_cache on;\n",
            s.port
        ),
    )
    .expect("write bad config");
    let reload_at = Instant::now();
    s.signal(Signal::SIGHUP);
    let line = s.wait_log("reload failed", 1, RELOAD_TIMEOUT);
    assert!(line.contains("keeping the running config"), "{line}");
    assert!(
        line.contains(&s.conf.display().to_string()),
        "the error does not name the file: {line}"
    );
    assert!(!s.log().contains("config reloaded"), "{}", s.log());
    // Still serving: a new player gets the stream.
    let mut late = RawClient::play(s.port, "live", "s", None).expect("play after bad reload");
    let (got, err) = drain_player(&mut late, Instant::now() + Duration::from_secs(2));
    assert!(err.is_none(), "{err:?}");
    assert!(stats_of(&got).video_frames > 5, "{:#?}", stats_of(&got));

    // The same file through the raw API: an error reply, nothing changes.
    let (status, reply) = http_get(api, "/api/v1/raw?rpc=reload");
    let v: serde_json::Value = serde_json::from_str(&reply).expect("json reply");
    // As SRS: HTTP 200, the error in `code` (1060).
    assert_eq!(v["code"], 1060, "{status} {v}");
    assert_eq!(status, 200, "{status} {v}");
    assert!(reply.contains("reload failed"), "{reply}");
    assert_eq!(s.log().matches("reload failed").count(), 2, "{}", s.log());
    assert!(can_connect(s.port));

    // A good file through the API: code 0 and the summary of what changed.
    s.rewrite(&[], &body(200));
    let (status, reply) = http_get(api, "/api/v1/raw?rpc=reload");
    let v: serde_json::Value = serde_json::from_str(&reply).expect("json reply");
    assert_eq!((status, &v["code"]), (200, &serde_json::json!(0)), "{v}");
    let summary = v["data"]["reload"].as_str().unwrap_or_default();
    assert!(summary.contains("max_connections 100 -> 200"), "{v}");
    s.wait_log("config reloaded", 1, RELOAD_TIMEOUT);

    std::thread::sleep(Duration::from_secs(2));
    let played = player.stop();
    assert_continuous(
        "player across the bad and good reloads",
        &player.out,
        played.saturating_sub(Duration::from_secs(3)),
    );
    assert_kept_receiving("raw player", watch, reload_at, Duration::from_secs(5));
}

/// Issue 24 item 4: an emptied or comment-only config file (a deploy that truncated it) is
/// refused by `sluice -t`, naming the file, and a SIGHUP or API reload with it keeps the
/// running config (the API stays up, RTMP stays on its port) and says why at ERROR. A reload
/// that really turns something off is applied, with a WARN line saying what.
#[test]
fn empty_config_is_refused_by_test_and_by_reload() {
    let dir = unique_dir("ops-empty-t");
    for (name, text) in [("empty.conf", ""), ("comments.conf", "# listen 1935;\n\n")] {
        let path = dir.join(name);
        fs::write(&path, text).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .expect("run sluice -t");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} passed -t: {err}");
        assert!(
            err.contains(&path.display().to_string()) && err.contains("no directive"),
            "{name}: {err}"
        );
    }
    let _ = fs::remove_dir_all(&dir);

    let api = free_port();
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
http_api {{ enabled on; listen 127.0.0.1:{api}; raw_api {{ enabled on; allow_reload on; }} }}
vhost __defaultVhost__ {{ gop_cache on; }}
"
    );
    let s = Ops::start("ops-empty", &body);
    fs::write(&s.conf, "").expect("empty the config");
    s.signal(Signal::SIGHUP);
    let line = s.wait_log("reload failed", 1, RELOAD_TIMEOUT);
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("no directive"), "{line}");
    assert!(line.contains(&s.conf.display().to_string()), "{line}");
    let (status, reply) = http_get(api, "/api/v1/versions");
    assert_eq!(status, 200, "the API went down: {reply}");
    assert!(can_connect(s.port), "RTMP left its port");

    // Comments only, through the API: refused the same way.
    fs::write(&s.conf, "# vhost __defaultVhost__ { }\n").expect("comment-only config");
    let (status, reply) = http_get(api, "/api/v1/raw?rpc=reload");
    assert_eq!(status, 200, "{status} {reply}");
    assert!(reply.contains("\"code\":1060"), "{reply}");
    assert!(reply.contains("no directive"), "{reply}");
    assert!(!s.log().contains("config reloaded"), "{}", s.log());

    // A real file without the API: applied, and the loss is a WARN line.
    s.rewrite(&[], BASE);
    s.signal(Signal::SIGHUP);
    let line = s.wait_log("reload: HTTP API disabled", 1, RELOAD_TIMEOUT);
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{api}")), "{line}");
    s.wait_log("config reloaded", 1, RELOAD_TIMEOUT);
    assert!(can_connect(s.port));
}

#[test]
fn sigquit_with_dvr_and_hls_leaves_complete_files() {
    let root = unique_dir("ops-quit-files");
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank console;
vhost __defaultVhost__ {{
    gop_cache on;
    hls {{ enabled on; hls_fragment 2; hls_window 10; hls_path {root}/hls; }}
    dvr {{ enabled on; dvr_plan session; dvr_path {root}/dvr/[app]/[stream].[timestamp].flv; }}
}}
",
        root = root.display()
    );
    let mut s = Ops::start("ops-sigquit", &body);
    let mut publisher = s.publish("live/s", "p");
    let mut player = s.player(s.port, "live/s", "rtmp");
    std::thread::sleep(Duration::from_secs(7));
    assert!(player.proc.is_running(), "{}", player.proc.output());

    let quit_at = Instant::now();
    s.signal(Signal::SIGQUIT);
    let status = s
        .proc
        .wait_timeout(Duration::from_secs(25))
        .unwrap_or_else(|| panic!("sluice still running 25 s after SIGQUIT"));
    let took = quit_at.elapsed();
    assert!(status.success(), "SIGQUIT exit status {status}");
    assert!(
        took < Duration::from_secs(20),
        "graceful stop took {took:?}"
    );
    let log = s.log();
    assert!(
        log.contains("graceful shutdown: all clients closed"),
        "{}",
        tail(&log, 40)
    );
    // The clients were closed by the server, not left hanging.
    assert!(publisher.wait_timeout(Duration::from_secs(5)).is_some());
    assert!(player.proc.wait_timeout(Duration::from_secs(5)).is_some());

    let files = files_under(&root);
    let tmp: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");

    // DVR: one session file, renamed, complete and decodable.
    let dvr: Vec<_> = files
        .iter()
        .filter(|p| p.starts_with(root.join("dvr/live")))
        .collect();
    assert_eq!(dvr.len(), 1, "DVR files: {files:?}");
    let name = dvr[0].file_name().unwrap_or_default().to_string_lossy();
    assert!(
        name.starts_with("s.") && name.ends_with(".flv"),
        "DVR file {name}"
    );
    let rec = flv_stats(dvr[0]);
    assert!(rec.video_frames > 100, "DVR: {rec:#?}");
    assert_eq!(rec.first_video_frame_key, Some(true), "DVR: {rec:#?}");
    assert_eq!(rec.video_ts_regressions, 0, "DVR: {rec:#?}");
    let probed = ffprobe(dvr[0]);
    assert!(
        probed
            .iter()
            .any(|p| p.codec_name == "h264" && p.frames.unwrap_or(0) > 100),
        "DVR: {probed:#?}"
    );
    assert!(
        probed
            .iter()
            .any(|p| p.codec_name == "aac" && p.frames.unwrap_or(0) > 100),
        "DVR: {probed:#?}"
    );
    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(dvr[0])
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        decode.status.success(),
        "DVR decode: {}",
        String::from_utf8_lossy(&decode.stderr)
    );

    // HLS: the playlist lists only segments that exist, and ffprobe reads it.
    let playlist = root.join("hls/live/s.m3u8");
    let text = fs::read_to_string(&playlist)
        .unwrap_or_else(|e| panic!("{}: {e}; files {files:?}", playlist.display()));
    let pl = parse_media_playlist(&text).expect("playlist parses");
    assert!(pl.segments.len() >= 2, "{text}");
    for seg in &pl.segments {
        let p = root.join("hls/live").join(&seg.uri);
        let len = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "segment {} missing or empty", p.display());
        assert_eq!(len % 188, 0, "segment {} not whole TS packets", p.display());
    }
    // Every segment decodes on its own, and ffprobe opens the playlist (bounded: a playlist
    // without ENDLIST is followed forever).
    for seg in &pl.segments {
        let p = root.join("hls/live").join(&seg.uri);
        let probed = ffprobe(&p);
        assert!(
            probed
                .iter()
                .any(|p| p.codec_name == "h264" && p.frames.unwrap_or(0) > 0),
            "{}: {probed:#?}",
            p.display()
        );
    }
    let text_probe = probe_streams(&s, playlist.to_str().expect("utf-8 path"));
    assert!(
        text_probe.contains("codec_name=h264") && text_probe.contains("codec_name=aac"),
        "ffprobe {}: {text_probe}",
        playlist.display()
    );
    // The process is gone, so the stream can never continue: the playlist must say so, or
    // players wait on it forever.
    assert!(
        pl.ended,
        "the HLS playlist has no #EXT-X-ENDLIST after SIGQUIT:\n{text}"
    );
    let _ = fs::remove_dir_all(&root);
}

/// Kills a daemon left behind by a failed test (it is not our child).
struct DaemonGuard {
    pid_file: PathBuf,
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let pid = fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1 && alive(*p)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A `daemon on` server's files in a fresh directory; whatever daemon its pid file
/// names is killed when this goes.
struct DaemonSetup {
    dir: PathBuf,
    conf: PathBuf,
    pid_file: PathBuf,
    log_file: PathBuf,
    _guard: DaemonGuard,
}

impl DaemonSetup {
    fn new(name: &str, port: u16) -> DaemonSetup {
        let dir = unique_dir(name);
        let pid_file = dir.join("sluice.pid");
        let log_file = dir.join("sluice.log");
        let conf = dir.join("sluice.conf");
        fs::write(
            &conf,
            format!(
                "listen 127.0.0.1:{port};
pid {};
daemon on;
srs_log_tank file;
srs_log_file {};
vhost __defaultVhost__ {{ }}
",
                pid_file.display(),
                log_file.display()
            ),
        )
        .expect("write config");
        DaemonSetup {
            _guard: DaemonGuard {
                pid_file: pid_file.clone(),
            },
            dir,
            conf,
            pid_file,
            log_file,
        }
    }

    /// Runs the starting command; it must return within `limit`.
    fn start(&self, tag: &str, limit: Duration) -> (std::process::ExitStatus, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("-c")
            .arg(&self.conf)
            .current_dir(&self.dir)
            .env_remove("RUST_LOG");
        let mut p = Proc::spawn(tag, cmd, self.dir.join(format!("{tag}.out")));
        let status = p
            .wait_timeout(limit)
            .unwrap_or_else(|| panic!("{tag}: the command did not return within {limit:?}"));
        (status, p.output())
    }
}

#[test]
fn daemon_writes_pid_file_and_a_second_start_refuses() {
    let port = free_port();
    let d = DaemonSetup::new("ops-daemon", port);
    let (pid_file, log_file, dir) = (d.pid_file.clone(), d.log_file.clone(), d.dir.clone());
    let start = |tag: &str| d.start(tag, Duration::from_secs(5));

    let (status, out) = start("first");
    assert!(status.success(), "daemon start: {status} {out}");
    let pid = wait_for(Duration::from_secs(5), || {
        let pid: i32 = fs::read_to_string(&pid_file).ok()?.trim().parse().ok()?;
        (can_connect(port) && alive(pid)).then_some(pid)
    })
    .unwrap_or_else(|| {
        panic!(
            "no live pid in {} or no listener; log:\n{}",
            pid_file.display(),
            fs::read_to_string(&log_file).unwrap_or_default()
        )
    });
    assert_ne!(
        u32::try_from(pid).ok(),
        Some(std::process::id()),
        "pid file holds the test's pid"
    );

    let (status, out) = start("second");
    assert_eq!(status.code(), Some(1), "second start: {status} {out}");
    assert!(out.contains("locked by another running sluice"), "{out}");
    assert_eq!(
        fs::read_to_string(&pid_file)
            .ok()
            .map(|t| t.trim().to_owned()),
        Some(pid.to_string()),
        "the refused start touched the pid file"
    );
    assert!(alive(pid) && can_connect(port));

    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM the daemon");
    let stopped = wait_for(Duration::from_secs(10), || {
        (!alive(pid) && !pid_file.exists()).then_some(())
    });
    assert!(
        stopped.is_some(),
        "daemon alive={} pid file exists={}; log:\n{}",
        alive(pid),
        pid_file.exists(),
        fs::read_to_string(&log_file).unwrap_or_default()
    );
    let log = fs::read_to_string(&log_file).unwrap_or_default();
    assert!(log.contains("SIGTERM"), "{log}");
    let _ = fs::remove_dir_all(&dir);
}

/// Issue 15: `daemon on` without `srs_log_tank` logs as SRS does, to `./objs/srs.log` under
/// the working directory, instead of losing every line to the daemon's /dev/null.
#[test]
fn daemon_without_a_tank_keeps_its_log_in_srs_default_file() {
    let port = free_port();
    let dir = unique_dir("ops-daemon-log");
    let pid_file = dir.join("sluice.pid");
    let conf = dir.join("srs.conf");
    fs::write(
        &conf,
        format!(
            "listen 127.0.0.1:{port};\npid {};\ndaemon on;\nvhost __defaultVhost__ {{ }}\n",
            pid_file.display()
        ),
    )
    .expect("write config");
    let _guard = DaemonGuard {
        pid_file: pid_file.clone(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("-c")
        .arg(&conf)
        .current_dir(&dir)
        .env_remove("RUST_LOG");
    let mut p = Proc::spawn("daemon-log", cmd, dir.join("start.out"));
    let status = p
        .wait_timeout(Duration::from_secs(5))
        .expect("the starting command returns");
    assert!(status.success(), "{status} {}", p.output());
    let log_file = dir.join("objs").join("srs.log");
    let pid = wait_for(Duration::from_secs(5), || {
        let pid: i32 = fs::read_to_string(&pid_file).ok()?.trim().parse().ok()?;
        (can_connect(port) && alive(pid)).then_some(pid)
    })
    .expect("the daemon runs");
    let listening = wait_for(Duration::from_secs(5), || {
        let log = fs::read_to_string(&log_file).ok()?;
        log.contains(&format!("127.0.0.1:{port}")).then_some(log)
    });
    assert!(
        listening.is_some(),
        "no start-up lines in {}: {:?}",
        log_file.display(),
        fs::read_to_string(&log_file)
    );
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM the daemon");
    let logged = wait_for(Duration::from_secs(10), || {
        let log = fs::read_to_string(&log_file).ok()?;
        (!alive(pid) && log.contains("SIGTERM")).then_some(())
    });
    assert!(logged.is_some(), "{:?}", fs::read_to_string(&log_file));
    let _ = fs::remove_dir_all(&dir);
}

/// A daemon that cannot bind its port makes the starting command fail, with the
/// reason on its terminal (not only in a log nobody is reading yet).
#[test]
fn daemon_start_fails_in_the_foreground_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
    let port = taken.local_addr().expect("addr").port();
    let d = DaemonSetup::new("ops-daemon-busy", port);
    let (pid_file, dir) = (d.pid_file.clone(), d.dir.clone());
    let (status, out) = d.start("busy", Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{status} {out}");
    assert!(
        out.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "the reason reaches the terminal: {out}"
    );
    let gone = wait_for(Duration::from_secs(5), || {
        (!pid_file.exists()).then_some(())
    });
    assert!(gone.is_some(), "the failed daemon left its pid file");
    drop(taken);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn sigusr1_reopens_a_renamed_log_file() {
    let dir = unique_dir("ops-usr1-log");
    let log = dir.join("sluice.log");
    let rotated = dir.join("sluice.log.1");
    let body = format!(
        "max_connections 100;
daemon off;
srs_log_tank file;
srs_log_file {};
vhost __defaultVhost__ {{ }}
",
        log.display()
    );
    let s = Ops::start("ops-usr1", &body);
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    wait_for(Duration::from_secs(5), || {
        read(&log).contains("starting").then_some(())
    })
    .unwrap_or_else(|| panic!("no start line in {}: {:?}", log.display(), read(&log)));

    fs::rename(&log, &rotated).expect("mv log log.1");
    // Until SIGUSR1 the server keeps writing to the moved file.
    s.signal(Signal::SIGHUP);
    wait_for(RELOAD_TIMEOUT, || {
        read(&rotated).contains("config reloaded").then_some(())
    })
    .unwrap_or_else(|| panic!("reload not logged to the moved file: {:?}", read(&rotated)));
    assert!(!log.exists());

    s.signal(Signal::SIGUSR1);
    wait_for(Duration::from_secs(5), || {
        read(&log).contains("log file reopened").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no new {} after SIGUSR1; old file:\n{}",
            log.display(),
            read(&rotated)
        )
    });
    let old_len = read(&rotated).len();
    // New lines go to the new file only.
    s.signal(Signal::SIGHUP);
    wait_for(RELOAD_TIMEOUT, || {
        read(&log).contains("config reloaded").then_some(())
    })
    .unwrap_or_else(|| panic!("reload not logged to the new file: {:?}", read(&log)));
    let c = RawClient::play(s.port, "live", "nothing", None).expect("rtmp play");
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(&rotated).len(), old_len, "the moved file still grows");
    assert!(!read(&rotated).contains("log file reopened"));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn sluice_listen_env_overrides_the_config() {
    let env_port = free_port();
    let s = Ops::start_env(
        "ops-env",
        BASE,
        &[("SLUICE_LISTEN", format!("127.0.0.1:{env_port}"))],
    );
    assert!(
        !s.log()
            .contains(&format!("RTMP listening on 127.0.0.1:{}", s.port)),
        "the config's listen {} is still used",
        s.port
    );
    assert!(s.log().contains("SLUICE_LISTEN"), "{}", s.log());
    // A real RTMP session on the overriding port.
    let _publisher = {
        let before = s.log().matches("publish ip=").count();
        let input = fixture(AVC_AAC);
        let url = s.url(env_port, "live/env");
        let p = Proc::spawn(
            "ffmpeg publisher env",
            ffmpeg(&[
                "-re",
                "-i",
                input.to_str().expect("utf-8"),
                "-c",
                "copy",
                "-f",
                "flv",
                &url,
            ]),
            s.tmp("publisher-env.log"),
        );
        s.wait_log("publish ip=", before + 1, Duration::from_secs(10));
        p
    };
    let mut c = RawClient::play(env_port, "live", "env", None).expect("play on env port");
    let (got, err) = drain_player(&mut c, Instant::now() + Duration::from_secs(3));
    assert!(err.is_none(), "{err:?}");
    let st = stats_of(&got);
    assert!(st.video_frames > 10 && st.audio_frames > 10, "{st:#?}");
}

/// The kbps figure after `label` (`"in "`, `"out "`) in a pithy line.
fn pithy_kbps(line: &str, label: &str) -> u64 {
    line.split(", ")
        .flat_map(|part| part.split(": "))
        .find_map(|p| p.strip_prefix(label)?.strip_suffix(" kbps")?.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?}N kbps in {line:?}"))
}

/// `pithy_print_ms`: at 0 nothing is printed while a stream plays; a reload to 1000
/// starts, every second, one line for the stream and one per client, with the rates
/// of the last second.
#[test]
fn pithy_print_follows_the_reloaded_interval() {
    let body = |ms: u64| format!("pithy_print_ms {ms};\n{BASE}");
    let s = Ops::start("pithy", &body(0));
    let mut publisher = s.publish("live/pithy", "pub");
    let mut player = s.player(s.port, "live/pithy", "play");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !s.log().contains("pithy:"),
        "pithy lines with pithy_print_ms 0:\n{}",
        s.log()
    );
    assert!(player.proc.is_running(), "the player ended early");

    s.rewrite(&[], &body(1000));
    s.signal(Signal::SIGHUP);
    s.wait_log("config reloaded", 1, RELOAD_TIMEOUT);
    let stream = "pithy: stream __defaultVhost__/live/pithy publisher ";
    s.wait_log(stream, 3, Duration::from_secs(8));
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("pithy: ")).collect();
    let last_stream = lines
        .iter()
        .rev()
        .find(|l| l.contains(stream))
        .expect("a stream line");
    assert!(pithy_kbps(last_stream, "in ") > 0, "{last_stream}");
    assert!(pithy_kbps(last_stream, "out ") > 0, "{last_stream}");
    assert!(last_stream.contains(", 1 players"), "{last_stream}");
    assert!(!last_stream.contains(" 0.0 frames/s"), "{last_stream}");
    let client = |kind: &str| {
        let needle = format!(" {kind} __defaultVhost__/live/pithy: ");
        lines
            .iter()
            .rev()
            .find(|l| l.contains("pithy: client ") && l.contains(&needle))
            .unwrap_or_else(|| panic!("no {kind} client line in {lines:#?}"))
            .to_string()
    };
    let play = client("rtmp-play");
    assert!(pithy_kbps(&play, "out ") > 0, "{play}");
    let publish = client("fmle-publish");
    assert!(pithy_kbps(&publish, "in ") > 0, "{publish}");
    publisher.kill();
    player.proc.kill();
}
